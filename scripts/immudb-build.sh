#!/usr/bin/env bash
# Obtain the pinned immudb server and the official immuclient; print the directory holding both (last line).
#
# Order: IMMUDB_BIN (path to an immudb binary; immuclient must sit next to it), then `immudb` on PATH, then a
# cached build, then a fresh build from the Go module proxy into ${XDG_CACHE_HOME:-~/.cache}/notary/immudb-
# <version>/ (outside the repo). A binary found on PATH or via IMMUDB_BIN must report the pinned version unless
# IMMUDB_ANY_VERSION=1. immudb's go.mod carries replace directives, so `go install module@version` refuses it:
# we download the module and build ./cmd/immudb and ./cmd/immuclient from a writable copy of its directory.
# Progress goes to stderr; stdout is only the directory, so callers can capture it.
NAME=immudb
VERSION="${IMMUDB_VERSION:-v1.10.0}"   # pinned: see docs/immudb.md ("Server version")
BINS=(immudb immuclient)
ENV_VAR=IMMUDB_BIN
MAKE_TARGET=immudb
TOGETHER=1
# shellcheck source=scripts/lib/go-component.sh
source "$(dirname "$0")/lib/go-component.sh"

version_ok() {
  local out
  out="$("$1" version 2>/dev/null || true)"
  grep -qE "(^|[^0-9])${VERSION#v}([^0-9]|$)" <<<"$out"
}

do_build() {  # $1 = scratch dir, $2 = output dir
  local pkg=github.com/codenotary/immudb moddir
  moddir="$(go_mod_dir "$pkg@$VERSION")" || return 1
  cp -R "$moddir" "$1/src" && chmod -R u+w "$1/src" && cd "$1/src" || return 1
  CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X $pkg/cmd/version.Version=${VERSION#v} -X $pkg/cmd/version.BuiltBy=notary-immudb-build.sh" \
    -o "$2/" ./cmd/immudb ./cmd/immuclient
}

find_or_build
