#!/usr/bin/env bash
# Build scripts/tekton-validate (Tekton's own Task validation, no cluster needed); print the directory holding
# the binary (last line). The tests validate ci-templates/tekton-task.yaml with it.
#
# Its module (scripts/tekton-validate/go.mod + go.sum) pins github.com/tektoncd/pipeline and every transitive
# module by hash; the Go module proxy serves them. Cached in ${XDG_CACHE_HOME:-~/.cache}/notary/tekton-validate-
# <hash of the sources>/, so editing the validator rebuilds it. NOTARY_NO_BUILD=1: find, never build.
set -euo pipefail

src="$(cd "$(dirname "$0")/tekton-validate" && pwd)"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/notary"
key="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)"
dest="$cache_root/tekton-validate-$key"

log() { printf 'tekton-validate-build: %s\n' "$*" >&2; }
die() { printf 'tekton-validate-build: error: %s\n' "$*" >&2; exit 1; }

if [[ -x "$dest/tekton-validate" ]]; then printf '%s\n' "$dest"; exit 0; fi
mkdir -p "$cache_root"
exec 9>"$cache_root/.tekton-validate-$key.lock"
flock 9
if [[ -x "$dest/tekton-validate" ]]; then printf '%s\n' "$dest"; exit 0; fi
[[ "${NOTARY_NO_BUILD:-0}" == 1 ]] && die "tekton-validate is not built yet (run scripts/tekton-validate-build.sh)"
command -v go >/dev/null || die "no Go toolchain to build tekton-validate (install Go)"

log "building tekton-validate (github.com/tektoncd/pipeline $(sed -n 's/^\tgithub.com\/tektoncd\/pipeline \(v[^ ]*\)$/\1/p' "$src/go.mod"))"
started=$SECONDS
work="$(mktemp -d "$cache_root/.build-tekton-validate-XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp "$src/go.mod" "$src/go.sum" "$src/main.go" "$work/"
mkdir -p "$work/bin"
(cd "$work" && GOFLAGS=-mod=readonly CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/bin/tekton-validate" .) >&2 \
  || die "go build failed"
rm -rf "$dest.tmp"
mv "$work/bin" "$dest.tmp"
mv "$dest.tmp" "$dest"
log "built $dest/tekton-validate in $((SECONDS - started)) s"
printf '%s\n' "$dest"
