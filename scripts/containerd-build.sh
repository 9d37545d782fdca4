#!/usr/bin/env bash
# Obtain the pinned containerd 2.x (daemon, ctr, runc shim) for the image-verifier and OCI-hook tests; print the
# directory holding them.
#
# Order: CONTAINERD_BIN, then `containerd` on PATH (only if it is the pinned 2.x: Debian's 1.6 has no image
# verifier plugin), then a cached build, then a fresh build from the Go module proxy into
# ${XDG_CACHE_HOME:-~/.cache}/notary/containerd-<version>/ (outside the repo). containerd's go.mod has no
# replace lines, so a scratch module that requires it builds cmd/containerd, cmd/ctr and
# cmd/containerd-shim-runc-v2 (a few minutes the first time on 2 cores). No cgo: the btrfs snapshotter (cgo
# only) is left out, overlayfs and native remain. CONTAINERD_ANY_VERSION=1 accepts another installed 2.x.
NAME=containerd
VERSION="${CONTAINERD_VERSION:-v2.4.2}"   # pinned; 2.x is needed for io.containerd.image-verifier.v1.bindir
BINS=(containerd ctr containerd-shim-runc-v2)
ENV_VAR=CONTAINERD_BIN
# shellcheck source=scripts/lib/go-component.sh
source "$(dirname "$0")/lib/go-component.sh"

version_ok() {
  local out
  out="$("$1" --version 2>/dev/null || true)"
  if any_version; then grep -qE ' v?2\.' <<<"$out"; else grep -qE " $VERSION( |$)" <<<"$out"; fi
}

do_build() {  # $1 = scratch dir, $2 = output dir
  local pkg=github.com/containerd/containerd/v2
  require_released "$1" "$pkg" 1.24
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w -X $pkg/version.Version=$VERSION -X $pkg/version.Revision=notary-containerd-build" \
    -o "$2/" "$pkg/cmd/containerd" "$pkg/cmd/ctr" "$pkg/cmd/containerd-shim-runc-v2"
}

find_or_build
