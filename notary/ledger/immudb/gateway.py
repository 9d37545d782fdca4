"""The immudb ledger through immudb's HTTP/JSON gateway: the same guarantees, without grpc or immudb-py.

A hook or `notary verify` process lives for one decision. Through gRPC it pays ~175 ms to import grpc and
immudb-py and ~55 ms for the server's bcrypt check of the password at login, before reading anything. Through
the gateway (immudb's web server, `--web-server`, default port 8080) it pays a few milliseconds: the client is
`_http`, the proofs are notary's own (`_verify`, on the JSON parsed by `_wire`), and the login token (24 h,
bound to this server, user and database) is cached 0600 beside the trusted state, so a process logs in only
when the token is missing, expired or refused.

Everything else is ImmudbLedger's: the same trusted state file (a process on either transport moves the same
state forward), the same server identity and address pins, the same read logic (as of a transaction, history,
time search). Enabled by NOTARY_IMMUDB_GATEWAY or `[immudb] gateway` (http://HOST:PORT). Opened with the
verified mirror it is a MirroredGatewayLedger (_mirrored_gateway), whose replay scans through the gateway too.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from base64 import b64encode
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

from notary import jsonsafe
from notary.errors import InputError, LedgerUnavailableError, ProofError, RollbackError
from notary.ledger.base import WriteReceipt
from notary.ledger.immudb import _wire as wire
from notary.ledger.immudb._conn import ImmudbTarget, ServerError, parse_url
from notary.ledger.immudb._http import Gateway, HttpClient, parse_gateway, read_ca
from notary.ledger.immudb._proofs import ImmuState, StateKeeper, check_new_tx, empty_state, header_time
from notary.ledger.immudb._replay import (
    PLAIN_VALUE_PREFIX,
    ScannedTx,
    TxRow,
    entries_root,
    entry_digest,
    holds_exactly,
    value_hash,
)
from notary.ledger.immudb._token import cached_token, save_token, usable_token
from notary.ledger.immudb._verify import DualProof, dual_proof_holds, entry_included
from notary.ledger.immudb.ledger import _PAGE, ImmudbLedger, _key_bytes
from notary.ledger.settings import ImmudbSettings
from notary.ledger.trust import TrustStore

if TYPE_CHECKING:
    import ssl

_LOGGED_OUT = ("invalid token", "token has expired", "not logged in", "session not found")


class _Item(NamedTuple):
    tx: int
    value: bytes


class GatewayLedger(ImmudbLedger):
    """ImmudbLedger whose transport is the gateway: `GatewayLedger.open(url, gateway="http://host:8080")`."""

    _gateway: Gateway
    _tls: ssl.SSLContext | None = None
    _http: HttpClient | None = None
    _token = ""
    _from_cache = False
    _scan_page = 250
    _seen_uuid = ""

    @classmethod
    def open(cls, url: str, *, trust: TrustStore | None = None, password: str | None = None,
             mirror: bool = False, replica_of: str | None = None, gateway: str | None = None,
             settings: ImmudbSettings | None = None) -> ImmudbLedger:
        """An https:// gateway is trusted through settings.gateway_ca (a PEM CA bundle file), else the system's CA
        store. A replica (replica_of) is read over gRPC: its gateway is not configured."""
        settings = settings if settings is not None else ImmudbSettings.load()
        if not gateway or replica_of:
            return ImmudbLedger.open(url, trust=trust, password=password, mirror=mirror, replica_of=replica_of,
                                     settings=settings)
        if mirror and not getattr(cls, "mirrored", False):
            from notary.ledger.immudb._mirrored_gateway import MirroredGatewayLedger

            return MirroredGatewayLedger.open(url, trust=trust, password=password, mirror=True, gateway=gateway,
                                              settings=settings)
        target = parse_url(url)
        address = parse_gateway(gateway)
        tls = read_ca(settings.gateway_ca, address) if settings.gateway_ca else None
        secret = password if password is not None else settings.password(target.user)
        ledger = cls(target, trust or TrustStore(), settings.timeout)
        ledger._gateway = address
        ledger._tls = tls
        ledger._start(secret, settings.server_key())
        return ledger

    # transport: connection, identity, login ------------------------------------------------------------------

    def _open_client(self) -> None:
        self._rs = StateKeeper(empty_state(self.target.database), None)
        self._http = HttpClient(self._gateway, self.timeout, self._tls)
        self._client = self._http

    def _use_server_key(self, key: str) -> None:
        """StateKeeper checks every state's signature once its key is set (the session sets it)."""

    def _identify(self) -> str:
        reply = self._call("GET", "/api/health", None, what="identify", auth=False)
        version = reply.get("version", "")
        self.server_version = version.rstrip("-") if isinstance(version, str) else ""
        return self._seen_uuid

    def _login(self) -> None:
        cached = self._cached_token()
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
            raise LedgerUnavailableError(f"immudb gateway at {self._gateway.url} answered the login without a token")
        self._token = first
        used = self._call("GET", f"/api/db/use/{quote(self.target.database)}", None, what="open the database")
        token = used.get("token")
        if not usable_token(token):
            raise LedgerUnavailableError(f"immudb gateway at {self._gateway.url} opened the database without a token")
        self._token, self._from_cache = token, False
        self._save_token(token)

    def _token_path(self) -> Path:
        ident = f"{self._gateway.url}|{self.target.user}|{self.target.database}|{self.server_uuid}"
        return self.trust.directory / f"immudb-token-{hashlib.sha256(ident.encode()).hexdigest()[:32]}"

    def _cached_token(self) -> str | None:
        return cached_token(self._token_path())

    def _save_token(self, token: str) -> None:
        save_token(self.trust.directory, self._token_path(), token)

    def _rpc(self, call: Callable[[], Any]) -> Any:
        """One call; a refused token (expired, server restarted) means logging in again, once."""
        try:
            return call()
        except ServerError as exc:
            if not exc.detail.startswith(_LOGGED_OUT):
                raise
        self._fresh_login()
        return call()

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None, *, what: str,
              auth: bool = True, idempotent: bool = True) -> Mapping[str, Any]:
        assert self._http is not None
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        reply = self._http.request(method, path, data, self._token if auth else None, idempotent=idempotent)
        uuid = reply.headers.get("grpc-metadata-immudb-uuid", "")
        if not uuid.isalnum() or len(uuid) > 64:
            if reply.status != 200:  # another web server, or immudb's console without its API
                raise LedgerUnavailableError(
                    f"immudb gateway at {self._gateway.url} does not serve immudb's API (HTTP {reply.status})",
                    hint="NOTARY_IMMUDB_GATEWAY must name immudb's web server (immudb --web-server, port 8080)")
            raise ProofError(f"immudb gateway at {self._gateway.url} did not identify itself (no server uuid)")
        if self.server_uuid and uuid != self.server_uuid:
            raise RollbackError(
                f"the immudb behind {self._gateway.url} was replaced mid-session (server {uuid}, "
                f"expected {self.server_uuid})"
            )
        self._seen_uuid = uuid
        try:
            doc = jsonsafe.loads_object(reply.body, f"the immudb gateway's answer to {what}", error=ProofError)
        except ProofError:
            if reply.status != 200:
                raise ServerError(f"immudb gateway at {self._gateway.url} failed to {what} "
                                     f"(HTTP {reply.status})", "") from None
            raise
        if reply.status != 200:
            detail = doc.get("message") or doc.get("error") or ""
            detail = detail[:300] if isinstance(detail, str) else ""
            raise _failure(self._gateway, self.target, what, reply.status, detail)
        return doc

    def close(self) -> None:
        http, self._http = self._http, None
        self._client = None
        if http is not None:
            http.close()

    # transport: proven reads and writes -----------------------------------------------------------------------

    def _current_state(self) -> ImmuState:
        doc = self._rpc(lambda: self._call("GET", "/api/db/state", None, what="read the current state"))
        db = doc.get("db")
        if db != self.target.database and self._from_cache:
            # a cached token for another database (a swapped login answer): forget it and log in again
            self._from_cache = False
            with contextlib.suppress(OSError):
                self._token_path().unlink()
            self._fresh_login()
            doc = self._call("GET", "/api/db/state", None, what="read the current state")
            db = doc.get("db")
        return self._checked_state(ImmuState(db, wire.uint(doc, "txId"), wire.digest(doc, "txHash"),
                                             wire.signature(doc)))

    def _prove_entry(self, key: str, k: bytes, at_tx: int | None) -> tuple[bytes, int, int, Any]:
        if self._rs.current.tx == 0 and self._refresh_head() is None:
            raise ServerError(f"immudb has no {key}", "key not found")  # an empty database, proven so
        request: dict[str, Any] = {"key": b64encode(k).decode()}
        if at_tx is not None:
            request["atTx"] = str(at_tx)
        doc = self._rpc(lambda: self._call("POST", "/api/db/verifiable/get",
                                           {"keyRequest": request, "proveSinceTx": str(self._rs.current.tx)},
                                           what=f"read {key}"))
        entry = wire.obj(doc, "entry")
        if entry.get("referencedBy") or wire.raw(entry, "key") != k:
            raise ProofError(f"immudb answered a read of {key} with another key")
        tx = wire.uint(entry, "tx")
        value = wire.raw(entry, "value")
        vtx = wire.obj(doc, "verifiableTx")
        proven = self._prove_tx(tx, wire.dual_proof(wire.obj(vtx, "dualProof")), wire.signature(vtx))
        spec = (PLAIN_VALUE_PREFIX + k, wire.kv_metadata(wire.obj(entry, "metadata")), value_hash(value), len(value) + 1)
        if not entry_included(wire.entry_inclusion(wire.obj(doc, "inclusionProof")),
                              entry_digest(proven.version, spec), proven.eh):
            raise ProofError(f"immudb's value of {key} at tx {tx} is not in that transaction")
        return value, tx, wire.uint(entry, "revision"), proven

    def _prove_tx(self, tx: int, proof: DualProof, signature: bytes) -> TxRow:
        """tx's header, proven consistent with the trusted state by the dual proof; trust moves to the newer."""
        state = self._rs.current
        if state.tx <= tx:
            header = proof.target
            source, target = (state.tx, state.alh), (tx, header.alh)
        else:
            header = proof.source
            source, target = (tx, header.alh), (state.tx, state.alh)
        if header.id != tx:
            raise ProofError(f"immudb proof does not contain the header of tx {tx}")
        if state.tx == 0:
            source = target  # first contact with a database that was empty: its own proof (trust on first use)
        if not dual_proof_holds(proof, source[0], target[0], source[1], target[1]):
            raise ProofError(
                f"immudb proof from tx {source[0]} to tx {target[0]} does not verify against this client's "
                "trusted state",
                hint="the ledger was altered, rolled back or replaced; do not trust it",
            )
        self._rs.accept(ImmuState(self.target.database, target[0], target[1], signature))
        if state.tx == 0:
            self.notices.append(f"trusting immudb ledger {self.ledger_id} from its transaction {tx} on")
        return header

    def _verified_tx(self, tx: int, kvs: dict[bytes, bytes] | None) -> Any:
        since = self._rs.current.tx or tx
        try:
            doc = self._rpc(lambda: self._call("GET", f"/api/db/verifiable/tx/{tx}?proveSinceTx={since}", None,
                                               what=f"read transaction {tx}"))
        except ServerError as exc:
            if "tx not found" in exc.detail:
                raise InputError(f"immudb ledger {self.ledger_id} has no transaction {tx}") from None
            raise
        header = self._prove_tx(tx, wire.dual_proof(wire.obj(doc, "dualProof")), wire.signature(doc))
        if kvs is not None:
            body = wire.obj(doc, "tx")
            if wire.header(wire.obj(body, "header")).alh != header.alh:
                raise ProofError(f"immudb transaction {tx} does not match its proven header")
            rows = wire.entries(body)
            if len(rows) != header.nentries or entries_root(header.version, rows) != header.eh:
                raise ProofError(f"immudb transaction {tx}: its entries do not hash to its proven header")
            if not holds_exactly(rows, kvs):
                raise ProofError(f"immudb transaction {tx} does not hold exactly the values notary wrote")
        self._header_cache[tx] = header
        return header

    def _set_all(self, encoded: dict[bytes, bytes]) -> int:
        body = {"KVs": [{"key": b64encode(k).decode(), "value": b64encode(v).decode()} for k, v in encoded.items()]}
        doc = self._rpc(lambda: self._call("POST", "/api/db/set", body, what="write", idempotent=False))
        return wire.uint(doc, "id")

    def write(self, kvs: Mapping[str, bytes]) -> WriteReceipt:
        self._writable()
        encoded = self._encode_kvs(kvs)
        with self._guard("write"):
            before = self._rs.current.tx
            tx = self._set_all(encoded)
            check_new_tx(tx, before)
            header = self._verified_tx(tx, encoded)
            head = self._head(header)
        return WriteReceipt(tx=header.id, time=header_time(header), keys=tuple(kvs), head=head)

    def _history_items(self, key: str) -> Iterator[Any]:
        k = b64encode(_key_bytes(key)).decode()

        def page(offset: int) -> list[_Item]:
            doc = self._call("POST", "/api/db/history", {"key": k, "offset": str(offset), "limit": _PAGE},
                             what=f"read the history of {key}")
            return [_Item(wire.uint(e, "tx"), wire.raw(e, "value")) for e in _listing(doc)]

        yield from self._pages(page, lambda offset, items: offset + len(items), 0)

    def keys(self, prefix: str) -> list[str]:
        p = b64encode(prefix.encode()).decode()

        def page(seek: bytes) -> list[bytes]:
            doc = self._call("POST", "/api/db/scan",
                             {"prefix": p, "seekKey": b64encode(seek).decode(), "limit": _PAGE},
                             what=f"list keys under {prefix!r}")
            return [wire.raw(e, "key") for e in _listing(doc)]

        with self._guard(f"list keys under {prefix!r}"):
            found = {k.decode("utf-8", "replace") for k in self._pages(page, lambda _, items: max(items), b"")}
        return sorted(found)

    def _scan(self, first: int, last: int) -> Iterator[ScannedTx]:
        """Transactions first..last with every entry (digests only) for the verified mirror: TxScan through the
        gateway, whose own gRPC client refuses answers over 4 MiB, so a refused page is asked again smaller."""
        while first <= last:
            n = min(self._scan_page, last - first + 1)
            request = {"initialTx": str(first), "limit": n, "sinceTx": "1"}
            try:
                doc = self._rpc(functools.partial(self._call, "POST", "/api/db/tx", request, what="scan transactions"))
            except ServerError as exc:
                if n > 1 and ("larger than max" in exc.detail or "limit" in exc.detail):
                    self._scan_page = max(1, n // 4)
                    continue
                raise
            txs = doc.get("txs", [])
            if not isinstance(txs, list) or not txs or len(txs) > n or not all(isinstance(t, Mapping) for t in txs):
                raise ProofError(f"immudb answered a scan of {n} transactions from tx {first} with something else")
            for tx in txs:
                head = wire.obj(tx, "header")
                yield ScannedTx(wire.header(head), wire.entries(tx), wire.digest(head, "prevAlh"))
            first += len(txs)

    def _info(self, head: Any, entries: int | None = None, **details: Any) -> Any:
        return super()._info(head, entries, transport="gateway", gateway=self._gateway.url, **details)


def _listing(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    items = doc.get("entries", [])
    if not isinstance(items, list) or not all(isinstance(e, Mapping) for e in items):
        raise ProofError("immudb gateway answer: entries is not a list of objects")
    return items


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
