"""Verified snapshots of the embedded ledger, as reads see them: the one read skeleton and its product.

Snapshots.open is that skeleton: lock trust, one SQLite snapshot, prove the head (signature, consistency
with the trusted state), let the caller check its rows, then advance. It hands a View to each read; reads
fetch rows through it, in the same snapshot, and prove them against its head.
"""

from __future__ import annotations

import contextlib
import enum
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeVar

from notary.errors import ProofError
from notary.ledger.base import Entry, TreeHead
from notary.ledger.embedded import _store as store
from notary.ledger.embedded._tree import ProofPlan, assemble
from notary.ledger.trust import TrustedState

if TYPE_CHECKING:
    from notary.ledger.embedded._file import LedgerFile
    from notary.ledger.embedded._trustkeep import TrustKeeper
    from notary.ledger.embedded._verify import Consistency, Verifier

T = TypeVar("T")


class Snap(NamedTuple):
    row: store.HeadRow | None
    size: int
    tx: int
    cons: list[list[int]]
    plan: ProofPlan
    v2: bool


class _Trust(enum.Enum):
    LOAD = "load"


LOAD: Literal[_Trust.LOAD] = _Trust.LOAD  # Snapshots.open: load the trusted state itself (under the trust lock)


class View:
    """One verified snapshot of the ledger: a head proven against trust, and the still-open SQLite snapshot
    it came from, for reading the rows to prove against it."""

    def __init__(self, verifier: Verifier, keeper: TrustKeeper, conn: sqlite3.Connection,
                 trusted: TrustedState | None, head: TreeHead, cons: Consistency, plan: ProofPlan,
                 nodes: dict[int, bytes], v2: bool) -> None:
        self.verifier, self.keeper = verifier, keeper  # what proves its rows, and what moves trust when done
        self.conn, self.trusted = conn, trusted
        self.head, self.cons, self.plan, self.nodes, self.v2 = head, cons, plan, nodes, v2

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
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


class Snapshots:
    """The ledger's heads proven against this client's trusted state: for reads (open) and for a write or an
    upgrade about to change the file (verified_head)."""

    def __init__(self, file: LedgerFile, verifier: Verifier, keeper: TrustKeeper, notices: list[str]) -> None:
        self.file, self.verifier, self.keeper = file, verifier, keeper
        self._notices = notices  # the ledger's own list (the format v1 notice, once)
        self._v1_noticed = False

    def verified_head(self, conn: sqlite3.Connection, trusted: TrustedState | None,
                      v2: bool | None = None) -> TreeHead:
        """The head of the file under conn (the caller's transaction), proven against trusted: what a write
        or an upgrade checks before it changes anything."""
        snap = self._read_head(conn, trusted, v2)
        return self._finish(snap, trusted, store.fetch_nodes(conn, snap.plan.ids))[0]

    @contextlib.contextmanager
    def open(self, trusted: TrustedState | None | Literal[_Trust.LOAD] = LOAD) -> Iterator[View]:
        """The one read skeleton: lock trust, read the head and what the caller needs in one SQLite snapshot,
        prove the head (signature, consistency with trust), let the caller check its rows, then advance.

        The caller reads inside its `with` block through view.read (same snapshot, still open) and must
        call view.done() after its own checks: only then does the trusted state move. An exception anywhere
        leaves it untouched. trusted: the state a caller already holding the trust lock loaded (a write
        proving what it wrote); by default the state is loaded here, under that lock."""
        with contextlib.ExitStack() as stack:
            if trusted is LOAD:
                stack.enter_context(self.keeper.locked())
                trusted = self.keeper.load()
            conn = stack.enter_context(self.file.transaction())
            snap = self._read_head(conn, trusted)
            nodes = store.fetch_nodes(conn, snap.plan.ids)
            head, cons = self._finish(snap, trusted, nodes)
            yield View(self.verifier, self.keeper, conn, trusted, head, cons, snap.plan, nodes, snap.v2)

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
                nodes: Mapping[int, bytes]) -> tuple[TreeHead, Consistency]:
        head = self.verifier.check_head(snap.row) if snap.row is not None else self.verifier.empty_head(snap.v2)
        path = self.file.path
        if snap.v2 and head.map_root is None:
            raise ProofError(f"ledger {path} has a key index, but its head (tx {head.tx}) is not signed "
                             "with one")
        if not snap.v2 and not self._v1_noticed:
            self._v1_noticed = True
            self._notices.append(f"ledger {path} is format v1: reads prove inclusion, not that they show the "
                                 "newest version (run `notary ledger upgrade`, or write once, to add the key index)")
        return head, self.verifier.check_trust(trusted, head, assemble(snap.cons, nodes))
