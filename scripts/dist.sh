#!/usr/bin/env bash
# The release step: build the notary-ledger wheel and print its sha256, the two things a CI job needs to install
# notary from a pinned, hash-checked artifact (never by a bare name: `notary` on the public index is another
# project). Usage: scripts/dist.sh [OUTDIR]   (default dist/)
#
# The wheel is built from the files git knows (tracked, plus untracked ones not ignored) copied to a scratch
# directory, so a stale build/ or egg-info in the work tree never leaks into it, and with SOURCE_DATE_EPOCH set
# to the last commit's time, so the same commit and build backend give the same bytes: anyone can rebuild
# it and compare the hash. Progress goes to stderr; stdout ends with three lines: the wheel's path, its sha256,
# and the pip requirement to put in CI (with your own URL for the wheel).
set -euo pipefail
cd "$(dirname "$0")/.."

out="$(realpath -m "${1:-dist}")"
python="${PYTHON:-.venv/bin/python}"
[[ -x "$python" ]] || python="$(command -v python3)"

log() { printf 'dist: %s\n' "$*" >&2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/notary-dist-XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/wheel" "$out"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [[ -e "$f" ]] && printf '%s\0' "$f"     # a tracked file deleted in the work tree is not shipped
  done | tar --null -T - -cf - | tar -xf - -C "$work/src"
  export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
else
  tar --exclude=.venv --exclude=.git --exclude=build --exclude=dist -cf - . | tar -xf - -C "$work/src"
fi

log "building the wheel (pip wheel, isolated build backend)"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/wheel" "$work/src" >&2
wheels=("$work"/wheel/*.whl)
[[ ${#wheels[@]} == 1 && -f "${wheels[0]}" ]] || { log "error: expected one wheel, got: ${wheels[*]}"; exit 1; }
name="$(basename "${wheels[0]}")"
mv -f "${wheels[0]}" "$out/$name"
sum="$(sha256sum "$out/$name" | cut -d' ' -f1)"
printf '%s  %s\n' "$sum" "$name" >"$out/$name.sha256"
dist_name="${name%%-*}"
log "wheel: $out/$name"
log "install it in CI with (pip checks the hash; the URL is where your release step publishes the wheel):"
printf '%s\n%s\n%s\n' "$out/$name" "$sum" "${dist_name//_/-}[immudb] @ https://YOUR-ARTIFACT-HOST/$name#sha256=$sum"
