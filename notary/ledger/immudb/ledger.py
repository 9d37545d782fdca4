"""The immudb ledger: every answer proven by notary's own checks, whichever transport brought it.

Trust lives in notary's own TrustStore (one state per server identity and database, ledger id
"immudb:<server uuid>/<database>"). Each operation starts from the persisted state, proves the server's answer
consistent with it (_proofs, on the typed proof data a transport returns: _transport), and only then persists
the new state (_session). Any failure leaves the trusted state file untouched. The transport is gRPC (_grpc) or
immudb's HTTP gateway (_gateway); `notary.ledger.open_ledger` chooses, and wraps the ledger in the verified
mirror (_mirrored) unless told not to.

What immudb cannot prove (docs/immudb.md): that a value is the *latest* version of its key, that a key is absent,
and that a history is complete. Here those answers are the server's word; every value returned is proven
included, and every head proven consistent with what this client saw before. The mirror closes the gap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

from notary.errors import InputError, ProofError, RollbackError, UsageError
from notary.ledger.base import Entry, LedgerInfo, TreeHead, WriteReceipt
from notary.ledger.immudb._conn import ImmudbTarget, ServerError
from notary.ledger.immudb._proofs import (
    ImmuState,
    check_new_tx,
    header_time,
    prove_entry,
    prove_tx,
    prove_tx_body,
)
from notary.ledger.immudb._replay import TxRow
from notary.ledger.immudb._session import Session
from notary.ledger.immudb._transport import PAGE, Item, Transport, TxProof
from notary.ledger.trust import TrustStore

_MAX_LISTING = 1_000_000  # versions of one key, or keys under one prefix, before a listing is called endless
_C = TypeVar("_C", int, bytes)
_I = TypeVar("_I")


class ImmudbLedger:
    """A Ledger on one immudb database (the mirror, when on, wraps it: _mirrored.MirroredLedger)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.url = session.url
        self.notices = session.notices  # the session's own list: what it noticed while connecting is in it

    @classmethod
    def open(cls, target: ImmudbTarget, transport: Transport, *, trust: TrustStore, password: str,
             server_key: str | None, replica_of: str | None = None) -> ImmudbLedger:
        """Connect through transport, log in, and check the server against this client's trusted state (TOFU
        on first contact). replica_of: the primary's ledger id, when this server is its read-only replica."""
        session = Session(target, trust, transport, replica_of)
        session.start(password, server_key)
        return cls(session)

    # what callers read of the connection
    @property
    def ledger_id(self) -> str:
        return self.session.ledger_id

    @property
    def trust(self) -> TrustStore:
        return self.session.trust

    @property
    def server_uuid(self) -> str:
        return self.session.server_uuid

    @property
    def replica_of(self) -> str | None:
        return self.session.replica_of

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> ImmudbLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ writes

    def write(self, kvs: Mapping[str, bytes]) -> WriteReceipt:
        self.session.writable()
        encoded = encode_kvs(kvs)
        keeper = self.session.keeper
        with self.session.guard("write"):
            before = keeper.current.tx
            answer = self.session.transport.verifiable_set(encoded, before)
            tx = answer.header.id
            check_new_tx(tx, before)
            header = self._accept(tx, answer, encoded)
            head = self.head(header)
        return WriteReceipt(tx=tx, time=header_time(header), keys=tuple(kvs), head=head)

    def write_batch(self, txs: Sequence[Mapping[str, bytes]]) -> list[WriteReceipt]:
        self.session.writable()
        return [self.write(kvs) for kvs in txs]

    def write_unverified(self, encoded: dict[bytes, bytes]) -> int:
        """One transaction written, not yet proven: its id (the caller proves it)."""
        return self.session.transport.set_all(encoded)

    # ------------------------------------------------------------ reads

    def get(self, key: str, *, at_tx: int | None = None) -> Entry | None:
        if at_tx is not None and at_tx < 1:
            return None
        with self.session.guard(f"read {key}"):
            if at_tx is None:
                return self.read(key, None)
            return self.read_as_of(key, at_tx)

    def absence(self, key: str, *, at_tx: int | None = None) -> dict[str, Any] | None:
        """Without the mirror, immudb proves inclusion only: "not found" is the server's word ("none")."""
        return None if self.get(key, at_tx=at_tx) is not None else self.absence_record(key, at_tx, "none")

    def absence_record(self, key: str, at_tx: int | None, method: str) -> dict[str, Any]:
        return {"key": key, "method": method, "as_of_tx": at_tx, "head": self.info().head.to_json()}

    def changes(self, after_tx: int, upto_tx: int, *, index: bool = False) -> Iterator[Entry]:
        """Without the mirror nothing proves that a scan of transactions left no entry out: refuse."""
        raise UsageError(f"reading every change of immudb ledger {self.ledger_id} needs the verified mirror",
                         hint="unset NOTARY_IMMUDB_MIRROR=0 / [immudb] mirror = false (docs/immudb.md)")

    def history(self, key: str) -> list[Entry]:
        with self.session.guard(f"read the history of {key}"):
            return self.read_history(key)

    def read_history(self, key: str) -> list[Entry]:
        """Every version the server lists, each proven by a verified read at its transaction (inside a guard)."""
        entries = []
        for revision, item in enumerate(list(self._listed_versions(key)), start=1):
            entry = self.read(key, item.tx)
            if entry is None or entry.tx != item.tx or entry.value != item.value:
                raise ProofError(f"immudb history of {key} names tx {item.tx}, which does not verify")
            entries.append(entry._replace(revision=revision))
        return entries

    def read_as_of(self, key: str, at_tx: int) -> Entry | None:
        """The version of key current at transaction at_tx (inside a guard).

        immudb's `atTx` reads the value written *in* that transaction, not as of it. The key's history names
        the last version at or before at_tx and its revision (the server's word, like every "latest"); that
        version is then read with a verified call at its own transaction.
        """
        if at_tx > self.session.keeper.current.tx:
            head = self.refresh_head()
            if head is None or at_tx > head.id:
                raise InputError(f"immudb ledger {self.ledger_id} has no transaction {at_tx} yet")
        found: tuple[int, int] | None = None  # (revision, tx)
        for revision, item in enumerate(self._listed_versions(key), start=1):
            if item.tx > at_tx:
                break
            found = (revision, item.tx)
        if found is None:
            return None
        revision, tx = found
        entry = self.read(key, tx)
        if entry is None or entry.tx != tx:
            raise ProofError(f"immudb history of {key} names tx {tx}, which does not verify")
        return entry._replace(revision=revision)

    def read(self, key: str, at_tx: int | None) -> Entry | None:
        """key's newest version (or the one written in at_tx), proven against trust (inside a guard)."""
        k = key_bytes(key)
        keeper = self.session.keeper
        try:
            if keeper.current.tx == 0 and self.refresh_head() is None:
                return None  # an empty database, proven so
            answer = self.session.transport.verifiable_get(k, at_tx, keeper.current.tx)
        except ServerError as exc:
            if exc.key_missing:
                return None
            if at_tx is not None and exc.detail == "tx not found":
                if at_tx <= keeper.current.tx:
                    raise RollbackError(
                        f"immudb no longer has tx {at_tx}, which this client verified: the ledger was rolled back"
                    ) from exc
                raise InputError(f"immudb ledger {self.ledger_id} has no transaction {at_tx} yet") from exc
            raise
        header = prove_entry(keeper, k, answer)
        if at_tx is not None and answer.tx != at_tx:  # immudb's atTx is exact: the version written in that tx
            raise ProofError(f"immudb answered a read of {key} at tx {at_tx} with tx {answer.tx}")
        self.session.headers[answer.tx] = header
        return Entry(key=key, value=answer.value, tx=answer.tx, time=header_time(header), revision=answer.revision,
                     proof=self._proof(header, keeper.current))

    def keys(self, prefix: str) -> list[str]:
        p = prefix.encode()
        transport = self.session.transport
        with self.session.guard(f"list keys under {prefix!r}"):
            since = self.session.keeper.current.tx
            found = {k.decode("utf-8", "replace")
                     for k in self._pages(lambda seek: transport.scan_keys(p, seek, PAGE, since),
                                          lambda _, page: max(page), b"")}
        return sorted(found)

    def _listed_versions(self, key: str) -> Iterator[Item]:
        """The server's listing of key's versions, checked as it streams: strictly increasing transactions (a
        key has one version per transaction, and a repeated one would verify again), none past a proven head.
        So a listing can never be longer than the ledger is, whatever a server sends."""
        k = key_bytes(key)
        transport, keeper = self.session.transport, self.session.keeper
        previous = 0
        for item in self._pages(lambda offset: transport.history(k, offset, PAGE, keeper.current.tx),
                                lambda offset, page: offset + len(page), 0):
            if item.tx <= previous:
                raise ProofError(f"immudb history of {key} lists tx {item.tx} after tx {previous}")
            if item.tx > keeper.current.tx:
                head = self.refresh_head()
                if head is None or item.tx > head.id:
                    raise ProofError(f"immudb history of {key} lists tx {item.tx}, past the server's proven state")
            previous = item.tx
            yield item

    @staticmethod
    def _pages(fetch: Callable[[_C], list[_I]], after: Callable[[_C, list[_I]], _C], start: _C) -> Iterator[_I]:
        """immudb's paged listings (history, scan): pages of at most PAGE items until a short page; a key the
        server does not know is an empty listing, not an error. A server that sends more items than a page
        holds, a page that does not move the cursor forward, or an endless listing is lying: ProofError."""
        cursor = start
        total = 0
        while True:
            try:
                page = fetch(cursor)
            except ServerError as exc:
                if exc.key_missing:
                    return
                raise
            total += len(page)
            if len(page) > PAGE or total > _MAX_LISTING:
                raise ProofError(f"immudb sent a listing of more than {min(total, _MAX_LISTING)} items")
            yield from page
            if len(page) < PAGE:
                return
            following = after(cursor, page)
            if not following > cursor:
                raise ProofError("immudb sent a listing page that does not move forward")
            cursor = following

    def tx_at_time(self, when: datetime) -> int | None:
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        limit = when.timestamp()
        with self.session.guard("map a time to a transaction"):
            head = self.refresh_head()
            if head is None or self._header(1).ts > limit:
                return None
            lo, hi = 1, head.id  # invariant: ts(lo) <= limit; answer in [lo, hi]
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if self._header(mid).ts <= limit:
                    lo = mid
                else:
                    hi = mid - 1
            return lo

    def info(self) -> LedgerInfo:
        with self.session.guard("read the ledger head"):
            head = self.head(self.refresh_head())
        return self.info_of(head)

    def info_of(self, head: TreeHead, entries: int | None = None, **details: object) -> LedgerInfo:
        s = self.session
        return LedgerInfo(
            url=self.url,
            backend="immudb",
            ledger_id=self.ledger_id,
            head=head,
            trusted=s.trusted.to_json() if s.trusted else None,
            entries=entries,
            transactions=head.tx,
            details={
                "server_uuid": s.server_uuid,
                "server_version": s.server_version,
                "database": s.target.database,
                "address": s.target.address,
                "state_signature_checked": s.key is not None,
                **s.transport.details(),
                **details,
            },
        )

    # ------------------------------------------------------------ proven transactions and heads

    def proven_tx(self, tx: int) -> TxRow:
        """Prove transaction tx consistent with trust; trust moves to it if it is newer."""
        try:
            answer = self.session.transport.verifiable_tx(tx, self.session.keeper.current.tx or tx)
        except ServerError as exc:
            if "tx not found" in exc.detail:
                raise InputError(f"immudb ledger {self.ledger_id} has no transaction {tx}") from None
            raise
        return self._accept(tx, answer, None)

    def _accept(self, tx: int, answer: TxProof, kvs: dict[bytes, bytes] | None) -> TxRow:
        """tx's header once the answer proves it against trust (and, given kvs, that it holds exactly them)."""
        first = self.session.keeper.current.tx == 0
        header = prove_tx(self.session.keeper, tx, answer)
        if kvs is not None:
            prove_tx_body(header, answer, kvs)
        if first:
            self.notices.append(f"trusting immudb ledger {self.ledger_id} from its transaction {tx} on")
        self.session.headers[tx] = header
        return header

    def _header(self, tx: int) -> TxRow:
        if tx not in self.session.headers:
            self.proven_tx(tx)
        return self.session.headers[tx]

    def refresh_head(self) -> TxRow | None:
        """Prove the server's current (signed) state consistent with trust and move to it."""
        current = self.session.current_state()
        self.session.check_not_behind(current)
        if current.tx == 0:
            return None
        header = self.proven_tx(current.tx)
        if header.alh != current.alh:
            raise ProofError(f"immudb's current state at tx {current.tx} does not match its proven header")
        return header

    def head(self, header: TxRow | None) -> TreeHead:
        s = self.session.keeper.current
        time = header_time(header) if header is not None and header.id == s.tx else None
        return TreeHead(self.ledger_id, s.tx, s.alh, s.tx, time, s.signature or None)

    def _proof(self, header: TxRow, state: ImmuState) -> dict[str, Any]:
        signed = self.session.key is not None
        return {
            "format": "immudb",
            "server_uuid": self.session.server_uuid,
            "database": self.session.target.database,
            "tx": header.id,
            "tx_time": header.ts,
            "tx_alh": header.alh.hex(),
            "tx_entries_hash": header.eh.hex(),
            "state": {
                "tx": state.tx,
                "hash": state.alh.hex(),
                "signature": state.signature.hex() or None,
                "signature_checked": signed,
            },
            "checked": ["entry-inclusion", "dual-proof"] + (["state-signature"] if signed else []),
        }


def encode_kvs(kvs: Mapping[str, bytes]) -> dict[bytes, bytes]:
    if not kvs:
        raise InputError("nothing to write: a ledger transaction needs at least one key")
    out: dict[bytes, bytes] = {}
    for key, value in kvs.items():
        if not isinstance(value, (bytes, bytearray)):
            raise InputError(f"value of ledger key {key!r} must be bytes")
        out[key_bytes(key)] = bytes(value)
    return out


def key_bytes(key: str) -> bytes:
    if not key:
        raise InputError("ledger keys must not be empty")
    return key.encode("utf-8")
