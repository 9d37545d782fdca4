#!/usr/bin/env bash
# Obtain the pinned cosign (the measured peer of `make bench`); print the directory holding it (last line).
#
# Only the benchmarks use it (benchmarks/cosign.py), never CI. Order: COSIGN_BIN (path to a cosign binary),
# then `cosign` on PATH, then a cached build, then a fresh build from the Go module proxy into
# ${XDG_CACHE_HOME:-~/.cache}/notary/cosign-<version>/ (outside the repo; several minutes on 2 cores the first
# time). A binary found on PATH or via COSIGN_BIN must report the pinned version unless COSIGN_ANY_VERSION=1.
# NOTARY_NO_BUILD=1: find, never build. Progress goes to stderr; stdout is only the directory.
NAME=cosign
VERSION="${COSIGN_VERSION:-v2.6.5}"   # pinned: the v2.6.x release the Go module proxy serves
BINS=(cosign)
ENV_VAR=COSIGN_BIN
MAKE_TARGET=cosign
# shellcheck source=scripts/lib/go-component.sh
source "$(dirname "$0")/lib/go-component.sh"

version_ok() { "$1" version 2>/dev/null | grep -qE "^GitVersion:[[:space:]]+v?${VERSION#v}\$"; }

do_build() {  # $1 = scratch dir, $2 = output dir
  require_released "$1" github.com/sigstore/cosign/v2 1.25
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/release-utils/version.gitVersion=$VERSION" \
    -o "$2/cosign" github.com/sigstore/cosign/v2/cmd/cosign
}

find_or_build
