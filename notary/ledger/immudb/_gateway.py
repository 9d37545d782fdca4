"""The HTTP gateway transport: immudb's HTTP/JSON API (its web server, `--web-server`, default port 8080), without
grpc or immudb-py.

A hook or `notary verify` process lives for one decision. Through gRPC it pays ~175 ms to import grpc and
immudb-py and ~55 ms for the server's bcrypt check of the password at login, before reading anything. Through
the gateway it pays a few milliseconds: the client is `_http`, the JSON is parsed strictly by `_wire` into the
same typed proof data the gRPC transport returns, and the login token (24 h, bound to this server, user and
database) is cached 0600 beside the trusted state, so a process logs in only when the token is missing, expired
or refused. Like every transport it proves nothing: ImmudbLedger does, the same way for both.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from base64 import b64encode
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from notary import jsonsafe
from notary.errors import LedgerUnavailableError, ProofError, RollbackError
from notary.ledger.immudb import _wire as wire
from notary.ledger.immudb._conn import ImmudbTarget, ServerError
from notary.ledger.immudb._http import Gateway, HttpClient
from notary.ledger.immudb._proofs import ImmuState
from notary.ledger.immudb._replay import ScannedTx
from notary.ledger.immudb._token import cached_token, save_token, usable_token
from notary.ledger.immudb._transport import EntryProof, Item, TxProof

if TYPE_CHECKING:
    import ssl

    from notary.jsonsafe import JsonValue

_LOGGED_OUT = ("invalid token", "token has expired", "not logged in", "session not found")
Doc = Mapping[str, "JsonValue"]


class GatewayTransport:
    """One kept-alive HTTP connection to the gateway of one database (see _transport.Transport)."""

    def __init__(self, target: ImmudbTarget, gateway: Gateway, timeout: float, tls: ssl.SSLContext | None,
                 token_dir: Path) -> None:
        self.target = target
        self.gateway = gateway
        self.server_version = ""
        self._http = HttpClient(gateway, timeout, tls)
        self._token_dir = token_dir
        self._token = ""
        self._from_cache = False
        self._password = ""
        self._uuid = ""  # the server's, once connected: every later answer must carry it
        self._seen_uuid = ""
        self.scan_page = 250

    # ------------------------------------------------------------ connection, identity, login

    def connect(self) -> str:
        reply = self._call("GET", "/api/health", None, what="identify", auth=False)
        version = reply.get("version", "")
        self.server_version = version.rstrip("-") if isinstance(version, str) else ""
        self._uuid = self._seen_uuid
        return self._uuid

    def login(self, password: str) -> None:
        self._password = password
        cached = cached_token(self.token_path())
        if cached:
            self._token, self._from_cache = cached, True
            return
        self._fresh_login()

    def _fresh_login(self) -> None:
        body = {"user": b64encode(self.target.user.encode()).decode(),
                "password": b64encode(self._password.encode()).decode()}
        reply = self._call("POST", "/api/login", body, what="log in", auth=False)
        first = reply.get("token")
        if not usable_token(first):
            raise LedgerUnavailableError(f"immudb gateway at {self.gateway.url} answered the login without a token")
        assert isinstance(first, str)  # usable_token checked it
        self._token = first
        used = self._call("GET", f"/api/db/use/{quote(self.target.database)}", None, what="open the database")
        token = used.get("token")
        if not usable_token(token):
            raise LedgerUnavailableError(f"immudb gateway at {self.gateway.url} opened the database without a token")
        assert isinstance(token, str)
        self._token, self._from_cache = token, False
        save_token(self._token_dir, self.token_path(), token)

    def token_path(self) -> Path:
        ident = f"{self.gateway.url}|{self.target.user}|{self.target.database}|{self._uuid}"
        return self._token_dir / f"immudb-token-{hashlib.sha256(ident.encode()).hexdigest()[:32]}"

    def _authed(self, method: str, path: str, body: Mapping[str, object] | None, *, what: str,
                idempotent: bool = True) -> Doc:
        """One call; a refused token (expired, server restarted) means logging in again, once."""
        try:
            return self._call(method, path, body, what=what, idempotent=idempotent)
        except ServerError as exc:
            if not exc.detail.startswith(_LOGGED_OUT):
                raise
        self._fresh_login()
        return self._call(method, path, body, what=what, idempotent=idempotent)

    def _call(self, method: str, path: str, body: Mapping[str, object] | None, *, what: str,
              auth: bool = True, idempotent: bool = True) -> Doc:
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        reply = self._http.request(method, path, data, self._token if auth else None, idempotent=idempotent)
        uuid = reply.headers.get("grpc-metadata-immudb-uuid", "")
        if not uuid.isalnum() or len(uuid) > 64:
            if reply.status != 200:  # another web server, or immudb's console without its API
                raise LedgerUnavailableError(
                    f"immudb gateway at {self.gateway.url} does not serve immudb's API (HTTP {reply.status})",
                    hint="NOTARY_IMMUDB_GATEWAY must name immudb's web server (immudb --web-server, port 8080)")
            raise ProofError(f"immudb gateway at {self.gateway.url} did not identify itself (no server uuid)")
        if self._uuid and uuid != self._uuid:
            raise RollbackError(
                f"the immudb behind {self.gateway.url} was replaced mid-session (server {uuid}, "
                f"expected {self._uuid})"
            )
        self._seen_uuid = uuid
        try:
            doc = jsonsafe.parse_object(reply.body, f"the immudb gateway's answer to {what}", error=ProofError)
        except ProofError:
            if reply.status != 200:
                raise ServerError(f"immudb gateway at {self.gateway.url} failed to {what} "
                                  f"(HTTP {reply.status})", "") from None
            raise
        if reply.status != 200:
            detail = doc.get("message") or doc.get("error") or ""
            detail = detail[:300] if isinstance(detail, str) else ""
            raise _failure(self.gateway, self.target, what, reply.status, detail)
        return doc

    def close(self) -> None:
        self._http.close()

    def details(self) -> dict[str, str]:
        return {"transport": "gateway", "gateway": self.gateway.url}

    # ------------------------------------------------------------ reads and writes

    def current_state(self) -> ImmuState:
        doc = self._authed("GET", "/api/db/state", None, what="read the current state")
        db = doc.get("db")
        if db != self.target.database and self._from_cache:
            # a cached token for another database (a swapped login answer): forget it and log in again
            self._from_cache = False
            with contextlib.suppress(OSError):
                self.token_path().unlink()
            self._fresh_login()
            doc = self._call("GET", "/api/db/state", None, what="read the current state")
            db = doc.get("db")
        return ImmuState(db if isinstance(db, str) else "", wire.uint(doc, "txId"), wire.digest(doc, "txHash"),
                         wire.signature(doc))

    def verifiable_get(self, key: bytes, at_tx: int | None, since_tx: int) -> EntryProof:
        request: dict[str, object] = {"key": b64encode(key).decode()}
        if at_tx is not None:
            request["atTx"] = str(at_tx)
        doc = self._authed("POST", "/api/db/verifiable/get", {"keyRequest": request, "proveSinceTx": str(since_tx)},
                           what=f"read {key.decode('utf-8', 'replace')}")
        entry = wire.obj(doc, "entry")
        vtx = wire.obj(doc, "verifiableTx")
        return EntryProof(wire.raw(entry, "key"), wire.raw(entry, "value"), wire.uint(entry, "tx"),
                          wire.uint(entry, "revision"), wire.kv_metadata(wire.obj(entry, "metadata")),
                          bool(entry.get("referencedBy")), wire.entry_inclusion(wire.obj(doc, "inclusionProof")),
                          wire.dual_proof(wire.obj(vtx, "dualProof")), wire.signature(vtx))

    def verifiable_tx(self, tx: int, since_tx: int) -> TxProof:
        doc = self._authed("GET", f"/api/db/verifiable/tx/{tx}?proveSinceTx={since_tx}", None,
                           what=f"read transaction {tx}")
        body = wire.obj(doc, "tx")
        return TxProof(wire.header(wire.obj(body, "header")), wire.entries(body),
                       wire.dual_proof(wire.obj(doc, "dualProof")), wire.signature(doc))

    def set_all(self, kvs: dict[bytes, bytes]) -> int:
        body = {"KVs": [{"key": b64encode(k).decode(), "value": b64encode(v).decode()} for k, v in kvs.items()]}
        return wire.uint(self._authed("POST", "/api/db/set", body, what="write", idempotent=False), "id")

    def verifiable_set(self, kvs: dict[bytes, bytes], since_tx: int) -> TxProof:
        """Two requests, the write and then its proof: a write is never resent, and the gateway's plain
        /api/db/set is the one request whose answer may be lost after the server committed (the proof read that
        follows is idempotent)."""
        tx = self.set_all(kvs)
        return self.verifiable_tx(tx, since_tx or tx)

    def history(self, key: bytes, offset: int, limit: int, since_tx: int) -> list[Item]:
        doc = self._authed("POST", "/api/db/history",
                           {"key": b64encode(key).decode(), "offset": str(offset), "limit": limit},
                           what=f"read the history of {key.decode('utf-8', 'replace')}")
        return [Item(wire.uint(e, "tx"), wire.raw(e, "value")) for e in _listing(doc)]

    def scan_keys(self, prefix: bytes, seek: bytes, limit: int, since_tx: int) -> list[bytes]:
        doc = self._authed("POST", "/api/db/scan",
                           {"prefix": b64encode(prefix).decode(), "seekKey": b64encode(seek).decode(),
                            "limit": limit}, what=f"list keys under {prefix.decode('utf-8', 'replace')!r}")
        return [wire.raw(e, "key") for e in _listing(doc)]

    def scan_txs(self, first: int, last: int) -> Iterator[ScannedTx]:
        """TxScan through the gateway, whose own gRPC client refuses answers over 4 MiB, so a refused page is
        asked again smaller."""
        while first <= last:
            n = min(self.scan_page, last - first + 1)
            request = {"initialTx": str(first), "limit": n, "sinceTx": "1"}
            try:
                doc = self._authed("POST", "/api/db/tx", request, what="scan transactions")
            except ServerError as exc:
                if n > 1 and ("larger than max" in exc.detail or "limit" in exc.detail):
                    self.scan_page = max(1, n // 4)
                    continue
                raise
            txs = doc.get("txs", [])
            if not isinstance(txs, list) or not txs or len(txs) > n:
                raise ProofError(f"immudb answered a scan of {n} transactions from tx {first} with something else")
            for tx in txs:
                if not isinstance(tx, Mapping):
                    raise ProofError(f"immudb answered a scan of {n} transactions from tx {first} with something else")
                head = wire.obj(tx, "header")
                yield ScannedTx(wire.header(head), wire.entries(tx), wire.digest(head, "prevAlh"))
            first += len(txs)


def _listing(doc: Doc) -> list[Doc]:
    items = doc.get("entries", [])
    if not isinstance(items, list) or not all(isinstance(e, Mapping) for e in items):
        raise ProofError("immudb gateway answer: entries is not a list of objects")
    return [e for e in items if isinstance(e, Mapping)]


def _failure(gateway: Gateway, target: ImmudbTarget, what: str, status: int, detail: str) -> ServerError:
    where = f"immudb at {gateway.url}"
    if "invalid user name or password" in detail or status in (401, 403) and not detail.startswith(_LOGGED_OUT):
        return ServerError(f"{where} refused user {target.user}: wrong user name or password, or no permission",
                           detail, hint="set NOTARY_IMMUDB_PASSWORD or NOTARY_IMMUDB_PASSWORD_FILE")
    if "does not exist" in detail and "database" in detail:
        return ServerError(f"{where} has no database {target.database}", detail,
                           hint=f"create it first (immuadmin database create {target.database})")
    if status == 404 and not detail:
        return ServerError(f"{where} does not serve immudb's API", detail,
                           hint="NOTARY_IMMUDB_GATEWAY must name immudb's web server (default port 8080)")
    return ServerError(f"{where} failed to {what}: {detail or f'HTTP {status}'}", detail)

