"""Raw proof material from the embedded ledger's stored subtrees: unverified, for auditors, tools, witnesses
and sync (each checks what it gets against a head it verified)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from notary.errors import InputError
from notary.ledger.embedded import _store as store
from notary.ledger.embedded._tree import ProofPlan, assemble
from notary.ledger.embedded._verify import Verifier


class ProofMaterial:
    def __init__(self, connect: Callable[[], contextlib.AbstractContextManager[sqlite3.Connection]],
                 verifier: Verifier, path: Path) -> None:
        self._connect = connect  # a read snapshot of the ledger, under its lock
        self._verifier = verifier
        self._path = path

    def tree_root(self, size: int) -> bytes:
        """Root of the first size leaves, from stored subtrees (any past tree size, not only tx heads)."""
        return self._read(lambda p: [p.frontier(size)], size)[0]

    def stored_leaf_hash(self, index: int) -> bytes:
        """The leaf hash the tree holds at index (level-0 node), as stored."""
        return self._read(lambda p: p.ranges([(index, index + 1)]), index + 1)[0]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 PATH(index, D[size]) from stored subtrees: O(log n) point reads."""
        if not 0 <= index < size:
            raise InputError(f"leaf {index} is outside a tree of size {size}")
        return self._read(lambda p: p.inclusion(index, size), size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 PROOF(size1, D[size2]) from stored subtrees, 0 < size1 <= size2."""
        if not 0 < size1 <= size2:
            raise InputError(f"no consistency proof from size {size1} to {size2}")
        return self._read(lambda p: p.consistency(size1, size2), size2)

    def _read(self, planner: Callable[[ProofPlan], Sequence[Sequence[int]]], size: int) -> list[bytes]:
        with self._connect() as conn:
            row = self._verifier.valid_row(store.head(conn, store.is_v2(conn)))
            if size > (row.tree_size if row else 0):
                raise InputError(f"ledger {self._path} has fewer than {size} entries")
            plan = ProofPlan()
            parts = planner(plan)
            nodes = store.fetch_nodes(conn, plan.ids)
        return assemble(parts, nodes)
