"""The verified local mirror over an ImmudbLedger (either transport): reads that show the newest version, or prove
there is none.

Every read first catches the mirror up to the server's current state (`_sync`: CurrentState, then TxScan pages
of the new transactions, each re-hashed and chained from the trusted state to that state; nothing new: one
round trip). The read itself still goes through the server's verified calls, unchanged, and its answer is then
compared with the mirror: a server (or a proxy on the plain-HTTP/2 gRPC channel) that answers with an older
revision, leaves a version out of a history, or says "not found" for a key the replay holds is caught with a
ProofError (exit 3), instead of being served around silently, so the operator learns the ledger lies.

A read happens after one sync (head H1) and may see transactions written after it. It is accepted when it is
exactly what the mirror holds as of some transaction X with H1 <= X <= H2, where H2 is a second sync made only
when the first comparison fails: so an answer is never older than the head the client verified before asking.

`keys` and `tx_at_time` are served from the mirror (complete, where the server's scan is only a hint).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from notary.errors import InputError, ProofError
from notary.ledger.base import Entry, LedgerInfo, TreeHead, WriteReceipt
from notary.ledger.immudb._proofs import check_new_tx
from notary.ledger.immudb._replay import EMPTY_ALH, holds_exactly, replay, value_hash
from notary.ledger.immudb._session import Session
from notary.ledger.immudb.ledger import ImmudbLedger, encode_kvs
from notary.ledger.immudb.mirror import Mirror, Version, mirror_path
from notary.ledger.trust import TrustStore


@dataclass(frozen=True)
class MirrorAudit:
    """What `audit` replayed and checked (the fields `notary ledger audit` prints)."""

    head: TreeHead
    transactions: int
    entries: int
    keys: int
    signatures_checked: int
    replayed: int
    added: int
    seconds: float
    mirror: str


class MirroredLedger:
    """An ImmudbLedger whose reads are checked against a local replay of every transaction (see module doc)."""

    last_catch_up: tuple[int, float] = (0, 0.0)  # (transactions added, seconds) of the latest sync

    def __init__(self, ledger: ImmudbLedger, mirror: Mirror) -> None:
        self.ledger = ledger
        self.session: Session = ledger.session
        self.mirror = mirror
        self.url = ledger.url
        self.notices = ledger.notices

    @classmethod
    def over(cls, ledger: ImmudbLedger) -> MirroredLedger:
        """The mirror beside the ledger's trusted state, opened and caught up (the ledger is closed on failure)."""
        try:
            mirrored = cls(ledger, Mirror.open(mirror_path(ledger.trust, ledger.ledger_id), ledger.ledger_id))
        except BaseException:
            ledger.close()
            raise
        try:
            mirrored.catch_up()
        except BaseException:
            mirrored.close()
            raise
        return mirrored

    @property
    def ledger_id(self) -> str:
        return self.ledger.ledger_id

    @property
    def trust(self) -> TrustStore:
        return self.ledger.trust

    @property
    def server_uuid(self) -> str:
        return self.ledger.server_uuid

    @property
    def replica_of(self) -> str | None:
        return self.ledger.replica_of

    def close(self) -> None:
        self.mirror.close()
        self.ledger.close()

    def __enter__(self) -> MirroredLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def catch_up(self) -> int:
        """Bring the mirror to the server's current state now; returns the transactions added."""
        with self.session.guard("catch up the local immudb mirror"):
            self._sync()
        return self.last_catch_up[0]

    def write(self, kvs: Mapping[str, bytes]) -> WriteReceipt:
        return self.ledger.write(kvs)

    # -- writes ----------------------------------------------------------------------------------------------

    def write_batch(self, txs: Sequence[Mapping[str, bytes]]) -> list[WriteReceipt]:
        """Many transactions, one proof for them all: each is written unverified, then one catch-up replays
        every new transaction (ours and anyone's) chained from the trusted state to the server's current one,
        and each of ours must hold exactly the keys and value hashes written. A round trip per transaction
        instead of a write plus a proof each (docs/immudb.md, "Batched writes")."""
        self.session.writable()
        if len(txs) < 2:
            return self.ledger.write_batch(txs)
        encoded = [encode_kvs(kvs) for kvs in txs]
        keeper = self.session.keeper
        with self.session.guard("write"):
            ids: list[int] = []
            for kvs in encoded:
                tx = self.ledger.write_unverified(kvs)
                check_new_tx(tx, ids[-1] if ids else keeper.current.tx)
                ids.append(tx)
            self._sync()
            if keeper.current.tx < ids[-1]:
                raise ProofError(f"immudb's state is at tx {keeper.current.tx}, before the write of tx {ids[-1]}")
            head = self.ledger.head(None)
            receipts = []
            for tx, kvs, plain in zip(ids, encoded, txs, strict=True):
                if not holds_exactly(self.mirror.tx_entries(tx), kvs):
                    raise ProofError(f"immudb transaction {tx} does not hold exactly the values notary wrote")
                when = datetime.fromtimestamp(self.mirror.header(tx).ts, timezone.utc)
                receipts.append(WriteReceipt(tx=tx, time=when, keys=tuple(plain), head=head))
        return receipts

    # -- reads -----------------------------------------------------------------------------------------------

    def get(self, key: str, *, at_tx: int | None = None) -> Entry | None:
        if at_tx is not None and at_tx < 1:
            return None
        with self.session.guard(f"read {key}"):
            head = self._sync()
            if at_tx is not None:
                if at_tx > head:
                    raise InputError(f"immudb ledger {self.ledger_id} has no transaction {at_tx} yet")
                entry = self.ledger.read_as_of(key, at_tx)
                return self._checked_get(key, entry, at_tx, at_tx)
            entry = self.ledger.read(key, None)
            if self._get_problem(key, entry, head, head) is None:
                return self._mark(entry, head)
            return self._checked_get(key, entry, head, self._sync())

    def history(self, key: str) -> list[Entry]:
        with self.session.guard(f"read the history of {key}"):
            head = self._sync()
            entries = self.ledger.read_history(key)
            if self._history_problem(key, entries, head, head) is not None:
                later = self._sync()
                problem = self._history_problem(key, entries, head, later)
                if problem is not None:
                    raise ProofError(f"immudb's history of {key} {problem}", hint=_LIE)
            return [_marked(e, head) for e in entries]

    def absence(self, key: str, *, at_tx: int | None = None) -> dict[str, Any] | None:
        """Method "mirror-replay": the verified replay of every transaction up to the head named holds no version
        (the read compared with it, as every mirrored read is); re-checkable by replaying, not by a path."""
        return None if self.get(key, at_tx=at_tx) is not None else self.ledger.absence_record(key, at_tx, "mirror-replay")

    def changes(self, after_tx: int, upto_tx: int, *, index: bool = False) -> Iterator[Entry]:
        """The mirror names every entry of the range (complete by replay); each value is read proven as of its
        transaction, which the mirror comparison pins to the entry replayed (one verified read per entry)."""
        head = self._sync()
        if not 0 <= after_tx <= upto_tx <= head:
            raise InputError(f"no transaction range {after_tx}..{upto_tx} in immudb ledger {self.ledger_id} at tx {head}")
        for tx, key, deleted in list(self.mirror.written(after_tx, upto_tx)):
            if deleted:
                raise ProofError(f"immudb holds a deletion of {key} at tx {tx}: notary never deletes a ledger key")
            entry = self.get(key, at_tx=tx)
            if entry is None or entry.tx != tx:
                raise ProofError(f"immudb's read of {key} as of tx {tx} is not the entry the replay holds there",
                                 hint=_LIE)
            yield entry

    def keys(self, prefix: str) -> list[str]:
        with self.session.guard(f"list keys under {prefix!r}"):
            return self.mirror.keys(prefix, self._sync())

    def tx_at_time(self, when: datetime) -> int | None:
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        with self.session.guard("map a time to a transaction"):
            return self.mirror.last_tx_until(when.timestamp(), self._sync())

    def info(self) -> LedgerInfo:
        with self.session.guard("read the ledger head"):
            head_tx = self._sync()
            head = self.ledger.head(None)
            if head_tx:
                head = head._replace(time=datetime.fromtimestamp(self.mirror.header(head_tx).ts, timezone.utc))
        added, seconds = self.last_catch_up
        return self.ledger.info_of(head, self.mirror.entries, mirror={
            "path": str(self.mirror.path), "tx": self.mirror.last_tx, "entries": self.mirror.entries,
            "last_catch_up": {"transactions": added, "seconds": round(seconds, 3)}})

    def audit(self) -> MirrorAudit:
        """Replay the whole ledger from the server (tx 1 to its current state) against the trusted state and
        the mirror, after re-hashing the mirror file and catching it up. Raises on the first discrepancy."""
        started = time.perf_counter()
        with self.session.guard("audit the immudb ledger"):
            self.mirror.verify()
            self._verify_key_index()
            head = self._sync()
            added = self.last_catch_up[0]
            replayed = self._replay_against_mirror(head)
            head_info = self.ledger.head(None)
        return MirrorAudit(
            head=head_info, transactions=head, entries=self.mirror.entries, keys=self.mirror.key_count(),
            signatures_checked=1 if self.session.key and head else 0, replayed=replayed, added=added,
            seconds=time.perf_counter() - started, mirror=str(self.mirror.path),
        )

    def _verify_key_index(self) -> None:
        """The key index kept beside the mirror (checkpoints, evidence), if any: rebuilt whole and compared."""
        from notary.ledger.immudb import key_index_store

        if key_index_store.store_path(self.mirror).exists():
            store = key_index_store.KeyIndexStore.open(self.mirror)
            try:
                store.verify()
            finally:
                store.close()

    # -- the comparison --------------------------------------------------------------------------------------

    def _checked_get(self, key: str, entry: Entry | None, lo: int, hi: int) -> Entry | None:
        problem = self._get_problem(key, entry, lo, hi)
        if problem is not None:
            raise ProofError(f"immudb answered a read of {key} {problem}", hint=_LIE)
        return self._mark(entry, hi)

    def _get_problem(self, key: str, entry: Entry | None, lo: int, hi: int) -> str | None:
        """Why entry is not the newest version of key as of any transaction in [lo, hi] (None: it is)."""
        versions = self._versions(key, hi)
        if entry is None:
            for x in [lo] + [v.tx for v in versions if lo < v.tx <= hi]:
                newest = _newest(versions, x)
                if newest is None or newest.deleted:
                    return None
            newest = _newest(versions, lo)
            assert newest is not None
            return (f"with 'not found', but the verified replay holds revision {newest.revision} at tx "
                    f"{newest.tx}: the server hides the key")
        mine = next((v for v in versions if v.tx == entry.tx), None)
        if mine is None or mine.deleted or entry.revision not in (0, mine.revision):  # atTx reads carry none
            return f"with revision {entry.revision} at tx {entry.tx}, which the verified replay does not hold"
        if value_hash(entry.value) != mine.hvalue:
            return f"at tx {entry.tx} with other bytes than the verified replay holds"
        after = next((v for v in versions if v.tx > entry.tx), None)
        if after is not None and after.tx <= lo:
            return (f"with revision {entry.revision} (tx {entry.tx}), but the verified replay holds the newer "
                    f"revision {after.revision} at tx {after.tx}: the server hides the newest version")
        return None

    def _history_problem(self, key: str, entries: list[Entry], lo: int, hi: int) -> str | None:
        versions = self._versions(key, hi)
        for entry, mine in zip(entries, versions, strict=False):
            if entry.tx != mine.tx or entry.revision != mine.revision:
                return (f"names tx {entry.tx} as revision {entry.revision}, where the verified replay holds tx "
                        f"{mine.tx}: a version was left out")
            if not mine.deleted and value_hash(entry.value) != mine.hvalue:
                return f"holds other bytes at tx {entry.tx} than the verified replay"
        if len(entries) > len(versions):
            return f"has {len(entries)} versions, the verified replay {len(versions)}"
        complete_to = sum(1 for v in versions if v.tx <= lo)
        if len(entries) < complete_to:
            missing = versions[len(entries)]
            return (f"ends at revision {len(entries)}, but the verified replay holds revision {missing.revision} "
                    f"at tx {missing.tx}: the server hides the newest versions")
        return None

    def _versions(self, key: str, as_of: int) -> list[Version]:
        versions = self.mirror.versions(key, as_of)
        expiring = next((v for v in versions if v.expires), None)
        if expiring is not None:  # its visibility depends on the server's clock: nothing to compare against
            raise ProofError(f"ledger key {key} has an expiring version at tx {expiring.tx}; notary never writes "
                             "one, and cannot check reads of it against the verified replay")
        return versions

    def _mark(self, entry: Entry | None, head: int) -> Entry | None:
        return None if entry is None else _marked(entry, head)

    # -- catching up -----------------------------------------------------------------------------------------

    def _sync(self) -> int:
        """Catch the mirror up to the server's current state, chained from trust; move trust there."""
        session = self.session
        current = session.current_state()
        session.check_not_behind(current)
        trusted = session.keeper.current
        started = time.perf_counter()
        added = 0
        if current.tx > 0:
            added = self.mirror.catch_up(session.transport.scan_txs, trusted=(trusted.tx, trusted.alh),
                                         target=(current.tx, current.alh))
        session.keeper.accept(current)  # proven: the replayed chain runs from the trusted Alh to this one
        self.last_catch_up = (added, time.perf_counter() - started)
        return current.tx

    def _replay_against_mirror(self, head: int) -> int:
        """Fetch and re-hash every transaction again; each Alh must equal the mirror's and the trusted one."""
        if head == 0:
            return 0
        trusted = self.session.keeper.current
        done = 0
        for row, _ in replay(self.session.transport.scan_txs(1, head), 1, EMPTY_ALH, (trusted.tx, trusted.alh)):
            if row.alh != self.mirror.header(row.id).alh:
                raise ProofError(f"immudb's transaction {row.id} differs from the one this client mirrored")
            done = row.id
            if done == head:
                break
        if done != head:
            raise ProofError(f"immudb's scan ended at tx {done}, its state is at tx {head}")
        return done


_LIE = "the server or a proxy on the way withholds ledger data; do not trust its answers"


def _marked(entry: Entry, head: int) -> Entry:
    """The entry with the mirror comparison recorded in its proof record (docs/immudb.md, the proof record)."""
    checked = list(entry.proof.get("checked", [])) + ["mirror-replay"]
    return entry._replace(proof={**entry.proof, "checked": checked, "mirror_tx": head})


def _newest(versions: list[Version], as_of: int) -> Version | None:
    found = None
    for v in versions:
        if v.tx > as_of:
            break
        found = v
    return found
