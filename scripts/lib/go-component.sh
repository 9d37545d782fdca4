# shellcheck shell=bash
# Shared by the *-build.sh scripts: find a pinned Go-built component (env var, then PATH, then the cache) or
# build it from the Go module proxy in a scratch directory outside the repo, then print the directory holding it.
#
# Callers set: NAME (log prefix, cache directory name), VERSION (pinned; or a hash of the sources for a
# component of this repo), BINS (array of binary names), do_build WORKDIR OUTDIR (function: build every binary
# of BINS into OUTDIR, run in WORKDIR) and, for a component that may already be installed, ENV_VAR (name of the
# variable that may point at the first binary) and version_ok BIN (function: true if BIN is the pinned version).
# Without ENV_VAR only the cached build counts (no env var, no PATH lookup). Optional: MAKE_TARGET (what the
# messages tell to run to build it; default components), TOGETHER=1 (the others must sit beside an installed
# first binary; never taken from PATH). Progress goes to stderr; stdout is only the directory, so
# `make` and the tests can capture it. NOTARY_NO_BUILD=1: find, never build (exit 1).
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
  local first dir link b found elsewhere=" or on PATH"
  first="$(readlink -f "$1")"
  dir="$(dirname "$first")"
  if ! any_version && ! version_ok "$first"; then
    log "$first is not $NAME $VERSION (set ${NAME^^}_ANY_VERSION=1 to use it anyway)"
    return 1
  fi
  if [[ "$(basename "$first")" == "${BINS[0]}" ]] && all_present "$dir"; then
    printf '%s\n' "$dir"   # all of them side by side: their own directory is the answer
    exit 0
  fi
  [[ "${TOGETHER:-0}" == 1 ]] && elsewhere=""
  # Present the binaries in one directory of symlinks, so callers get one answer whatever their origin.
  link="$cache_root/$NAME-found"
  mkdir -p "$link"
  for b in "${BINS[@]}"; do
    if [[ "$b" == "${BINS[0]}" ]]; then found="$first"
    elif [[ -x "$dir/$b" ]]; then found="$dir/$b"
    elif [[ -n "$elsewhere" ]] && found="$(command -v "$b" 2>/dev/null)"; then :
    else log "found $first but no $b next to it$elsewhere"; return 1
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

require_released() {  # $1 = scratch dir, $2 = module, $3 = go directive: a go.mod that requires module@VERSION
  # For a module whose go.mod has no replace directives: `go build <package>` in this scratch module (with
  # GOFLAGS=-mod=mod) then builds it as released, like `go install module@version` but with our own flags.
  printf 'module notary.invalid/%s-build\n\ngo %s\n\nrequire %s %s\n' "$NAME" "$3" "$2" "$VERSION" >"$1/go.mod"
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
  local dest="$cache_root/$NAME-$VERSION" first="${BINS[0]}" on_path work or_set=""
  if [[ -n "${ENV_VAR:-}" ]]; then
    or_set=", or set $ENV_VAR"
    if [[ -n "${!ENV_VAR:-}" ]]; then
      [[ -x "${!ENV_VAR}" ]] || die "$ENV_VAR=${!ENV_VAR} is not an executable"
      use_existing "${!ENV_VAR}" || die "$ENV_VAR=${!ENV_VAR} cannot be used (see above)"
    fi
    if on_path="$(command -v "$first" 2>/dev/null)"; then
      use_existing "$on_path" || log "not using $on_path; falling back to the pinned build"
    fi
  fi
  if all_present "$dest"; then printf '%s\n' "$dest"; exit 0; fi

  mkdir -p "$cache_root"
  wait_for_pending "$dest"
  exec 9>"$cache_root/.$NAME-$VERSION.lock"
  flock 9   # concurrent callers (make test, the background prefetch, parallel shells) build once
  if all_present "$dest"; then printf '%s\n' "$dest"; exit 0; fi
  # The tests ask with NOTARY_NO_BUILD=1: they wait for a build under way (the lock above) but never start
  # one, because a 20-minute build must not begin silently inside a test.
  [[ "${NOTARY_NO_BUILD:-0}" == 1 ]] && die "$NAME $VERSION is not built yet (run make ${MAKE_TARGET:-components}$or_set)"

  command -v go >/dev/null || die "no $first found and no Go toolchain to build it (install Go$or_set)"
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
