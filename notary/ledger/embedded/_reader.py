"""Every read of the embedded ledger: each one a verified snapshot (Snapshots.open), its rows proven against
that snapshot's head, and the trusted state moved only once all of that passed.

Format v2 reads prove completeness through the key index (_reads); format v1 reads prove inclusion only
(the newest version cannot be proven without the index; the ledger says so once, in its notices).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from notary.errors import InputError, ProofError
from notary.ledger.base import Entry, TreeHead
from notary.ledger.embedded import _codec as codec
from notary.ledger.embedded import _range, _reads
from notary.ledger.embedded import _store as store
from notary.ledger.embedded._view import Snapshots, View
from notary.ledger.trust import TrustedState

if TYPE_CHECKING:
    from notary.ledger.embedded._audit import AuditReport


class Reader:
    def __init__(self, snapshots: Snapshots) -> None:
        self.snapshots = snapshots
        self.file, self.verifier = snapshots.file, snapshots.verifier
        self.path = self.file.path

    def get(self, key: str, *, at_tx: int | None = None) -> Entry | None:
        codec.check_key(key)
        if at_tx is not None and (isinstance(at_tx, bool) or not isinstance(at_tx, int) or at_tx < 1):
            raise InputError(f"transaction number must be a positive integer, got {at_tx!r}")
        with self.snapshots.open() as view:
            if at_tx is not None and at_tx > view.head.tx:
                raise InputError(f"ledger {self.path} has no transaction {at_tx} yet (head is tx {view.head.tx})")
            if view.head.map_root is None:
                entry = self.get_v1(view, key, at_tx)
            else:
                entry = _reads.get(view, key, at_tx)
            view.done()
        return entry

    @staticmethod
    def get_v1(view: View, key: str, at_tx: int | None) -> Entry | None:
        """Format v1: inclusion only (the newest version cannot be proven without the key index)."""
        row = view.read(lambda c: store.latest_entry(c, key, at_tx))
        entry = view.entry(key, row) if row else None
        if entry is not None and at_tx is not None and entry.tx > at_tx:
            raise ProofError(f"ledger returned tx {entry.tx} for a read as of tx {at_tx}")
        return entry

    def history(self, key: str) -> list[Entry]:
        codec.check_key(key)
        with self.snapshots.open() as view:
            rows = view.read(lambda c: store.entries_of(c, key))
            if view.head.map_root is None:
                entries = view.entries(key, rows)  # one query for every inclusion path
            else:
                entries = _reads.history(view, key, rows)
            revisions = [e.revision for e in entries]
            if revisions != list(range(1, len(entries) + 1)):
                raise ProofError(f"history of {key!r} has gaps or duplicates: revisions {revisions}")
            view.done()
        return entries

    def absence(self, key: str, *, at_tx: int | None = None) -> dict[str, object] | None:
        """Proof that key had no version (as of at_tx): docs/proofs.md, "Absence". None: it has one."""
        codec.check_key(key)
        with self.snapshots.open() as view:
            if view.head.map_root is None:
                view.done()
                return {"key": key, "method": "none", "as_of_tx": at_tx, "head": view.head.to_json(),
                        "reason": "format v1 ledger: no key index to prove absence (notary ledger upgrade)"}
            found = _reads.absence(view, key, at_tx)
            view.done()
        return found

    def changes(self, after_tx: int, upto_tx: int, *, index: bool = False) -> Iterator[Entry]:
        """Every entry of transactions after_tx+1..upto_tx, in write order, the range proven complete (_range);
        index: and the key index at the head proven to hold each written key's newest version. One snapshot
        for the whole range: consume it to the end before another read of this ledger."""
        with self.snapshots.open() as view:
            yield from _range.changes(view, after_tx, upto_tx, index=index)
            view.done()

    def keys(self, prefix: str) -> list[str]:
        if not isinstance(prefix, str):
            raise InputError("key prefix must be a string")
        with self.file.read_snapshot() as conn:
            return store.keys_with_prefix(conn, prefix)

    def tx_at_time(self, when: datetime) -> int | None:
        """Last tx with time <= when, proven by the hashed times of its first leaf and of the next tx's."""
        with self.snapshots.open() as view:
            found = _reads.tx_at_time(view, when)
            view.done()
        return found

    def head_at_size(self, size: int) -> TreeHead | None:
        """The head the ledger key signed when the log reached `size`, its signature checked; None when no
        transaction ended there. Tying its root to a verified head (a consistency proof) is the caller's."""
        with self.snapshots.open() as view:
            row = view.read(lambda c: store.tx_ending_at(c, size, view.v2))
            signed = self.verifier.check_head(self.verifier.valid_row(row)) if row is not None else None
            view.done()
        return signed

    def current(self) -> tuple[TreeHead, TrustedState, bool]:
        """The verified head, the trusted state it moved to, and whether the file is format v2."""
        with self.snapshots.open() as view:
            state = view.done()
        return view.head, state, view.v2

    def audit(self, *, all_signatures: bool = True) -> AuditReport:
        """Recompute everything stored from the entry rows (O(n)): rows deleted, edited or added anywhere, in
        the entries, the log's stored subtrees or the key index (docs/proofs.md, "Audit"). Then the head is
        checked against trust as usual."""
        from dataclasses import replace

        from notary.ledger.embedded._audit import check_index, recompute  # auditors only: off the hook's path

        with self.snapshots.open() as view:
            report: AuditReport
            report, newest = view.read(lambda c: recompute(self.verifier, c, view.v2, all_signatures=all_signatures))
            if view.v2:
                report = replace(report, index_nodes_checked=view.read(lambda c: check_index(c, view.head, newest)))
            if view.head != report.head:
                raise ProofError("the audited head is not the current head")
            view.done()
        return report
