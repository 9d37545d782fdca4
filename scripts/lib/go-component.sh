# shellcheck shell=bash
# Shared by the *-build.sh scripts: find a pinned Go-built component (env var, then PATH, then the cache) or
# build it from the Go module proxy in a scratch module outside the repo, then print the directory holding it.
#
# Callers set: NAME (log prefix), VERSION (pinned), BINS (array of binary names), ENV_VAR (name of the variable
# that may point at the first binary), version_ok BIN (function: true if BIN is the pinned version) and
# do_build WORKDIR OUTDIR (function: build every binary of BINS into OUTDIR). Progress goes to stderr; stdout is
# only the directory, so `make` and the tests can capture it. NOTARY_NO_BUILD=1: find, never build (exit 1).
set -euo pipefail

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/notary"

log() { printf '%s: %s\n' "$NAME" "$*" >&2; }
die() { printf '%s: error: %s\n' "$NAME" "$*" >&2; exit 1; }

any_version() {  # NOTARY_ANY_VERSION=1 (or <NAME>_ANY_VERSION=1) accepts whatever version is installed
  local specific="${NAME^^}_ANY_VERSION"
  specific="${specific//-/_}"
  [[ "${NOTARY_ANY_VERSION:-0}" == 1 || "${!specific:-0}" == 1 ]]
}

all_present() {  # $1 = dir; true if every binary of BINS is executable there
  local b
  for b in "${BINS[@]}"; do [[ -x "$1/$b" ]] || return 1; done
}

use_existing() {  # $1 = first binary found outside the cache; its siblings (or PATH) supply the others
  local first dir link b found
  first="$(readlink -f "$1")"
  dir="$(dirname "$first")"
  if ! any_version && ! version_ok "$first"; then
    log "$first is not $NAME $VERSION (set ${NAME^^}_ANY_VERSION=1 to use it anyway)"
    return 1
  fi
  # Present the binaries in one directory of symlinks, so callers get one answer whatever their origin.
  link="$cache_root/$NAME-found"
  mkdir -p "$link"
  for b in "${BINS[@]}"; do
    if [[ -x "$dir/$b" ]]; then found="$dir/$b"
    elif found="$(command -v "$b" 2>/dev/null)"; then :
    else log "found $first but no $b next to it or on PATH"; return 1
    fi
    ln -sfn "$(readlink -f "$found")" "$link/$b"
  done
  printf '%s\n' "$link"
  exit 0
}

go_mod_dir() {  # $1 = module@version; print its (read-only) directory in the module cache
  local json dir
  json="$(cd "$cache_root" && GOFLAGS=-mod=mod go mod download -json "$1")" || die "go mod download $1 failed"
  dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")"
  [[ -d "$dir" ]] || die "module directory of $1 not found in: $json"
  printf '%s\n' "$dir"
}

wait_for_pending() {  # $1 = dest; a build scripts/components.sh queued (marker: its pid) may not hold the lock yet
  local marker="$cache_root/.$NAME.pending" pid
  [[ "${NOTARY_NO_BUILD:-0}" == 1 ]] || return 0
  while [[ -f "$marker" ]] && ! all_present "$1"; do
    pid="$(cat "$marker" 2>/dev/null || true)"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || break
    sleep 2
  done
}

find_or_build() {
  local dest="$cache_root/$NAME-$VERSION" first="${BINS[0]}" on_path work
  if [[ -n "${!ENV_VAR:-}" ]]; then
    [[ -x "${!ENV_VAR}" ]] || die "$ENV_VAR=${!ENV_VAR} is not an executable"
    use_existing "${!ENV_VAR}" || die "$ENV_VAR=${!ENV_VAR} cannot be used (see above)"
  fi
  if on_path="$(command -v "$first" 2>/dev/null)"; then
    use_existing "$on_path" || log "not using $on_path; falling back to the pinned build"
  fi
  if all_present "$dest"; then printf '%s\n' "$dest"; exit 0; fi

  mkdir -p "$cache_root"
  wait_for_pending "$dest"
  exec 9>"$cache_root/.$NAME-$VERSION.lock"
  flock 9   # concurrent callers (make test, the background prefetch, parallel shells) build once
  if all_present "$dest"; then printf '%s\n' "$dest"; exit 0; fi
  # The tests ask with NOTARY_NO_BUILD=1: they wait for a build under way (the lock above) but never start
  # one, because a 20-minute build must not begin silently inside a test.
  [[ "${NOTARY_NO_BUILD:-0}" == 1 ]] && die "$NAME $VERSION is not built yet (run make components, or set $ENV_VAR)"

  command -v go >/dev/null || die "no $first found and no Go toolchain to build it (install Go, or set $ENV_VAR)"
  log "building $NAME $VERSION from the Go module proxy (see the README for how long the first build takes)"
  work="$(mktemp -d "$cache_root/.build-$NAME-XXXXXX")"
  # shellcheck disable=SC2064
  trap "chmod -R u+w '$work' 2>/dev/null; rm -rf '$work'" EXIT
  mkdir -p "$work/bin"
  local started=$SECONDS
  (cd "$work" && do_build "$work" "$work/bin") >&2 || die "go build failed"
  all_present "$work/bin" || die "the build did not produce ${BINS[*]}"
  rm -rf "$dest.tmp"
  mv "$work/bin" "$dest.tmp"
  mv "$dest.tmp" "$dest"
  log "built ${BINS[*]} into $dest in $((SECONDS - started)) s"
  printf '%s\n' "$dest"
}
