#!/usr/bin/env bash
# Obtain the pinned cosign (the measured peer of `make bench`); print the directory holding it (last line).
#
# Only the benchmarks use it (benchmarks/cosign.py), never CI. Order: COSIGN_BIN (path to a cosign binary),
# then `cosign` on PATH, then a cached build, then a fresh build from the Go module proxy into
# ${XDG_CACHE_HOME:-~/.cache}/notary/cosign-<version>/ (outside the repo). A binary found on PATH or via
# COSIGN_BIN must report the pinned version unless COSIGN_ANY_VERSION=1.
# NOTARY_NO_BUILD=1: find, never build. Progress goes to stderr; stdout is only the directory.
set -euo pipefail

COSIGN_VERSION="${COSIGN_VERSION:-v2.6.5}"   # pinned: the v2.6.x release the Go module proxy serves
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/notary"
dest="$cache_root/cosign-$COSIGN_VERSION"

log() { printf 'cosign-build: %s\n' "$*" >&2; }
die() { printf 'cosign-build: error: %s\n' "$*" >&2; exit 1; }

version_ok() {  # $1 = cosign binary; true if it reports the pinned version (or the user accepts any)
  [[ "${COSIGN_ANY_VERSION:-0}" == 1 ]] && return 0
  "$1" version 2>/dev/null | grep -qE "^GitVersion:[[:space:]]+v?${COSIGN_VERSION#v}\$"
}

use_existing() {  # $1 = cosign binary
  local bin
  bin="$(readlink -f "$1")"
  if ! version_ok "$bin"; then
    log "$bin is not cosign ${COSIGN_VERSION} (set COSIGN_ANY_VERSION=1 to use it anyway)"
    return 1
  fi
  dirname "$bin"
  exit 0
}

if [[ -n "${COSIGN_BIN:-}" ]]; then
  [[ -x "$COSIGN_BIN" ]] || die "COSIGN_BIN=$COSIGN_BIN is not an executable"
  use_existing "$COSIGN_BIN" || die "COSIGN_BIN=$COSIGN_BIN cannot be used (see above)"
fi
if on_path="$(command -v cosign 2>/dev/null)"; then
  use_existing "$on_path" || log "not using $on_path; falling back to the pinned build"
fi
if [[ -x "$dest/cosign" ]]; then
  printf '%s\n' "$dest"
  exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.cosign-$COSIGN_VERSION.lock"
flock 9   # concurrent callers build once
if [[ -x "$dest/cosign" ]]; then
  printf '%s\n' "$dest"
  exit 0
fi
[[ "${NOTARY_NO_BUILD:-0}" == 1 ]] && die "cosign $COSIGN_VERSION is not built yet (run scripts/cosign-build.sh)"
command -v go >/dev/null || die "no cosign found and no Go toolchain to build it (install Go, or set COSIGN_BIN)"

log "building cosign $COSIGN_VERSION from the Go module proxy (several minutes on 2 cores the first time)"
started=$SECONDS
work="$(mktemp -d "$cache_root/.build-cosign-XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
# cosign's go.mod has no replace directives: a scratch module that requires it builds ./cmd/cosign as released.
printf 'module notary.invalid/cosign-build\n\ngo 1.25\n\nrequire github.com/sigstore/cosign/v2 %s\n' \
  "$COSIGN_VERSION" >"$work/go.mod"
mkdir -p "$work/bin"
(
  cd "$work"
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/release-utils/version.gitVersion=$COSIGN_VERSION" \
    -o "$work/bin/cosign" github.com/sigstore/cosign/v2/cmd/cosign
) >&2 || die "go build failed"
rm -rf "$dest.tmp"
mv "$work/bin" "$dest.tmp"
mv "$dest.tmp" "$dest"
log "built cosign $COSIGN_VERSION into $dest in $((SECONDS - started)) s"
printf '%s\n' "$dest"
