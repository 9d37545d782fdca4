#!/usr/bin/env bash
# Build the C2SP peers the checkpoint and witness tests talk to; print the directory holding them (last line):
#   c2sp-peer    scripts/c2sp-peer/main.go: golang.org/x/mod/sumdb/note + filippo.io/torchwood read notary's
#                checkpoints and cosignatures (never notary's code)
#   litewitness  filippo.io/torchwood's C2SP tlog-witness, the one the public witness network runs
#   witnessctl   its configuration tool
#
# The module (scripts/c2sp-peer/go.mod + go.sum) pins torchwood v0.6.1 and every transitive module by hash; the
# Go module proxy serves them; pure Go (CGO_ENABLED=0). Cached in ${XDG_CACHE_HOME:-~/.cache}/notary/c2sp-peer-
# <hash of the sources>/. NOTARY_NO_BUILD=1: find, never build.
set -euo pipefail

src="$(cd "$(dirname "$0")/c2sp-peer" && pwd)"
sources=("$src/go.mod" "$src/go.sum" "$src/main.go")
NAME=c2sp-peer
VERSION="$(cat "${sources[@]}" | sha256sum | cut -c1-12)"
BINS=(c2sp-peer litewitness witnessctl)
MAKE_TARGET=ci-runners
# shellcheck source=scripts/lib/go-component.sh
source "$(dirname "$0")/lib/go-component.sh"

do_build() {  # $1 = scratch dir, $2 = output dir
  log "filippo.io/torchwood $(sed -n 's/^\tfilippo.io\/torchwood \(v[^ ]*\)$/\1/p' "$src/go.mod")"
  cp "${sources[@]}" "$1/"
  export GOFLAGS=-mod=readonly CGO_ENABLED=0
  go build -trimpath -ldflags "-s -w" -o "$2/c2sp-peer" .
  go build -trimpath -ldflags "-s -w" -o "$2/litewitness" filippo.io/torchwood/cmd/litewitness
  go build -trimpath -ldflags "-s -w" -o "$2/witnessctl" filippo.io/torchwood/cmd/witnessctl
}

find_or_build
