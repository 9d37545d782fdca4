#!/usr/bin/env bash
# Obtain the pinned immudb server and the official immuclient; print the directory holding both (last line).
#
# Order: IMMUDB_BIN (path to an immudb binary), then `immudb` on PATH, then a cached build, then a fresh build
# from the Go module proxy into ${XDG_CACHE_HOME:-~/.cache}/notary/immudb-<version>/ (outside the repo).
# A binary found on PATH or via IMMUDB_BIN must report the pinned version unless IMMUDB_ANY_VERSION=1.
# immudb's go.mod carries replace directives, so `go install module@version` refuses it: we download the
# module and build ./cmd/immudb and ./cmd/immuclient from a writable copy of its directory.
# Progress goes to stderr; stdout is only the directory, so callers can capture it.
set -euo pipefail

IMMUDB_VERSION="${IMMUDB_VERSION:-v1.10.0}"   # pinned: see docs/immudb.md ("Server version")
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/notary"
dest="$cache_root/immudb-$IMMUDB_VERSION"

log() { printf 'immudb-build: %s\n' "$*" >&2; }
die() { printf 'immudb-build: error: %s\n' "$*" >&2; exit 1; }

version_ok() {  # $1 = immudb binary; true if it reports the pinned version (or the user accepts any)
  [[ "${IMMUDB_ANY_VERSION:-0}" == 1 ]] && return 0
  local out
  out="$("$1" version 2>/dev/null || true)"
  grep -qE "(^|[^0-9])${IMMUDB_VERSION#v}([^0-9]|$)" <<<"$out"
}

use_existing() {  # $1 = immudb binary; immuclient must sit next to it or be on PATH
  local bin dir
  bin="$(readlink -f "$1")"
  dir="$(dirname "$bin")"
  if [[ ! -x "$dir/immuclient" ]]; then
    log "found $bin but no immuclient next to it"
    return 1
  fi
  if ! version_ok "$bin"; then
    log "$bin is not immudb ${IMMUDB_VERSION} (set IMMUDB_ANY_VERSION=1 to use it anyway)"
    return 1
  fi
  printf '%s\n' "$dir"
  exit 0
}

if [[ -n "${IMMUDB_BIN:-}" ]]; then
  [[ -x "$IMMUDB_BIN" ]] || die "IMMUDB_BIN=$IMMUDB_BIN is not an executable"
  use_existing "$IMMUDB_BIN" || die "IMMUDB_BIN=$IMMUDB_BIN cannot be used (see above)"
fi
if on_path="$(command -v immudb 2>/dev/null)"; then
  use_existing "$on_path" || log "not using $on_path; falling back to the pinned build"
fi
if [[ -x "$dest/immudb" && -x "$dest/immuclient" ]]; then
  printf '%s\n' "$dest"
  exit 0
fi

command -v go >/dev/null || die "no immudb found and no Go toolchain to build it (install Go, or set IMMUDB_BIN)"
mkdir -p "$cache_root"
exec 9>"$cache_root/.immudb-$IMMUDB_VERSION.lock"
flock 9   # two concurrent callers (make test, parallel shells) build once
if [[ -x "$dest/immudb" && -x "$dest/immuclient" ]]; then
  printf '%s\n' "$dest"
  exit 0
fi

log "building immudb $IMMUDB_VERSION from the Go module proxy (several minutes on a small machine)"
modjson="$(cd "$cache_root" && GOFLAGS=-mod=mod go mod download -json "github.com/codenotary/immudb@$IMMUDB_VERSION")" \
  || die "go mod download github.com/codenotary/immudb@$IMMUDB_VERSION failed"
moddir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$modjson")"
[[ -d "$moddir" ]] || die "module directory not found in: $modjson"

work="$(mktemp -d "$cache_root/.build-XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -R "$moddir" "$work/src"
chmod -R u+w "$work/src"
out="$work/bin"
mkdir -p "$out"
(
  cd "$work/src"
  CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/codenotary/immudb/cmd/version.Version=${IMMUDB_VERSION#v} -X github.com/codenotary/immudb/cmd/version.BuiltBy=notary-immudb-build.sh" \
    -o "$out/" ./cmd/immudb ./cmd/immuclient
) >&2 || die "go build failed"
rm -rf "$dest.tmp"
mv "$out" "$dest.tmp"
mv "$dest.tmp" "$dest"
log "built $("$dest/immudb" version 2>/dev/null | head -n 1 || echo immudb) into $dest"
printf '%s\n' "$dest"
