#!/usr/bin/env bash
# Obtain the pinned `act` (runs GitHub Actions workflows locally); print the directory holding it (last line).
#
# The test suite runs ci-templates/github-actions.yml with it (tests/test_ci_templates_github.py), so a template
# that no longer works fails CI. Order: ACT_BIN (path to an act binary), then `act` on PATH, then a cached build,
# then a fresh build from the Go module proxy into ${XDG_CACHE_HOME:-~/.cache}/notary/act-<version>/ (outside
# the repo). A binary found on PATH or via ACT_BIN must report the pinned version unless ACT_ANY_VERSION=1.
# NOTARY_NO_BUILD=1: find, never build (the tests ask this way; a build under way is waited for, via the lock).
# Progress goes to stderr; stdout is only the directory, so callers can capture it.
set -euo pipefail

ACT_VERSION="${ACT_VERSION:-v0.2.89}"   # pinned: see docs/ci.md ("Which templates are executed")
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/notary"
dest="$cache_root/act-$ACT_VERSION"

log() { printf 'act-build: %s\n' "$*" >&2; }
die() { printf 'act-build: error: %s\n' "$*" >&2; exit 1; }

version_ok() {  # $1 = act binary; true if it reports the pinned version (or the user accepts any)
  [[ "${ACT_ANY_VERSION:-0}" == 1 ]] && return 0
  "$1" --version 2>/dev/null | grep -qE "(^| )v?${ACT_VERSION#v}\$"
}

use_existing() {  # $1 = act binary
  local bin
  bin="$(readlink -f "$1")"
  if ! version_ok "$bin"; then
    log "$bin is not act ${ACT_VERSION} (set ACT_ANY_VERSION=1 to use it anyway)"
    return 1
  fi
  dirname "$bin"
  exit 0
}

if [[ -n "${ACT_BIN:-}" ]]; then
  [[ -x "$ACT_BIN" ]] || die "ACT_BIN=$ACT_BIN is not an executable"
  use_existing "$ACT_BIN" || die "ACT_BIN=$ACT_BIN cannot be used (see above)"
fi
if on_path="$(command -v act 2>/dev/null)"; then
  use_existing "$on_path" || log "not using $on_path; falling back to the pinned build"
fi
if [[ -x "$dest/act" ]]; then
  printf '%s\n' "$dest"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.act-$ACT_VERSION.lock"
flock 9   # concurrent callers (make test, a test, parallel shells) build once
if [[ -x "$dest/act" ]]; then
  printf '%s\n' "$dest"
  exit 0
fi
[[ "${NOTARY_NO_BUILD:-0}" == 1 ]] && die "act $ACT_VERSION is not built yet (run scripts/act-build.sh, or set ACT_BIN)"
command -v go >/dev/null || die "no act found and no Go toolchain to build it (install Go, or set ACT_BIN)"

log "building act $ACT_VERSION from the Go module proxy (about 2 minutes on 2 cores the first time)"
started=$SECONDS
work="$(mktemp -d "$cache_root/.build-act-XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
# act's go.mod has no replace directives, so a scratch module that requires it builds it as released.
printf 'module notary.invalid/act-build\n\ngo 1.25\n\nrequire github.com/nektos/act %s\n' "$ACT_VERSION" >"$work/go.mod"
mkdir -p "$work/bin"
(
  cd "$work"
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/bin/act" github.com/nektos/act
) >&2 || die "go build failed"
rm -rf "$dest.tmp"
mv "$work/bin" "$dest.tmp"
mv "$dest.tmp" "$dest"
log "built $("$dest/act" --version 2>/dev/null || echo act) into $dest in $((SECONDS - started)) s"
printf '%s\n' "$dest"
