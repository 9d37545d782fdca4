"""One verified snapshot of the embedded ledger, as reads see it: the read skeleton's product.

EmbeddedLedger._snapshot (the one read skeleton: lock trust, one SQLite snapshot, prove the head, let the
caller check its rows, then advance) hands a _View to each read; reads fetch rows through it, in the same
snapshot, and prove them against its head.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from notary.ledger.base import Entry, TreeHead
from notary.ledger.embedded import _store as store
from notary.ledger.embedded._tree import ProofPlan, assemble
from notary.ledger.trust import TrustedState

if TYPE_CHECKING:
    from notary.ledger.embedded._trustkeep import TrustKeeper
    from notary.ledger.embedded._verify import Verifier


class Snap(NamedTuple):
    row: store.HeadRow | None
    size: int
    tx: int
    cons: list[list[int]]
    plan: ProofPlan
    v2: bool


LOAD = object()  # _snapshot: load the trusted state itself (under the trust lock)


class View:
    """One verified snapshot of the ledger: a head proven against trust, and the still-open SQLite snapshot
    it came from, for reading the rows to prove against it."""

    def __init__(self, verifier: Verifier, keeper: TrustKeeper, conn: sqlite3.Connection,
                 trusted: TrustedState | None, head: TreeHead, cons: dict[str, Any], plan: ProofPlan,
                 nodes: dict[int, bytes], v2: bool) -> None:
        self.verifier, self.keeper = verifier, keeper  # what proves its rows, and what moves trust when done
        self.conn, self.trusted = conn, trusted
        self.head, self.cons, self.plan, self.nodes, self.v2 = head, cons, plan, nodes, v2

    def read(self, fn: Any) -> Any:
        return fn(self.conn)

    def paths(self, leaves: Sequence[object]) -> list[list[bytes]]:
        """Inclusion paths of leaves in head, one query; a leaf outside the head gets an empty path, which
        then fails its proof."""
        size = self.head.tree_size
        plan = ProofPlan()
        parts = [plan.inclusion(i, size) if type(i) is int and 0 <= i < size else [] for i in leaves]
        nodes = store.fetch_nodes(self.conn, plan.ids) if leaves else {}
        return [assemble(p, nodes) for p in parts]

    def path(self, leaf: object) -> list[bytes]:
        return self.paths([leaf])[0]

    def consistency(self, size: int) -> list[bytes]:
        """RFC 9162 consistency proof from an earlier size to head."""
        plan = ProofPlan()
        parts = plan.consistency(size, self.head.tree_size)
        return assemble(parts, store.fetch_nodes(self.conn, plan.ids))

    def entries(self, key: str, rows: Sequence[store.EntryRow]) -> list[Entry]:
        """Each row as an entry of key (the key asked for, not the stored one), proven included in head."""
        return [self.verifier.check_entry(key, r, self.head, p, self.cons)
                for r, p in zip(rows, self.paths([r.leaf for r in rows]), strict=True)]

    def entry(self, key: str, row: store.EntryRow) -> Entry:
        return self.entries(key, [row])[0]

    def done(self) -> TrustedState:
        """Every check passed: move the trusted state to this head."""
        return self.keeper.advance(self.trusted, self.head)
