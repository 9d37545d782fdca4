"""The immudb ledger backend: every write and read goes through immudb-py's verified operations.

Trust lives in notary's own TrustStore (one state per server identity and database, ledger id
"immudb:<server uuid>/<database>"), never in immudb-py's state services. Each operation starts from the persisted
state, lets immudb-py prove the server's answer consistent with it, runs the checks immudb-py leaves out (see
_proofs), and only then persists the new state. Any failure leaves the trusted state file untouched.

What immudb cannot prove (documented in docs/immudb.md): that a value is the *latest* version of its key, that a
key is absent, and that a history is complete. Here those answers are the server's word; every value returned is
proven included, and every head proven consistent with what this client saw before. `open(..., mirror=True)`
closes the gap by replaying every transaction locally (_mirrored, mirror).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from notary.errors import InputError, LedgerUnavailableError, ProofError, RollbackError, UsageError
from notary.ledger.base import Entry, LedgerInfo, TreeHead, WriteReceipt
from notary.ledger.immudb._conn import parse_url
from notary.ledger.immudb._proofs import (
    ImmuState,
    check_linear_advance,
    check_new_tx,
    check_tx_entries,
    header_alh,
    header_eh,
    header_time,
    proven_header,
    verify_tx_tofu,
)
from notary.ledger.immudb._session import ImmudbSession, _detail
from notary.ledger.settings import ImmudbSettings
from notary.ledger.trust import TrustStore

_PAGE = 1000  # immudb's largest scan/history page
_MAX_LISTING = 1_000_000  # versions of one key, or keys under one prefix, before a listing is called endless


class ImmudbLedger(ImmudbSession):
    """A Ledger on one immudb database, opened with `ImmudbLedger.open("immudb://user@host:3322/db")`."""

    @classmethod
    def open(cls, url: str, *, trust: TrustStore | None = None, password: str | None = None,
             mirror: bool = False, replica_of: str | None = None,
             settings: ImmudbSettings | None = None) -> ImmudbLedger:
        """Connect, log in, and check the server against this client's trusted state (TOFU on first contact).

        mirror=True keeps a local, fully verified replay of the ledger beside the trusted state and checks
        every read against it (notary.ledger.immudb.mirror): the one way to know a read shows the newest
        version, or that a key is absent. It costs a catch-up of the new transactions per read.
        settings: the password source, timeout and server key (notary.ledger.settings; default: the
        environment's).
        """
        settings = settings if settings is not None else ImmudbSettings.load()
        if mirror:
            from notary.ledger.immudb._mirrored import MirroredImmudbLedger

            if not issubclass(cls, MirroredImmudbLedger):
                return MirroredImmudbLedger.open(url, trust=trust, password=password, mirror=True,
                                                 replica_of=replica_of, settings=settings)
        target = parse_url(url)
        secret = password if password is not None else settings.password(target.user)
        ledger = cls(target, trust or TrustStore(), settings.timeout)
        ledger.replica_of = replica_of
        ledger._start(secret, settings.server_key())
        return ledger

    def _start(self, password: str, configured_key: str | None) -> None:
        """Connect, log in, check the server against trust and get ready; on any failure, close and raise."""
        try:
            with self._guard("connect"):
                self._connect(password, configured_key)
            self._ready()
        except BaseException:
            self.close()
            raise

    def _ready(self) -> None:
        """Runs once connected and checked (the mirrored ledger catches its mirror up here)."""

    def _writable(self) -> None:
        if self.replica_of:
            raise LedgerUnavailableError(f"cannot write to {self.replica_of}: its primary is unreachable and "
                                         f"{self.target.address} is a read-only replica",
                                         hint="writes resume once the primary is back")

    def write(self, kvs: Mapping[str, bytes]) -> WriteReceipt:
        self._writable()
        encoded = self._encode_kvs(kvs)
        with self._guard("write"):
            if len(encoded) == 1:
                ((key, value),) = encoded.items()
                self._rpc(lambda: self._client.verifiedSet(key, value))
                vtx = self._last("VerifiableSet")
                check_linear_advance(vtx.dualProof)
                header = vtx.tx.header
                if int(header.id) != self._rs.current.tx or header_alh(header) != self._rs.current.alh:
                    raise ProofError(f"immudb transaction {header.id} does not match the verified state")
            else:
                before = self._rs.current.tx
                tx = self._set_all(encoded)
                check_new_tx(tx, before)
                header = self._verified_tx(tx, encoded)
            tx = int(header.id)
            head = self._head(header)
        return WriteReceipt(tx=tx, time=header_time(header), keys=tuple(kvs), head=head)

    def write_batch(self, txs: Sequence[Mapping[str, bytes]]) -> list[WriteReceipt]:
        self._writable()
        return [self.write(kvs) for kvs in txs]

    def _set_all(self, encoded: dict[bytes, bytes]) -> int:
        """One transaction written, unverified: its id (the caller proves it; the transport is the subclass's)."""
        return int(self._rpc(lambda: self._client.setAll(encoded)).id)

    def get(self, key: str, *, at_tx: int | None = None) -> Entry | None:
        if at_tx is not None and at_tx < 1:
            return None
        with self._guard(f"read {key}"):
            if at_tx is None:
                return self._verified_get(key, None)
            return self._verified_get_as_of(key, at_tx)

    def absence(self, key: str, *, at_tx: int | None = None) -> dict[str, Any] | None:
        """Without the mirror, immudb proves inclusion only: "not found" is the server's word ("none")."""
        return None if self.get(key, at_tx=at_tx) is not None else self._absence(key, at_tx, "none")

    def changes(self, after_tx: int, upto_tx: int, *, index: bool = False) -> Iterator[Entry]:
        """Without the mirror nothing proves that a scan of transactions left no entry out: refuse."""
        raise UsageError(f"reading every change of immudb ledger {self.ledger_id} needs the verified mirror",
                         hint="unset NOTARY_IMMUDB_MIRROR=0 / [immudb] mirror = false (docs/immudb.md)")

    def _absence(self, key: str, at_tx: int | None, method: str) -> dict[str, Any]:
        return {"key": key, "method": method, "as_of_tx": at_tx, "head": self.info().head.to_json()}

    def _verified_get_as_of(self, key: str, at_tx: int) -> Entry | None:
        """The version of key current at transaction at_tx.

        immudb's `atTx` reads the value written *in* that transaction, not as of it. The key's history names
        the last version at or before at_tx and its revision (the server's word, like every "latest"); that
        version is then read with a verified call at its own transaction.
        """
        if at_tx > self._rs.current.tx:
            head = self._refresh_head()
            if head is None or at_tx > int(head.id):
                raise InputError(f"immudb ledger {self.ledger_id} has no transaction {at_tx} yet")
        found: tuple[int, int] | None = None  # (revision, tx)
        for revision, item in enumerate(self._listed_versions(key), start=1):
            if int(item.tx) > at_tx:
                break
            found = (revision, int(item.tx))
        if found is None:
            return None
        revision, tx = found
        entry = self._verified_get(key, tx)
        if entry is None or entry.tx != tx:
            raise ProofError(f"immudb history of {key} names tx {tx}, which does not verify")
        return entry._replace(revision=revision)

    def history(self, key: str) -> list[Entry]:
        with self._guard(f"read the history of {key}"):
            entries = []
            for revision, item in enumerate(list(self._listed_versions(key)), start=1):
                entry = self._verified_get(key, int(item.tx))
                if entry is None or entry.tx != int(item.tx) or entry.value != bytes(item.value):
                    raise ProofError(f"immudb history of {key} names tx {item.tx}, which does not verify")
                entries.append(entry._replace(revision=revision))
            return entries

    def keys(self, prefix: str) -> list[str]:
        p = prefix.encode()
        with self._guard(f"list keys under {prefix!r}"):
            found = {k.decode("utf-8", "replace")
                     for k in self._pages(lambda seek: self._client.scan(seek, p, False, _PAGE),
                                          lambda _, page: max(page), b"")}
        return sorted(found)

    def _listed_versions(self, key: str) -> Iterator[Any]:
        """The server's listing of key's versions, checked as it streams: strictly increasing transactions (a
        key has one version per transaction, and a repeated one would verify again), none past a proven head.
        So a listing can never be longer than the ledger is, whatever a server sends."""
        previous = 0
        for item in self._history_items(key):
            tx = int(item.tx)
            if tx <= previous:
                raise ProofError(f"immudb history of {key} lists tx {tx} after tx {previous}")
            if tx > self._rs.current.tx:
                head = self._refresh_head()
                if head is None or tx > int(head.id):
                    raise ProofError(f"immudb history of {key} lists tx {tx}, past the server's proven state")
            previous = tx
            yield item

    def _history_items(self, key: str) -> Iterator[Any]:
        """Every version of key as the server lists it, oldest first (unverified: callers prove each one)."""
        k = _key_bytes(key)
        yield from self._pages(lambda offset: self._client.history(k, offset, _PAGE, False),
                               lambda offset, page: offset + len(page), 0)

    def _pages(self, fetch: Callable[[Any], Any], after: Callable[[Any, Any], Any], start: Any) -> Iterator[Any]:
        """immudb's paged listings (history, scan): pages of at most _PAGE items until a short page; a key
        the server does not know is an empty listing, not an error. A server that sends more items than a page
        holds, a page that does not move the cursor forward, or an endless listing is lying: ProofError."""
        cursor = start
        total = 0
        while True:
            try:
                page = self._rpc(functools.partial(fetch, cursor))
            except Exception as exc:
                if _is_missing(exc):
                    return
                raise
            total += len(page)
            if len(page) > _PAGE or total > _MAX_LISTING:
                raise ProofError(f"immudb sent a listing of more than {min(total, _MAX_LISTING)} items")
            yield from page
            if len(page) < _PAGE:
                return
            following = after(cursor, page)
            if not following > cursor:
                raise ProofError("immudb sent a listing page that does not move forward")
            cursor = following

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
        return self._info(head)

    def _info(self, head: TreeHead, entries: int | None = None, **details: Any) -> LedgerInfo:
        return LedgerInfo(
            url=self.url,
            backend="immudb",
            ledger_id=self.ledger_id,
            head=head,
            trusted=self._trusted.to_json() if self._trusted else None,
            entries=entries,
            transactions=head.tx,
            details={
                "server_uuid": self.server_uuid,
                "server_version": self.server_version,
                "database": self.target.database,
                "address": self.target.address,
                "state_signature_checked": self._key is not None,
                **details,
            },
        )

    def __enter__(self) -> ImmudbLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _verified_get(self, key: str, at_tx: int | None) -> Entry | None:
        k = _key_bytes(key)
        try:
            value, tx, revision, header = self._prove_entry(key, k, at_tx)
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
        if at_tx is not None and tx != at_tx:  # immudb's atTx is exact: the version written in that tx
            raise ProofError(f"immudb answered a read of {key} at tx {at_tx} with tx {tx}")
        self._header_cache[tx] = header
        return Entry(key=key, value=value, tx=tx, time=header_time(header), revision=revision,
                     proof=self._proof(header, self._rs.current))

    def _prove_entry(self, key: str, k: bytes, at_tx: int | None) -> tuple[bytes, int, int, Any]:
        """(value, tx, revision, proven header) of key (as of at_tx: written in it), proven against trust."""
        if at_tx is None:
            self._rpc(lambda: self._client.verifiedGet(k))
        else:
            self._rpc(lambda: self._client.verifiedGetAt(k, at_tx))
        ventry = self._last("VerifiableGet")
        if ventry.entry.HasField("referencedBy") or bytes(ventry.entry.key) != k:
            raise ProofError(f"immudb answered a read of {key} with another key")
        tx = int(ventry.entry.tx)
        check_linear_advance(ventry.verifiableTx.dualProof)
        header = proven_header(ventry.verifiableTx.dualProof, tx)
        return bytes(ventry.entry.value), tx, int(ventry.entry.revision), header

    def _verified_tx(self, tx: int, kvs: dict[bytes, bytes] | None) -> Any:
        """Prove transaction tx consistent with trust (and, given kvs, that it holds exactly them)."""
        from immudb.grpc import schema_pb2

        if self._rs.current.tx == 0:
            request = schema_pb2.VerifiableTxRequest(tx=tx, proveSinceTx=tx)
            stub = self._stub
            assert stub is not None  # set by _connect before any call
            vtx = self._rpc(lambda: stub.VerifiableTxById(request))
            header = verify_tx_tofu(vtx, tx)
            if kvs is not None:
                check_tx_entries(vtx, header, kvs)
            self._rs.accept(ImmuState(self.target.database, tx, header_alh(header), bytes(vtx.signature.signature)))
            self.notices.append(f"trusting immudb ledger {self.ledger_id} from its first transaction {tx} on")
        else:
            if self._rpc(lambda: self._client.verifiedTxById(tx)) is None:
                raise InputError(f"immudb ledger {self.ledger_id} has no transaction {tx}")
            vtx = self._last("VerifiableTxById")
            check_linear_advance(vtx.dualProof)
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

    def _proof(self, header: Any, state: ImmuState) -> dict[str, Any]:
        return {
            "format": "immudb",
            "server_uuid": self.server_uuid,
            "database": self.target.database,
            "tx": int(header.id),
            "tx_time": int(header.ts),
            "tx_alh": header_alh(header).hex(),
            "tx_entries_hash": header_eh(header).hex(),
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


def _is_missing(exc: BaseException) -> bool:
    return _detail(exc).endswith("key not found")
