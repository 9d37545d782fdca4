#!/usr/bin/env bash
# The main job end to end on the embedded ledger: build a real OCI image, notarize it under a CI job id,
# verify it, revoke it, see verification refused, and read its history. Everything lives in ./demo-work.
set -euo pipefail
cd "$(dirname "$0")/.."
NOTARY="$PWD/.venv/bin/notary"
PY="$PWD/.venv/bin/python"
WORK="$PWD/demo-work"
rm -rf "$WORK"; mkdir -p "$WORK"
export NOTARY_LEDGER="file://$WORK/ledger.db" NOTARY_STATE_DIR="$WORK/state"
unset NOTARY_SIGNING_KEY NOTARY_CONFIG

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$'; printf ' %q' "$@"; printf '\n'; "$@"; }
expect_exit() {  # $1 = the exit code the command must end with, $2 = why; then the command
  local want=$1 why=$2 code
  shift 2
  set +e
  "$@"
  code=$?
  set -e
  echo "exit code: $code ($why)"
  [ "$code" -eq "$want" ] || { echo "expected exit $want: $why" >&2; exit 1; }
}

step "1. build a small OCI image (umoci + busybox-static)"
umoci init --layout "$WORK/image" >/dev/null
umoci new --image "$WORK/image:v1"
umoci unpack --image "$WORK/image:v1" "$WORK/bundle" >/dev/null
mkdir -p "$WORK/bundle/rootfs/bin"
install -m 0755 /bin/busybox "$WORK/bundle/rootfs/bin/busybox"
ln -s busybox "$WORK/bundle/rootfs/bin/sh"
echo "built by the notary demo" > "$WORK/bundle/rootfs/hello.txt"
umoci repack --image "$WORK/image:v1" "$WORK/bundle" >/dev/null
umoci config --image "$WORK/image:v1" --config.cmd /bin/sh --config.cmd=-c --config.cmd="cat /hello.txt" >/dev/null
echo "OCI layout at $WORK/image (tag v1)"

step "2. generate the pipeline's signing key"
run "$NOTARY" key generate --out "$WORK/ci.key"

step "3. create the ledger NOTARY_LEDGER names (a named ledger is created only on purpose), notarize the image"
run "$NOTARY" ledger init
run "$NOTARY" notarize "oci:$WORK/image:v1" --name registry.example/demo/app --job-id demo-42 --key "$WORK/ci.key"

step "4. verify it (trusted: exit 0)"
run "$NOTARY" verify "oci:$WORK/image:v1" --key "$WORK/ci.key.pub"

step "5. revoke it"
run "$NOTARY" revoke "oci:$WORK/image:v1" --reason "demo: pretend CVE-2026-0001" --key "$WORK/ci.key"

step "6. verify again: refused (exit 1)"
expect_exit 1 "revoked" "$NOTARY" verify "oci:$WORK/image:v1" --key "$WORK/ci.key.pub"

step "7. history of the subject (every record proven included)"
run "$NOTARY" history "oci:$WORK/image:v1"

step "8. what did job demo-42 notarize?"
run "$NOTARY" lookup --job-id demo-42

step "9. the ledger and this client's trusted state"
run "$NOTARY" ledger info

step "10. an attacker with write access to the ledger file deletes the revocation: integrity failure (exit 3)"
cp "$WORK/ledger.db" "$WORK/ledger.db.bak"
"$PY" - "$WORK/ledger.db" <<'PYEOF'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("DELETE FROM entries WHERE key LIKE 'subject/%' AND revision = 2")  # the revocation's row
con.commit()
PYEOF
expect_exit 3 "the signed key index still names the deleted revocation" \
  "$NOTARY" verify "oci:$WORK/image:v1" --key "$WORK/ci.key.pub"
mv "$WORK/ledger.db.bak" "$WORK/ledger.db"

printf '\n\033[1mDemo complete:\033[0m built, notarized, verified (0), revoked, refused (1), audited, tamper caught (3).\n'
printf 'Ledger: %s   trusted state: %s\n' "$NOTARY_LEDGER" "$NOTARY_STATE_DIR"
