#!/usr/bin/env bash
# Obtain the pinned `act` (runs GitHub Actions workflows locally); print the directory holding it (last line).
#
# The test suite runs ci-templates/github-actions.yml with it (tests/test_ci_templates_github.py), so a template
# that no longer works fails CI. Order: ACT_BIN (path to an act binary), then `act` on PATH, then a cached build,
# then a fresh build from the Go module proxy into ${XDG_CACHE_HOME:-~/.cache}/notary/act-<version>/ (outside
# the repo; about 2 minutes on 2 cores the first time). A binary found on PATH or via ACT_BIN must report the
# pinned version unless ACT_ANY_VERSION=1. NOTARY_NO_BUILD=1: find, never build (the tests ask this way; a
# build under way is waited for, via the lock). Progress goes to stderr; stdout is only the directory.
NAME=act
VERSION="${ACT_VERSION:-v0.2.89}"   # pinned: see docs/ci.md ("Which templates are executed")
BINS=(act)
ENV_VAR=ACT_BIN
MAKE_TARGET=ci-runners
# shellcheck source=scripts/lib/go-component.sh
source "$(dirname "$0")/lib/go-component.sh"

version_ok() { "$1" --version 2>/dev/null | grep -qE "(^| )v?${VERSION#v}\$"; }

do_build() {  # $1 = scratch dir, $2 = output dir
  require_released "$1" github.com/nektos/act 1.25
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$2/act" github.com/nektos/act
}

find_or_build
