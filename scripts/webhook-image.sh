#!/usr/bin/env bash
# Build the notary gate webhook image from packaging/container/Containerfile with podman; print its name.
#
# Usage: scripts/webhook-image.sh [-- PODMAN_GLOBAL_OPTIONS...]   e.g. -- --root DIR --runroot DIR
# Env: NOTARY_IMAGE (default localhost/notary-gate:<version>, the name docs/kubernetes/deployment.yaml uses),
#      DEBIAN_MIRROR (default http://deb.debian.org/debian), DEBIAN_SUITE (default bookworm).
#
# Three steps, the first two cached under ${XDG_CACHE_HOME:-~/.cache}/notary/webhook-image/:
# 1. the base: a Debian root filesystem made by mmdebstrap from Debian's packages (essential + python3-venv +
#    ca-certificates, no docs), a tarball keyed by suite and package list, imported into podman's storage as
#    localhost/notary-debian-base:<suite> (no registry but Debian's archive is involved);
# 2. the dependencies' wheels (pip wheel against the host's Python, same minor version as the image's), keyed
#    by the dependency list;
# 3. notary's own wheel from this work tree (scripts/dist.sh when present), then `podman build --network=none`:
#    the image build itself never touches the network.
# Progress goes to stderr; stdout is the image name.
set -euo pipefail
cd "$(dirname "$0")/.."

podman_opts=()
if [[ "${1:-}" == "--" ]]; then shift; podman_opts=("$@"); fi
suite="${DEBIAN_SUITE:-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages="python3-venv,ca-certificates"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n 1)"
image="${NOTARY_IMAGE:-localhost/notary-gate:$version}"
base="localhost/notary-debian-base:$suite"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/notary/webhook-image"
python="${PYTHON:-.venv/bin/python}"
[[ -x "$python" ]] || python="$(command -v python3)"

log() { printf 'webhook-image: %s\n' "$*" >&2; }
die() { printf 'webhook-image: error: %s\n' "$*" >&2; exit 1; }
podman_() { podman "${podman_opts[@]}" "$@"; }

command -v podman >/dev/null || die "podman is not installed (Debian: apt-get install podman)"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

# 1. base root filesystem
key="$(printf '%s %s %s' "$suite" "$packages" "$mirror" | sha256sum | cut -c1-12)"
rootfs="$cache/debian-$suite-$key.tar"
if [[ ! -f "$rootfs" ]]; then
  command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (Debian: apt-get install mmdebstrap)"
  log "making the Debian $suite root filesystem with mmdebstrap (about 1-2 minutes, network-bound)"
  started=$SECONDS
  mmdebstrap --quiet --variant=essential --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --format=tar "$suite" "$rootfs.tmp" "$mirror" >&2
  mv "$rootfs.tmp" "$rootfs"
  log "root filesystem made in $((SECONDS - started)) s: $rootfs"
fi
base_id="$(podman_ image inspect --format '{{index .Labels "dev.notary.rootfs"}}' "$base" 2>/dev/null || true)"
if [[ "$base_id" != "$key" ]]; then
  log "importing $rootfs as $base"
  podman_ import --quiet --change "LABEL dev.notary.rootfs=$key" --change 'CMD ["/bin/sh"]' "$rootfs" "$base" >/dev/null
fi

# 2. dependency wheels (the host's Python must be the image's minor version: compiled wheels are per version)
image_py="$(tar -tf "$rootfs" | sed -n 's#^\./usr/bin/python\(3\.[0-9]*\)$#\1#p' | head -n 1)"
host_py="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[[ "$image_py" == "$host_py" ]] || die "the image has Python $image_py but $python is $host_py: set PYTHON"
ctx="$(mktemp -d "${TMPDIR:-/tmp}/notary-image-XXXXXX")"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/app" "$ctx/wheels"
if [[ -x scripts/dist.sh ]]; then
  scripts/dist.sh "$ctx/app" >/dev/null
else
  "$python" -m pip wheel --quiet --no-deps --wheel-dir "$ctx/app" . >&2
fi
wheel="$(ls "$ctx"/app/*.whl)"
deps_key="$(unzip -p "$wheel" '*.dist-info/METADATA' | grep '^Requires-Dist' | sort | sha256sum | cut -c1-12)"
wheels="$cache/wheels-py$host_py-$deps_key"
if [[ ! -d "$wheels" ]]; then
  log "collecting dependency wheels for Python $host_py"
  "$python" -m pip wheel --quiet --wheel-dir "$wheels.tmp" "$wheel[immudb]" >&2
  rm -f "$wheels.tmp/$(basename "$wheel")"
  mv "$wheels.tmp" "$wheels"
fi
cp "$wheels"/*.whl "$ctx/wheels/"
cp packaging/container/Containerfile "$ctx/"

# 3. the image
log "building $image"
started=$SECONDS
podman_ build --quiet --network=none --build-arg "BASE=$base" -t "$image" -f "$ctx/Containerfile" "$ctx" >&2
log "built $image in $((SECONDS - started)) s"
printf '%s\n' "$image"
