#!/usr/bin/env bash
# Obtain the pinned kube-apiserver (the tests' real Kubernetes API server); print the directory holding it.
#
# Order: KUBE_APISERVER_BIN, then `kube-apiserver` on PATH, then a cached build, then a fresh build from the Go
# module proxy into ${XDG_CACHE_HOME:-~/.cache}/notary/kube-apiserver-<version>/ (outside the repo).
# k8s.io/kubernetes replaces its k8s.io/* staging modules with ./staging paths that a module download does not
# carry, so a scratch module requires k8s.io/kubernetes and replaces each of them with its published v0.X.Y
# release. The first build takes ~20 minutes on 2 cores (the Go build cache makes later ones fast); the binary
# is static (no cgo) and -trimpath. KUBE_APISERVER_ANY_VERSION=1 accepts another installed version.
NAME=kube-apiserver
VERSION="${KUBE_VERSION:-v1.34.4}"   # pinned; the staging modules are v0.<minor>.<patch> of the same release
BINS=(kube-apiserver)
ENV_VAR=KUBE_APISERVER_BIN
# shellcheck source=scripts/lib/go-component.sh
source "$(dirname "$0")/lib/go-component.sh"

version_ok() { "$1" --version 2>/dev/null | grep -qx "Kubernetes $VERSION"; }

do_build() {  # $1 = scratch dir, $2 = output dir
  local gomod staging v0="v0.${VERSION#v1.}" ldflags pkg
  gomod="$(go_mod_dir "k8s.io/kubernetes@$VERSION")/go.mod"
  staging="$(sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$gomod")"
  [[ -n "$staging" ]] || die "no staging replacements found in $gomod"
  {
    printf 'module notary.invalid/kube-build\n\ngo %s\n\n' "$(sed -n 's/^go //p' "$gomod")"
    sed -n 's/^godebug /godebug /p' "$gomod"
    printf 'require k8s.io/kubernetes %s\n\nreplace (\n' "$VERSION"
    while read -r pkg; do printf '\t%s => %s %s\n' "$pkg" "$pkg" "$v0"; done <<<"$staging"
    printf ')\n'
  } >"$1/go.mod"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$VERSION -X $pkg.gitTreeState=clean"
    ldflags+=" -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(cut -d. -f2 <<<"$VERSION")"
  done
  GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$2/" k8s.io/kubernetes/cmd/kube-apiserver
}

find_or_build
