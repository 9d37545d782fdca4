#!/usr/bin/env bash
# Obtain a pinned npm tool the tests run (gitlab-ci-local, npm-groovy-lint); print the directory holding its
# executable (last line). Usage: scripts/npm-tool-install.sh TOOL   (a directory of scripts/npm-tools/)
#
# scripts/npm-tools/TOOL/ has the pinned version (package.json) and a lockfile with every transitive package's
# integrity hash, which `npm ci` checks. Order: $<TOOL>_BIN (e.g. GITLAB_CI_LOCAL_BIN), then TOOL on PATH (either
# must report the pinned version unless <TOOL>_ANY_VERSION=1), then a cached install, then `npm ci` into
# ${XDG_CACHE_HOME:-~/.cache}/notary/TOOL-<version>/ (outside the repo). NOTARY_NO_BUILD=1: find, never install.
# Progress goes to stderr; stdout is only the directory, so callers can capture it.
set -euo pipefail

tool="${1:?usage: npm-tool-install.sh TOOL}"
src="$(cd "$(dirname "$0")" && pwd)/npm-tools/$tool"
log() { printf '%s-install: %s\n' "$tool" "$*" >&2; }
die() { printf '%s-install: error: %s\n' "$tool" "$*" >&2; exit 1; }
[[ -f "$src/package.json" && -f "$src/package-lock.json" ]] || die "no pinned package.json + lockfile in $src"

version="$(sed -n "s/.*\"$tool\": \"\\([0-9.]*\\)\".*/\\1/p" "$src/package.json")"
[[ -n "$version" ]] || die "no pinned version of $tool in $src/package.json"
var="${tool^^}"; var="${var//-/_}"
bin_var="${var}_BIN" any_var="${var}_ANY_VERSION"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/notary"
dest="$cache_root/$tool-$version"
bindir="$dest/node_modules/.bin"

version_ok() {  # $1 = executable
  [[ "${!any_var:-0}" == 1 ]] && return 0
  "$1" --version 2>/dev/null | grep -qE "(^|[^0-9.])${version//./\\.}([^0-9.]|$)"
}
use_existing() {  # $1 = executable
  if ! version_ok "$1"; then
    log "$1 is not $tool $version (set $any_var=1 to use it anyway)"
    return 1
  fi
  dirname "$(readlink -f "$1")"
  exit 0
}

if [[ -n "${!bin_var:-}" ]]; then
  [[ -x "${!bin_var}" ]] || die "$bin_var=${!bin_var} is not an executable"
  use_existing "${!bin_var}" || die "$bin_var=${!bin_var} cannot be used (see above)"
fi
if on_path="$(command -v "$tool" 2>/dev/null)"; then
  use_existing "$on_path" || log "not using $on_path; falling back to the pinned install"
fi
if [[ -x "$bindir/$tool" ]]; then printf '%s\n' "$bindir"; exit 0; fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.$tool-$version.lock"
flock 9   # concurrent callers install once
if [[ -x "$bindir/$tool" ]]; then printf '%s\n' "$bindir"; exit 0; fi
[[ "${NOTARY_NO_BUILD:-0}" == 1 ]] && die "$tool $version is not installed yet (run scripts/npm-tool-install.sh $tool)"
command -v npm >/dev/null || die "no $tool found and no npm to install it (install Node.js with npm)"

log "installing $tool $version with npm ci (lockfile: scripts/npm-tools/$tool/package-lock.json)"
started=$SECONDS
work="$(mktemp -d "$cache_root/.install-$tool-XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp "$src/package.json" "$src/package-lock.json" "$work/"
(cd "$work" && npm ci --no-audit --no-fund --loglevel=error --ignore-scripts) >&2 || die "npm ci of $tool $version failed"
version_ok "$work/node_modules/.bin/$tool" || die "the installed $tool does not report $version"
rm -rf "$dest.tmp"
mv "$work" "$dest.tmp"
mv "$dest.tmp" "$dest"
trap - EXIT
log "installed $tool $version into $dest in $((SECONDS - started)) s"
printf '%s\n' "$bindir"
