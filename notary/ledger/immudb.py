"""The immudb ledger backend: every write and read goes through immudb-py's verified operations.

Trust lives in notary's own TrustStore (one state per server identity and database, ledger id
"immudb:<server uuid>/<database>"), never in immudb-py's state services. Each operation starts from the persisted
state, lets immudb-py prove the server's answer consistent with it, runs the checks immudb-py leaves out (see
immudb_proofs), and only then persists the new state. Any failure leaves the trusted state file untouched.

What immudb cannot prove (documented in docs/immudb.md): that a value is the *latest* version of its key, that a
key is absent, and that a history is complete. Those answers are the server's word; every value returned is
proven included, and every head proven consistent with what this client saw before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from notary.errors import InputError, NotaryError, ProofError, RollbackError
from notary.ledger.base import Entry, LedgerInfo, TreeHead, WriteReceipt
from notary.ledger.immudb_conn import (
    ImmudbTarget,
    parse_url,
    read_password,
    read_server_key,
    read_timeout,
    translate,
)
from notary.ledger.immudb_proofs import (
    ImmuState,
    Recorder,
    check_tx_entries,
    empty_state,
    header_alh,
    header_time,
    make_state_provider,
    proven_header,
    verify_state_signature,
    verify_tx_tofu,
)
from notary.ledger.trust import TrustedState, TrustStore

_PAGE = 1000  # immudb's largest scan/history page


class ImmudbLedger:
    """A Ledger on one immudb database, opened with `ImmudbLedger.open("immudb://user@host:3322/db")`."""

    def __init__(self, target: ImmudbTarget, trust: TrustStore, timeout: float) -> None:
        self.target = target
        self.url = target.url
        self.trust = trust
        self.timeout = timeout
        self.notices: list[str] = []
        self.server_uuid = ""
        self.server_version = ""
        self.ledger_id = ""
        self._key: str | None = None
        self._trusted: TrustedState | None = None
        self._client: Any = None
        self._stub: Recorder | None = None
        self._rs: Any = None
        self._header_cache: dict[int, Any] = {}
        self._password = ""
        self._new_pin: TrustedState | None = None

    # -- opening -------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, trust: TrustStore | None = None, password: str | None = None) -> ImmudbLedger:
        """Connect, log in, and check the server against this client's trusted state (TOFU on first contact)."""
        target = parse_url(url)
        secret = password if password is not None else read_password(target.user)
        ledger = cls(target, trust or TrustStore(), read_timeout())
        configured_key = read_server_key()
        try:
            with ledger._guard("connect"):
                ledger._connect(secret, configured_key)
        except BaseException:
            ledger.close()
            raise
        return ledger

    def _connect(self, password: str, configured_key: str | None) -> None:
        from google.protobuf import empty_pb2
        from immudb import ImmudbClient
        from immudb.grpc import schema_pb2_grpc

        db = self.target.database
        self._rs = make_state_provider(empty_state(db), None)
        self._client = ImmudbClient(self.target.address, rs=self._rs, timeout=self.timeout)
        health, call = schema_pb2_grpc.ImmuServiceStub(self._client.channel).Health.with_call(
            empty_pb2.Empty(), timeout=self.timeout
        )
        self.server_version = str(getattr(health, "version", "")).rstrip("-")
        metadata = dict(call.initial_metadata() or ())
        uuid = str(metadata.get("immudb-uuid", ""))
        if not uuid.isalnum():
            raise ProofError(f"immudb at {self.target.address} did not identify itself (no server uuid)")
        self.server_uuid = uuid
        self.ledger_id = f"immudb:{uuid}/{db}"
        self._check_address_pin()
        self._trusted = self.trust.load(self.ledger_id)
        pinned = self._trusted.ledger_key if self._trusted else None
        if configured_key and pinned and configured_key.strip() != pinned.strip():
            raise RollbackError(
                f"NOTARY_IMMUDB_SERVER_KEY differs from the server key pinned for {self.ledger_id}",
                hint=f"if the server key was rotated on purpose, remove {self.trust.path_for(self.ledger_id)}",
            )
        self._key = configured_key or pinned
        self._rs.key = self._key
        if self._key:
            self._client.loadKeyFromString(self._key)
        self._rs.reset(self._state_of(self._trusted) if self._trusted else empty_state(db))

        self._password = password
        self._login()
        current = self._current_state()
        if self._trusted is None:
            self._rs.reset(current)
            self._commit()
            self.notices.append(
                f"trusting immudb ledger {self.ledger_id} at {self.target.address} on first use "
                f"(tx {current.tx}, hash {current.alh.hex()[:16]}...)"
                + ("" if self._key else "; no server signing key configured (NOTARY_IMMUDB_SERVER_KEY)")
            )
        else:
            self._check_not_behind(current)
        if self._new_pin is not None:  # only once this server checked out: a failed first contact pins nothing
            self.trust.save(self._new_pin)
            self._new_pin = None

    def _login(self) -> None:
        self._client.login(self.target.user, self._password, database=self.target.database.encode())
        self._stub = Recorder(self._client._stub)
        self._client._stub = self._stub

    def _rpc(self, call: Callable[[], Any]) -> Any:
        """Run one immudb call; after a server restart its login token is void, so log in again once."""
        try:
            return call()
        except Exception as exc:
            if not _is_logged_out(exc):
                raise
        self._login()
        return call()

    def _check_address_pin(self) -> None:
        """A different immudb at an address this client knows is a swapped server, not a new ledger."""
        pin_id = f"immudb-address:{self.target.address}/{self.target.database}"
        pin = self.trust.load(pin_id)
        if pin is None:
            self._new_pin = TrustedState(pin_id, 0, "", 0, extra={"ledger_id": self.ledger_id})
            return
        if pin.extra.get("ledger_id") != self.ledger_id:
            raise RollbackError(
                f"the immudb at {self.target.address} is not the ledger this client trusts there: "
                f"it is {self.ledger_id}, expected {pin.extra.get('ledger_id')}",
                hint=f"if the server was replaced on purpose, remove {self.trust.path_for(pin_id)}",
            )

    # -- the Ledger protocol -------------------------------------------------------------------------------

    def write(self, kvs: Mapping[str, bytes]) -> WriteReceipt:
        encoded = self._encode_kvs(kvs)
        with self._guard("write"):
            if len(encoded) == 1:
                ((key, value),) = encoded.items()
                self._rpc(lambda: self._client.verifiedSet(key, value))
                vtx = self._last("VerifiableSet")
                header = vtx.tx.header
                if header_alh(header) != self._rs.current.alh and int(header.id) == self._rs.current.tx:
                    raise ProofError(f"immudb transaction {header.id} does not match the verified state")
            else:
                tx = int(self._rpc(lambda: self._client.setAll(encoded)).id)
                header = self._verified_tx(tx, encoded)
            tx = int(header.id)
            head = self._head(header)
        return WriteReceipt(tx=tx, time=header_time(header), keys=tuple(kvs), head=head)

    def write_batch(self, txs: Sequence[Mapping[str, bytes]]) -> list[WriteReceipt]:
        return [self.write(kvs) for kvs in txs]

    def get(self, key: str, *, at_tx: int | None = None) -> Entry | None:
        if at_tx is not None and at_tx < 1:
            return None
        with self._guard(f"read {key}"):
            return self._verified_get(key, at_tx)

    def history(self, key: str) -> list[Entry]:
        k = _key_bytes(key)
        with self._guard(f"read the history of {key}"):
            items: list[Any] = []
            while True:
                try:
                    page = self._rpc(lambda: self._client.history(k, len(items), _PAGE, False))
                except Exception as exc:
                    if _is_missing(exc):
                        break
                    raise
                items.extend(page)
                if len(page) < _PAGE:
                    break
            entries = []
            for revision, item in enumerate(items, start=1):
                entry = self._verified_get(key, int(item.tx))
                if entry is None or entry.tx != int(item.tx) or entry.value != bytes(item.value):
                    raise ProofError(f"immudb history of {key} names tx {item.tx}, which does not verify")
                entries.append(replace(entry, revision=revision))
            return entries

    def keys(self, prefix: str) -> list[str]:
        p = prefix.encode()
        found: list[str] = []
        with self._guard(f"list keys under {prefix!r}"):
            seek = b""
            while True:
                try:
                    page = self._rpc(lambda s=seek: self._client.scan(s, p, False, _PAGE))
                except Exception as exc:
                    if _is_missing(exc):
                        break
                    raise
                found.extend(k.decode("utf-8", "replace") for k in page)
                if len(page) < _PAGE:
                    break
                seek = max(page)
        return sorted(set(found))

    def tx_at_time(self, when: datetime) -> int | None:
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        limit = when.timestamp()
        with self._guard("map a time to a transaction"):
            head = self._refresh_head()
            if head is None or int(self._header(1).ts) > limit:
                return None
            lo, hi = 1, int(head.id)  # invariant: ts(lo) <= limit; answer in [lo, hi]
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if int(self._header(mid).ts) <= limit:
                    lo = mid
                else:
                    hi = mid - 1
            return lo

    def info(self) -> LedgerInfo:
        with self._guard("read the ledger head"):
            header = self._refresh_head()
            head = self._head(header)
        return LedgerInfo(
            url=self.url,
            backend="immudb",
            ledger_id=self.ledger_id,
            head=head,
            trusted=self._trusted.to_json() if self._trusted else None,
            entries=None,
            transactions=head.tx,
            details={
                "server_uuid": self.server_uuid,
                "server_version": self.server_version,
                "database": self.target.database,
                "address": self.target.address,
                "state_signature_checked": self._key is not None,
            },
        )

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.shutdown()

    def __enter__(self) -> ImmudbLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- verification helpers ------------------------------------------------------------------------------

    def _verified_get(self, key: str, at_tx: int | None) -> Entry | None:
        k = _key_bytes(key)
        try:
            if at_tx is None:
                self._rpc(lambda: self._client.verifiedGet(k))
            else:
                self._rpc(lambda: self._client.verifiedGetAt(k, at_tx))
        except Exception as exc:
            if _is_missing(exc):
                return None
            if at_tx is not None and _detail(exc) == "tx not found":
                if at_tx <= self._rs.current.tx:
                    raise RollbackError(
                        f"immudb no longer has tx {at_tx}, which this client verified: the ledger was rolled back"
                    ) from exc
                raise InputError(f"immudb ledger {self.ledger_id} has no transaction {at_tx} yet") from exc
            raise
        ventry = self._last("VerifiableGet")
        if ventry.entry.HasField("referencedBy") or bytes(ventry.entry.key) != k:
            raise ProofError(f"immudb answered a read of {key} with another key")
        tx = int(ventry.entry.tx)
        if at_tx is not None and tx > at_tx:
            raise ProofError(f"immudb answered a read of {key} as of tx {at_tx} with tx {tx}")
        header = proven_header(ventry.verifiableTx.dualProof, tx)
        self._header_cache[tx] = header
        state = self._rs.current
        return Entry(
            key=key,
            value=bytes(ventry.entry.value),
            tx=tx,
            time=header_time(header),
            revision=int(ventry.entry.revision),
            proof=self._proof(header, state),
        )

    def _verified_tx(self, tx: int, kvs: dict[bytes, bytes] | None) -> Any:
        """Prove transaction tx consistent with trust (and, given kvs, that it holds exactly them)."""
        from immudb.grpc import schema_pb2

        if self._rs.current.tx == 0:
            request = schema_pb2.VerifiableTxRequest(tx=tx, proveSinceTx=tx)
            vtx = self._rpc(lambda: self._stub.VerifiableTxById(request))
            header = verify_tx_tofu(vtx, tx)
            if kvs is not None:
                check_tx_entries(vtx, header, kvs)
            self._rs.accept(ImmuState(self.target.database, tx, header_alh(header), bytes(vtx.signature.signature)))
            self.notices.append(f"trusting immudb ledger {self.ledger_id} from its first transaction {tx} on")
        else:
            if self._rpc(lambda: self._client.verifiedTxById(tx)) is None:
                raise InputError(f"immudb ledger {self.ledger_id} has no transaction {tx}")
            vtx = self._last("VerifiableTxById")
            header = proven_header(vtx.dualProof, tx)
            if kvs is not None:
                check_tx_entries(vtx, header, kvs)
        self._header_cache[tx] = header
        return header

    def _header(self, tx: int) -> Any:
        if tx not in self._header_cache:
            self._verified_tx(tx, None)
        return self._header_cache[tx]

    def _refresh_head(self) -> Any | None:
        """Prove the server's current (signed) state consistent with trust and move to it."""
        current = self._current_state()
        self._check_not_behind(current)
        if current.tx == 0:
            return None
        header = self._verified_tx(current.tx, None)
        if header_alh(header) != current.alh:
            raise ProofError(f"immudb's current state at tx {current.tx} does not match its proven header")
        return header

    def _current_state(self) -> ImmuState:
        from google.protobuf import empty_pb2

        raw = self._rpc(lambda: self._stub.CurrentState(empty_pb2.Empty()))
        state = ImmuState(str(raw.db), int(raw.txId), bytes(raw.txHash), bytes(raw.signature.signature))
        if state.db != self.target.database:
            raise ProofError(f"immudb answered with the state of database {state.db!r}")
        if self._key:
            verify_state_signature(state, self._key)  # immudb-py's login never checks this state
        return state

    def _check_not_behind(self, current: ImmuState) -> None:
        trusted = self._rs.current
        if current.tx < trusted.tx:
            raise RollbackError(
                f"immudb database {self.target.database} at {self.target.address} is at tx {current.tx}, "
                f"but this client already verified tx {trusted.tx}: the ledger was rolled back or replaced"
            )
        if current.tx == trusted.tx and current.alh != trusted.alh and trusted.tx > 0:
            raise RollbackError(f"immudb database {self.target.database} forked at tx {trusted.tx}")

    def _proof(self, header: Any, state: ImmuState) -> dict[str, Any]:
        return {
            "format": "immudb",
            "server_uuid": self.server_uuid,
            "database": self.target.database,
            "tx": int(header.id),
            "tx_time": int(header.ts),
            "tx_alh": header_alh(header).hex(),
            "tx_entries_hash": bytes(header.eH).hex(),
            "state": {
                "tx": state.tx,
                "hash": state.alh.hex(),
                "signature": state.signature.hex() or None,
                "signature_checked": self._key is not None,
            },
            "checked": ["entry-inclusion", "dual-proof"] + (["state-signature"] if self._key else []),
        }

    def _head(self, header: Any | None) -> TreeHead:
        s = self._rs.current
        time = header_time(header) if header is not None and int(header.id) == s.tx else None
        return TreeHead(self.ledger_id, s.tx, s.alh, s.tx, time, s.signature or None)

    def _last(self, rpc: str) -> Any:
        assert self._stub is not None
        return self._stub.last[rpc]

    # -- trust bookkeeping ---------------------------------------------------------------------------------

    @staticmethod
    def _state_of(t: TrustedState) -> ImmuState:
        sig = t.extra.get("signature") or ""
        return ImmuState(str(t.extra.get("database", "")), t.tx, bytes.fromhex(t.root_hash), bytes.fromhex(sig))

    def _commit(self) -> None:
        s = self._rs.current
        t = self._trusted
        if t is not None and t.tx == s.tx and t.root_hash == s.alh.hex():
            return
        stored = self.trust.load(self.ledger_id)
        if stored is not None and stored.tx > s.tx:  # another process moved further; keep its state
            self._trusted = stored
            return
        new = TrustedState(
            ledger_id=self.ledger_id,
            tree_size=s.tx,
            root_hash=s.alh.hex(),
            tx=s.tx,
            ledger_key=self._key,
            extra={
                "backend": "immudb",
                "database": self.target.database,
                "server_uuid": self.server_uuid,
                "address": self.target.address,
                "signature": s.signature.hex(),
            },
        )
        self.trust.save(new)
        self._trusted = new

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Map immudb/grpc failures to notary errors; commit trust on success, forget it on failure."""
        if self._client is None and what != "connect":
            raise NotaryError(f"immudb ledger {self.url} is closed")
        try:
            yield
        except BaseException as exc:
            if self._rs is not None:
                self._rs.reset(self._state_of(self._trusted) if self._trusted else empty_state(self.target.database))
            self._header_cache.clear()
            mapped = translate(exc, self.target, what)
            if mapped is None or mapped is exc:
                raise
            if isinstance(mapped, RollbackError) or not self._trusted:
                raise mapped from None
            raise self._explain(mapped) from None
        else:
            if self._trusted is not None or what == "connect":
                self._commit()

    def _explain(self, err: NotaryError) -> NotaryError:
        """A server error while proving against trust is often a rollback: say so when the head shows it."""
        if "illegal state" not in err.message and "illegal arguments" not in err.message:
            return err
        with contextlib.suppress(Exception):
            self._check_not_behind(self._current_state())
            return err
        return RollbackError(
            f"immudb database {self.target.database} at {self.target.address} is behind this client's "
            f"trusted tx {self._trusted.tx if self._trusted else 0}: the ledger was rolled back or replaced"
        )

    @staticmethod
    def _encode_kvs(kvs: Mapping[str, bytes]) -> dict[bytes, bytes]:
        if not kvs:
            raise InputError("nothing to write: a ledger transaction needs at least one key")
        out: dict[bytes, bytes] = {}
        for key, value in kvs.items():
            if not isinstance(value, (bytes, bytearray)):
                raise InputError(f"value of ledger key {key!r} must be bytes")
            out[_key_bytes(key)] = bytes(value)
        return out


def _key_bytes(key: str) -> bytes:
    if not key:
        raise InputError("ledger keys must not be empty")
    return key.encode("utf-8")


def _detail(exc: BaseException) -> str:
    details = getattr(exc, "details", None)
    return str(details() if callable(details) else "")


def _is_logged_out(exc: BaseException) -> bool:
    code = getattr(exc, "code", None)
    name = getattr(code() if callable(code) else None, "name", "")
    return name == "UNAUTHENTICATED" or _detail(exc) in ("not logged in", "invalid token", "session not found")


def _is_missing(exc: BaseException) -> bool:
    return _detail(exc).endswith("key not found")
