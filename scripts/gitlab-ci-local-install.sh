#!/usr/bin/env bash
# Obtain the pinned `gitlab-ci-local` (runs .gitlab-ci.yml jobs locally); print the directory holding its
# executable (last line).
#
# The test suite runs ci-templates/gitlab-ci.yml with it in shell mode (tests/test_ci_templates_gitlab.py).
# Order: GITLAB_CI_LOCAL_BIN, then `gitlab-ci-local` on PATH (either must report the pinned version unless
# GITLAB_CI_LOCAL_ANY_VERSION=1), then a cached install, then `npm ci` of scripts/gitlab-ci-local/ (the
# pinned version and a lockfile with every transitive package's integrity hash, which npm checks) into
# ${XDG_CACHE_HOME:-~/.cache}/notary/gitlab-ci-local-<version>/ (outside the repo). NOTARY_NO_BUILD=1: find,
# never install. Progress goes to stderr; stdout is only the directory, so callers can capture it.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# pinned in scripts/gitlab-ci-local/package.json (+ lockfile): 4.74 and later need Node 22, Debian's is 20
GCL_VERSION="$(sed -n 's/.*"gitlab-ci-local": "\([0-9.]*\)".*/\1/p' "$here/gitlab-ci-local/package.json")"
[[ -n "$GCL_VERSION" ]] || { printf 'gitlab-ci-local-install: error: no pinned version in %s\n' "$here/gitlab-ci-local/package.json" >&2; exit 1; }
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/notary"
dest="$cache_root/gitlab-ci-local-$GCL_VERSION"

log() { printf 'gitlab-ci-local-install: %s\n' "$*" >&2; }
die() { printf 'gitlab-ci-local-install: error: %s\n' "$*" >&2; exit 1; }

version_ok() {  # $1 = gitlab-ci-local executable
  [[ "${GITLAB_CI_LOCAL_ANY_VERSION:-0}" == 1 ]] && return 0
  [[ "$("$1" --version 2>/dev/null)" == "$GCL_VERSION" ]]
}

use_existing() {  # $1 = gitlab-ci-local executable
  if ! version_ok "$1"; then
    log "$1 is not gitlab-ci-local $GCL_VERSION (set GITLAB_CI_LOCAL_ANY_VERSION=1 to use it anyway)"
    return 1
  fi
  dirname "$(readlink -f "$1")"
  exit 0
}

if [[ -n "${GITLAB_CI_LOCAL_BIN:-}" ]]; then
  [[ -x "$GITLAB_CI_LOCAL_BIN" ]] || die "GITLAB_CI_LOCAL_BIN=$GITLAB_CI_LOCAL_BIN is not an executable"
  use_existing "$GITLAB_CI_LOCAL_BIN" || die "GITLAB_CI_LOCAL_BIN=$GITLAB_CI_LOCAL_BIN cannot be used (see above)"
fi
if on_path="$(command -v gitlab-ci-local 2>/dev/null)"; then
  use_existing "$on_path" || log "not using $on_path; falling back to the pinned install"
fi
bin="$dest/node_modules/.bin"
if [[ -x "$bin/gitlab-ci-local" ]]; then
  printf '%s\n' "$bin"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.gitlab-ci-local-$GCL_VERSION.lock"
flock 9   # concurrent callers install once
if [[ -x "$bin/gitlab-ci-local" ]]; then
  printf '%s\n' "$bin"
  exit 0
fi
[[ "${NOTARY_NO_BUILD:-0}" == 1 ]] && die "gitlab-ci-local $GCL_VERSION is not installed yet (run scripts/gitlab-ci-local-install.sh)"
command -v npm >/dev/null || die "no gitlab-ci-local found and no npm to install it (apt-get install npm)"

log "installing gitlab-ci-local $GCL_VERSION with npm"
started=$SECONDS
work="$(mktemp -d "$cache_root/.install-gitlab-ci-local-XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp "$here/gitlab-ci-local/package.json" "$here/gitlab-ci-local/package-lock.json" "$work/"
(
  cd "$work"
  npm ci --no-audit --no-fund --loglevel=error --ignore-scripts
) >&2 || die "npm ci of gitlab-ci-local $GCL_VERSION failed"
[[ "$("$work/node_modules/.bin/gitlab-ci-local" --version 2>/dev/null)" == "$GCL_VERSION" ]] \
  || die "the installed gitlab-ci-local does not report $GCL_VERSION"
rm -rf "$dest.tmp"
mv "$work" "$dest.tmp"
mv "$dest.tmp" "$dest"
trap - EXIT
log "installed gitlab-ci-local $GCL_VERSION into $dest in $((SECONDS - started)) s"
printf '%s\n' "$bin"
