#!/usr/bin/env bash
# Start the pinned immudb on loopback for trying notary against it, and print how to use and stop it.
#
# Data lives in ${IMMUDB_DATA_DIR:-${XDG_CACHE_HOME:-~/.cache}/notary/immudb-data} (kept between runs, so the
# ledger and notary's trusted state stay in step; delete it together with notary's state to start over).
# Port: IMMUDB_PORT, else 3322 if free, else a free port. Only 127.0.0.1 is bound. The web server (immudb's
# HTTP/JSON gateway under /api, which notary uses with NOTARY_IMMUDB_GATEWAY, and its console) listens on
# IMMUDB_WEB_PORT, else 8080 if free, else a free port; pgsql and metrics servers are off. Credentials are immudb's defaults (immudb/immudb) unless the data dir already exists
# with another password: notary reads the password from NOTARY_IMMUDB_PASSWORD or NOTARY_IMMUDB_PASSWORD_FILE.
# IMMUDB_SIGNING_KEY=1 creates (once) and uses an ECDSA state-signing key; its public half is printed for
# NOTARY_IMMUDB_SERVER_KEY.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bindir="$("$here/immudb-build.sh" | tail -n 1)"
state="${XDG_CACHE_HOME:-$HOME/.cache}/notary"
data="${IMMUDB_DATA_DIR:-$state/immudb-data}"
mkdir -p "$data"
pidfile="$data.pid"
logfile="$data.log"

if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "immudb-up: an immudb is already running from $data (pid $(cat "$pidfile")); stop it with: kill $(cat "$pidfile")" >&2
  exit 1
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port="${IMMUDB_PORT:-}"
if [[ -z "$port" ]]; then
  if port_free 3322; then
    port=3322
  else
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  fi
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
webport="${IMMUDB_WEB_PORT:-}"
if [[ -z "$webport" ]]; then
  if port_free 8080 && [[ "$port" != 8080 ]]; then webport=8080; else webport="$(free_port)"; fi
fi

args=(--dir "$data/db" --address 127.0.0.1 --port "$port" --pgsql-server=false --metrics-server=false
      --web-server=true --web-server-port "$webport" --grpc-reflection=false --swaggerui=false)
pubkey=""
if [[ "${IMMUDB_SIGNING_KEY:-0}" == 1 ]]; then
  if [[ ! -f "$data/signing.key" ]]; then
    (umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$data/signing.key")
    openssl ec -in "$data/signing.key" -pubout -out "$data/signing.pub" 2>/dev/null
  fi
  args+=(--signingKey "$data/signing.key")
  pubkey="$data/signing.pub"
fi

(cd "$data" && exec nohup "$bindir/immudb" "${args[@]}" >>"$logfile" 2>&1 </dev/null) &
echo $! >"$pidfile"

for _ in $(seq 1 100); do
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "immudb-up: immudb exited; last log lines:" >&2
    tail -n 5 "$logfile" >&2
    rm -f "$pidfile"
    exit 1
  fi
  if ! port_free "$port" && ! port_free "$webport"; then break; fi
  sleep 0.1
done
for p in "$port" "$webport"; do
  port_free "$p" && { echo "immudb-up: immudb did not start listening on 127.0.0.1:$p (log: $logfile)" >&2; exit 1; }
done

cat <<INFO
immudb $("$bindir/immudb" version 2>/dev/null | head -n 1 | awk '{print $2}') listening on 127.0.0.1:$port (data: $data/db, log: $logfile)
stop it:   kill $(cat "$pidfile") && rm -f $pidfile
use it from notary:
  export NOTARY_LEDGER=immudb://immudb@127.0.0.1:$port/defaultdb
  export NOTARY_IMMUDB_PASSWORD=immudb   # immudb's default admin password; or NOTARY_IMMUDB_PASSWORD_FILE=/path/to/file
  export NOTARY_IMMUDB_GATEWAY=http://127.0.0.1:$webport   # optional: the HTTP gateway, for fast one-shot processes
INFO
if [[ -n "$pubkey" ]]; then
  echo "  export NOTARY_IMMUDB_SERVER_KEY=$pubkey   # check every state's signature"
fi
echo "audit with the official client: IMMUCLIENT_IMMUDB_PORT=$port $bindir/immuclient --username immudb safeget KEY"
