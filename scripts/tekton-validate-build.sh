#!/usr/bin/env bash
# Build scripts/tekton-validate (Tekton's own Task validation, no cluster needed); print the directory holding
# the binary (last line). The tests validate ci-templates/tekton-task.yaml with it.
#
# Its module (scripts/tekton-validate/go.mod + go.sum) pins github.com/tektoncd/pipeline and every transitive
# module by hash; the Go module proxy serves them. Cached in ${XDG_CACHE_HOME:-~/.cache}/notary/tekton-validate-
# <hash of the sources>/, so editing the validator rebuilds it. Never looked for on PATH: it is this repo's
# own program. NOTARY_NO_BUILD=1: find, never build.
set -euo pipefail

src="$(cd "$(dirname "$0")/tekton-validate" && pwd)"
sources=("$src/go.mod" "$src/go.sum" "$src/main.go")
NAME=tekton-validate
VERSION="$(cat "${sources[@]}" | sha256sum | cut -c1-12)"
BINS=(tekton-validate)
MAKE_TARGET=ci-runners
# shellcheck source=scripts/lib/go-component.sh
source "$(dirname "$0")/lib/go-component.sh"

do_build() {  # $1 = scratch dir, $2 = output dir
  log "github.com/tektoncd/pipeline $(sed -n 's/^\tgithub.com\/tektoncd\/pipeline \(v[^ ]*\)$/\1/p' "$src/go.mod")"
  cp "${sources[@]}" "$1/"
  GOFLAGS=-mod=readonly CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$2/tekton-validate" .
}

find_or_build
