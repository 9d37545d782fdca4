#!/usr/bin/env bash
# Obtain the pinned etcd (kube-apiserver's storage in the tests); print the directory holding it.
#
# Order: ETCD_BIN, then `etcd` on PATH, then a cached build, then a fresh build from the Go module proxy into
# ${XDG_CACHE_HOME:-~/.cache}/notary/etcd-<version>/ (outside the repo). The root of go.etcd.io/etcd/server/v3
# is etcd's main package, so a scratch module that requires it builds etcd (~3 minutes the first time on 2
# cores). ETCD_ANY_VERSION=1 accepts another installed version.
NAME=etcd
VERSION="${ETCD_VERSION:-v3.6.16}"   # pinned; a release kube-apiserver $KUBE_VERSION supports
BINS=(etcd)
ENV_VAR=ETCD_BIN
# shellcheck source=scripts/lib/go-component.sh
source "$(dirname "$0")/lib/go-component.sh"

version_ok() { "$1" --version 2>/dev/null | grep -qx "etcd Version: ${VERSION#v}"; }

do_build() {  # $1 = scratch dir, $2 = output dir
  require_released "$1" go.etcd.io/etcd/server/v3 1.24
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$2/etcd" go.etcd.io/etcd/server/v3
}

find_or_build
