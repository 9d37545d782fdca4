#!/usr/bin/env bash
# The Go-built components the integration tests run for real: containerd 2.x (+ ctr, runc shim), etcd and
# kube-apiserver (scripts/*-build.sh: installed ones first, else pinned builds cached under
# ${XDG_CACHE_HOME:-~/.cache}/notary/).
#
#   scripts/components.sh                 find or build all of them now; print NAME=DIR lines
#   scripts/components.sh --during CMD... build them in the background while CMD runs (make test: the
#                                         first, cold kube-apiserver build overlaps the rest of the suite);
#                                         exit with CMD's status
#
# Order: containerd, etcd, kube-apiserver (smallest first, so the tests that need them wait least). While the
# background builds run, a marker per component (.NAME.pending, holding the builder's pid) tells the tests'
# lookups (NOTARY_NO_BUILD=1) to wait for it instead of reporting the component missing. The build log goes
# to ${XDG_CACHE_HOME:-~/.cache}/notary/components-build.log.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPONENTS=(containerd etcd kube-apiserver)
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/notary"

build_all() {  # each builder removes its component's marker when it is done, built or not
  local name dir status=0
  for name in "${COMPONENTS[@]}"; do
    if dir="$(scripts/$name-build.sh | tail -n 1)"; then
      printf '%s=%s\n' "$name" "$dir"
    else
      printf '%s: FAILED\n' "$name" >&2
      status=1
    fi
    rm -f "$cache_root/.$name.pending"
  done
  return $status
}

if [[ "${1:-}" != "--during" ]]; then
  build_all
  exit
fi
shift
[[ $# -gt 0 ]] || { echo "usage: $0 --during CMD [ARGS...]" >&2; exit 2; }
mkdir -p "$cache_root"
log="$cache_root/components-build.log"
started=$SECONDS
set -m  # the builder gets its own process group, so it can be stopped with everything it started
( trap - INT TERM; build_all ) >"$log" 2>&1 &
builder=$!
set +m
for name in "${COMPONENTS[@]}"; do printf '%s\n' "$builder" >"$cache_root/.$name.pending"; done
echo "components: building in the background (pid $builder), log: $log" >&2

status=0
"$@" || status=$?

if kill -0 "$builder" 2>/dev/null; then
  echo "components: $* ended before the builds; stopping them (the Go build cache keeps what was compiled)" >&2
  kill -TERM -- "-$builder" 2>/dev/null || true
fi
wait "$builder" 2>/dev/null && build_status=0 || build_status=$?
for name in "${COMPONENTS[@]}"; do rm -f "$cache_root/.$name.pending"; done
echo "components: background builds ended with status $build_status after $((SECONDS - started)) s:" >&2
grep -E '^[a-z-]+(=|: )| built |error' "$log" >&2 || true
exit $status
