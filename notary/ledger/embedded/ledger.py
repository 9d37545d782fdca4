"""The embedded ledger: one SQLite file (WAL), an RFC 9162 Merkle tree over its entries, heads signed by the
ledger's own Ed25519 key, and every read proven on the client against its trusted state.

What is proven on every read: the entry's leaf (recomputed from the row, docs/proofs.md) is included in the
current signed head; that head is signed by the ledger key pinned on first use; and it extends (RFC 9162
consistency) the head this client trusted before. Only then does the trusted state move forward. Writes
check the same before writing (never extend a ledger this client cannot trust) and again after committing.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from notary.errors import (
    InputError,
    LedgerUnavailableError,
    ProofError,
    RollbackError,
    UsageError,
)
from notary.ledger.base import Entry, LedgerInfo, TreeHead, WriteReceipt
from notary.ledger.embedded import _codec as codec
from notary.ledger.embedded import _location, _range, _reads
from notary.ledger.embedded import _store as store
from notary.ledger.embedded._keyfile import LedgerKey
from notary.ledger.embedded._material import ProofMaterial
from notary.ledger.embedded._tree import Frontier, ProofPlan, assemble
from notary.ledger.embedded._trustkeep import TrustKeeper
from notary.ledger.embedded._upgrade import upgrade_in_place
from notary.ledger.embedded._verify import Verifier
from notary.ledger.embedded._view import LOAD, Snap, View
from notary.ledger.trust import TrustedState, TrustStore

if TYPE_CHECKING:
    from notary.ledger.embedded._audit import AuditReport
    from notary.ledger.embedded._writer import Written


def path_from_url(url: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise UsageError(f"not an embedded ledger URL: {url!r}", hint="use file:///absolute/path/ledger.db")
    raw = unquote(parts.path)
    if not raw.startswith("/") or raw.endswith("/"):
        raise UsageError(f"ledger URL {url!r} must name a file by absolute path", hint="file:///path/ledger.db")
    return Path(os.path.abspath(raw)).resolve()


class EmbeddedLedger:
    """Ledger protocol over one SQLite file. Thread-safe (one lock); processes serialize through SQLite and
    a lock file beside the trusted state, so concurrent clients never move trust out of order."""

    backend = "file"

    def __init__(self, url: str, path: Path, conn: sqlite3.Connection, trust: TrustStore, public_raw: bytes):
        self.verifier = Verifier(path, public_raw)  # every check, pure; this class does the I/O around it
        self.path = path
        self.trust = trust
        self.public_raw = public_raw
        self.ledger_id = self.verifier.ledger_id
        self.ledger_key = self.verifier.ledger_key
        self.url = url
        self.notices: list[str] = []
        self.created = False  # this open created the file (ledger init reports it; notices are for people)
        self._conn = conn
        self._file = _location.identity(path)
        self._lock = threading.RLock()
        self._v1_noticed = False
        # its collaborators: the signing key beside the file, the trusted state, the raw proof material
        self.key = LedgerKey(path, public_raw, self.ledger_id)
        self.trust_keeper = TrustKeeper(trust, self.verifier, path, self._lock, self.notices)
        self.material = ProofMaterial(self._read_snapshot, self.verifier, path)

    # -- opening ------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, trust: TrustStore | None = None, create: bool = True) -> EmbeddedLedger:
        """Open (or with create=True, create) the ledger at url; refuses a ledger replaced at that path."""
        path = path_from_url(url)
        trust = trust if trust is not None else TrustStore()
        pinned = _location.pinned(trust, path)
        if pinned is not None and not path.is_file():
            # A ledger this client already trusted does not vanish by accident: deleted, or a directory or
            # something else put in its place, is tampering (exit 3), so a fail-open gate cannot be opened
            # by removing the file.
            raise _location.gone(trust, path, pinned)
        if not path.exists():
            if not create:
                raise LedgerUnavailableError(f"no ledger at {path}", hint="check --ledger / NOTARY_LEDGER; to create "
                                             "one there: notary ledger init (or notarize --create)")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerUnavailableError(f"cannot create ledger directory {path.parent}: {exc.strerror}") from exc
        conn = store.connect(path, create=create)
        try:
            public_raw, created, _ = store.load_or_create(conn, path, create and pinned is None)
            if public_raw is None:
                if pinned is not None:
                    raise _location.replaced(trust, path, pinned, "nothing (it is empty)")
                raise LedgerUnavailableError(f"no ledger at {path} (the file is empty)")
        except BaseException:
            conn.close()
            raise
        ledger = cls(url, path, conn, trust, public_raw)
        try:
            _location.pin(trust, path, pinned, ledger.ledger_id, ledger.ledger_key)
            if created:
                ledger.created = True
                with ledger.trust_keeper.locked():
                    ledger.trust_keeper.advance(None, ledger.verifier.empty_head(), first_use_notice=False)
                ledger.notices.append(f"created new ledger {ledger.ledger_id} at {path}")
        except BaseException:
            conn.close()
            raise
        return ledger

    def _live(self) -> sqlite3.Connection:
        """The connection, as long as the file at self.path is still the one it reads (_location.reopen)."""
        with self._lock:
            if _location.identity(self.path) != self._file:
                conn, self._file = _location.reopen(self.trust, self.path, self.public_raw)
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = conn
            return self._conn

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.close()

    @contextlib.contextmanager
    def _read_snapshot(self) -> Iterator[sqlite3.Connection]:
        with self._lock, store.transaction(self._live(), self.path) as conn:
            yield conn

    def __enter__(self) -> EmbeddedLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------------------

    def write(self, kvs: Mapping[str, bytes]) -> WriteReceipt:
        return self._write([codec.check_kvs(kvs)], prove_each=True)[0]

    def write_batch(self, txs: Sequence[Mapping[str, bytes]]) -> list[WriteReceipt]:
        if not isinstance(txs, Sequence) or isinstance(txs, (str, bytes)):
            raise InputError(f"write_batch takes a list of transactions, got {type(txs).__name__}")
        checked = [codec.check_kvs(kvs) for kvs in txs]
        return self._write(checked, prove_each=False) if checked else []

    def _write(self, txs: list[list[tuple[str, bytes]]], *, prove_each: bool) -> list[WriteReceipt]:
        signer = self.key.private()
        with self.trust_keeper.locked():
            trusted = self.trust_keeper.load()
            with store.transaction(self._live(), self.path, write=True) as conn:
                if not store.is_v2(conn):
                    trusted = upgrade_in_place(self, conn, trusted, signer)
                before = self.verified_head(conn, trusted)  # never extend a ledger we cannot trust
                plan = ProofPlan()
                ids = plan.frontier(before.tree_size)
                nodes = store.fetch_nodes(conn, plan.ids)
                frontier = Frontier(before.tree_size, assemble([[i] for i in ids], nodes))
                if frontier.root() != before.root:
                    raise ProofError(f"stored tree of ledger {self.path} does not match its signed head")
                from notary.ledger.embedded import _writer  # writers only: kept off the read path's start-up

                written = _writer.append(conn, txs, frontier, before, signer)
            # Committed. Now prove it the way any reader would, against whatever head is current.
            last = written[-1]
            with self._snapshot(trusted) as view:
                if view.head.tree_size < last.tree_size:
                    raise RollbackError(f"ledger {self.path} lost the transaction just written to it")
                if prove_each:
                    self._prove_written(view, written)
                else:
                    tail = view.consistency(last.tree_size)
                    self.verifier.check_extension(last.tree_size, last.root, view.head, tail)
                    if view.head.tx == last.tx and view.head.map_root != last.map_root:
                        raise ProofError(f"ledger {self.path} does not hold the key index just written")
                view.done()
        return [
            WriteReceipt(tx=w.tx, time=codec.from_time_us(w.time_us), keys=w.keys,
                         head=TreeHead(self.ledger_id, w.tree_size, w.root, w.tx, codec.from_time_us(w.time_us),
                                       w.signature, w.map_root))
            for w in written
        ]

    def _prove_written(self, view: View, written: list[Written]) -> None:
        """Each new leaf included in the current head, and named by the key index as its key's newest."""
        leaves = [leaf for w in written for leaf in w.leaves]
        keys = [k for w in written for k in w.keys]
        for (i, leaf), path in zip(leaves, view.paths([i for i, _ in leaves]), strict=True):
            self.verifier.check_leaf(leaf, i, view.head, path, what=f"written leaf {i}")
        proofs = view.read(lambda c: _reads.index_proofs(c, keys))
        for key, (i, leaf) in zip(keys, leaves, strict=True):
            newest = self.verifier.check_index(key, proofs[key], view.head)
            if newest is None or (newest.leaf_index, newest.leaf_hash) != (i, leaf):
                raise ProofError(f"the key index of ledger {self.path} does not name {key!r} as just written")

    def upgrade(self) -> dict[str, Any]:
        """Give a format v1 ledger its key index (notary ledger upgrade); a no-op on v2. Never rewrites a
        record: the whole log is recomputed and checked first, then the index is built from it and the
        current head re-signed with the index root (same tree size, same log root)."""
        signer = self.key.private()
        with self.trust_keeper.locked():
            trusted = self.trust_keeper.load()
            with store.transaction(self._live(), self.path, write=True) as conn:
                if store.is_v2(conn):
                    head = self.verified_head(conn, trusted)
                    return {"upgraded": False, "format": store.FORMAT, "head": head.to_json()}
                trusted = upgrade_in_place(self, conn, trusted, signer)
                head = self.verified_head(conn, trusted)
            self.trust_keeper.advance(trusted, head)
        return {"upgraded": True, "format": store.FORMAT, "head": head.to_json()}

    def sign_checkpoint(self, text: str) -> bytes:
        return self.key.sign_checkpoint(text)

    # -- reading ------------------------------------------------------------------------------------------

    def get(self, key: str, *, at_tx: int | None = None) -> Entry | None:
        codec.check_key(key)
        if at_tx is not None and (isinstance(at_tx, bool) or not isinstance(at_tx, int) or at_tx < 1):
            raise InputError(f"transaction number must be a positive integer, got {at_tx!r}")
        with self._snapshot() as view:
            if at_tx is not None and at_tx > view.head.tx:
                raise InputError(f"ledger {self.path} has no transaction {at_tx} yet (head is tx {view.head.tx})")
            if view.head.map_root is None:
                entry = self._get_v1(view, key, at_tx)
            else:
                entry = _reads.get(self, view, key, at_tx)
            view.done()
        return entry

    def _get_v1(self, view: View, key: str, at_tx: int | None) -> Entry | None:
        """Format v1: inclusion only (the newest version cannot be proven without the key index)."""
        row = view.read(lambda c: store.latest_entry(c, key, at_tx))
        entry = view.entry(key, row) if row else None
        if entry is not None and at_tx is not None and entry.tx > at_tx:
            raise ProofError(f"ledger returned tx {entry.tx} for a read as of tx {at_tx}")
        return entry

    def history(self, key: str) -> list[Entry]:
        codec.check_key(key)
        with self._snapshot() as view:
            rows = view.read(lambda c: store.entries_of(c, key))
            if view.head.map_root is None:
                entries = view.entries(key, rows)  # one query for every inclusion path
            else:
                entries = _reads.history(self, view, key, rows)
            revisions = [e.revision for e in entries]
            if revisions != list(range(1, len(entries) + 1)):
                raise ProofError(f"history of {key!r} has gaps or duplicates: revisions {revisions}")
            view.done()
        return entries

    def absence(self, key: str, *, at_tx: int | None = None) -> dict[str, Any] | None:
        """Proof that key had no version (as of at_tx): docs/proofs.md, "Absence". None: it has one."""
        codec.check_key(key)
        with self._snapshot() as view:
            if view.head.map_root is None:
                view.done()
                return {"key": key, "method": "none", "as_of_tx": at_tx, "head": view.head.to_json(),
                        "reason": "format v1 ledger: no key index to prove absence (notary ledger upgrade)"}
            found = _reads.absence(self, view, key, at_tx)
            view.done()
        return found

    def changes(self, after_tx: int, upto_tx: int, *, index: bool = False) -> Iterator[Entry]:
        """Every entry of transactions after_tx+1..upto_tx, in write order, the range proven complete (_range);
        index: and the key index at the head proven to hold each written key's newest version. One snapshot
        for the whole range: consume it to the end before another read of this ledger."""
        with self._snapshot() as view:
            yield from _range.changes(view, after_tx, upto_tx, index=index)
            view.done()

    def keys(self, prefix: str) -> list[str]:
        if not isinstance(prefix, str):
            raise InputError("key prefix must be a string")
        with self._lock, store.transaction(self._live(), self.path) as conn:
            return store.keys_with_prefix(conn, prefix)

    def tx_at_time(self, when: datetime) -> int | None:
        """Last tx with time <= when, proven by the hashed times of its first leaf and of the next tx's."""
        with self._snapshot() as view:
            found = _reads.tx_at_time(view, when)
            view.done()
        return found

    def head_at_size(self, size: int) -> TreeHead | None:
        """The head the ledger key signed when the log reached `size`, its signature checked; None when no
        transaction ended there. Tying its root to a verified head (a consistency proof) is the caller's."""
        with self._snapshot() as view:
            row = view.read(lambda c: store.tx_ending_at(c, size, view.v2))
            signed = self.verifier.check_head(self.verifier.valid_row(row)) if row is not None else None
            view.done()
        return signed

    def info(self) -> LedgerInfo:
        with self._snapshot() as view:
            state = view.done()
        fmt = store.FORMAT if view.v2 else store.FORMAT_V1
        return LedgerInfo(
            url=self.url, backend=self.backend, ledger_id=self.ledger_id, head=view.head, trusted=state.to_json(),
            entries=view.head.tree_size, transactions=view.head.tx,
            details={"path": str(self.path), "ledger_key": self.ledger_key, "format": fmt,
                     "key_index": view.head.map_root is not None},
        )

    def audit(self, *, all_signatures: bool = True) -> AuditReport:
        """Recompute everything stored from the entry rows (O(n)): rows deleted, edited or added anywhere, in
        the entries, the log's stored subtrees or the key index (docs/proofs.md, "Audit"). Then the head is
        checked against trust as usual."""
        from dataclasses import replace

        from notary.ledger.embedded._audit import check_index, recompute  # auditors only: off the hook's path

        with self._snapshot() as view:
            report: AuditReport
            report, newest = view.read(lambda c: recompute(self.verifier, c, view.v2, all_signatures=all_signatures))
            if view.v2:
                report = replace(report, index_nodes_checked=view.read(lambda c: check_index(c, view.head, newest)))
            if view.head != report.head:
                raise ProofError("the audited head is not the current head")
            view.done()
        return report

    # -- raw proof material (unverified: for auditors, tools and tests; ProofMaterial) --------------------

    def tree_root(self, size: int) -> bytes:
        return self.material.tree_root(size)

    def stored_leaf_hash(self, index: int) -> bytes:
        return self.material.stored_leaf_hash(index)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.material.inclusion_proof(index, size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        return self.material.consistency_proof(size1, size2)

    # -- plumbing -----------------------------------------------------------------------------------------

    def _read_head(self, conn: sqlite3.Connection, trusted: TrustedState | None, v2: bool | None = None) -> Snap:
        """The head row plus the plan of its consistency proof from the trusted state (same snapshot)."""
        v2 = store.is_v2(conn) if v2 is None else v2
        row = self.verifier.valid_row(store.head(conn, v2))
        plan = ProofPlan()
        size = row.tree_size if row else 0
        old = trusted.tree_size if trusted else 0
        cons = plan.consistency(old, size) if 0 < old < size else []
        return Snap(row, size, row.tx if row else 0, cons, plan, v2)

    def _finish(self, snap: Snap, trusted: TrustedState | None,
                nodes: Mapping[int, bytes]) -> tuple[TreeHead, dict[str, Any]]:
        head = self.verifier.check_head(snap.row) if snap.row is not None else self.verifier.empty_head(snap.v2)
        if snap.v2 and head.map_root is None:
            raise ProofError(f"ledger {self.path} has a key index, but its head (tx {head.tx}) is not signed "
                             "with one")
        if not snap.v2 and not self._v1_noticed:
            self._v1_noticed = True
            self.notices.append(f"ledger {self.path} is format v1: reads prove inclusion, not that they show the "
                                "newest version (run `notary ledger upgrade`, or write once, to add the key index)")
        return head, self.verifier.check_trust(trusted, head, assemble(snap.cons, nodes))

    def verified_head(self, conn: sqlite3.Connection, trusted: TrustedState | None,
                       v2: bool | None = None) -> TreeHead:
        """The head of the file under conn (the caller's transaction), proven against trusted: what a write
        or an upgrade (_upgrade) checks before it changes anything."""
        snap = self._read_head(conn, trusted, v2)
        return self._finish(snap, trusted, store.fetch_nodes(conn, snap.plan.ids))[0]

    @contextlib.contextmanager
    def _snapshot(self, trusted: Any = LOAD) -> Iterator[View]:
        """The one read skeleton: lock trust, read the head and what the caller needs in one SQLite snapshot,
        prove the head (signature, consistency with trust), let the caller check its rows, then advance.

        The caller reads inside its `with` block through view.read (same snapshot, still open) and must
        call view.done() after its own checks: only then does the trusted state move. An exception anywhere
        leaves it untouched."""
        with contextlib.ExitStack() as stack:
            if trusted is LOAD:
                stack.enter_context(self.trust_keeper.locked())
                trusted = self.trust_keeper.load()
            conn = stack.enter_context(store.transaction(self._live(), self.path))
            snap = self._read_head(conn, trusted)
            nodes = store.fetch_nodes(conn, snap.plan.ids)
            head, cons = self._finish(snap, trusted, nodes)
            yield View(self.verifier, self.trust_keeper, conn, trusted, head, cons, snap.plan, nodes, snap.v2)
