#!/usr/bin/env bash
# Obtain the pinned local-kms, a server that speaks the AWS KMS API (the awskms:// signer's tests sign through
# it on loopback, the private key never leaving it); print the directory holding it.
#
# Never looked up on PATH: only the pinned build counts. Built from the Go module proxy (its root is the main
# package; pure Go) into ${XDG_CACHE_HOME:-~/.cache}/notary/local-kms-<version>/, about 30 s the first time.
NAME=local-kms
VERSION="${LOCAL_KMS_VERSION:-v0.0.0-20260228092603-2a5e92d09ab6}"   # pinned
BINS=(local-kms)
MAKE_TARGET=ci-runners
# shellcheck source=scripts/lib/go-component.sh
source "$(dirname "$0")/lib/go-component.sh"

do_build() {  # $1 = scratch dir, $2 = output dir
  require_released "$1" github.com/nsmithuk/local-kms 1.22
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$2/local-kms" github.com/nsmithuk/local-kms
}

find_or_build
