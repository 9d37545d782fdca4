"""Full audit of an embedded ledger: recompute everything stored from the entry rows.

Per-read proofs check what a read touches. The audit checks everything the file holds: every leaf is
recomputed from its row and every transaction's root from those leaves (a missing, edited, reordered or
extra entry anywhere is found); every stored subtree hash of the log (the `nodes` table, which proofs are
built from) is compared with the recomputed one, and their count; and the key index is rebuilt from the
newest version of every key and compared, root and every stored node, with the signed head and the file.
O(n) time, O(keys) memory, one read snapshot. The same recomputation is what an upgrade to format v2
builds its key index from, so an upgrade never signs an index over rows that do not match the log.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from notary.errors import ProofError
from notary.ledger.base import TreeHead
from notary.ledger.embedded import _codec as codec
from notary.ledger.embedded import _map
from notary.ledger.embedded import _store as store
from notary.ledger.embedded._tree import Frontier, describe

if TYPE_CHECKING:
    import sqlite3

    from notary.ledger.embedded._verify import Verifier


@dataclass(frozen=True)
class AuditReport:
    head: TreeHead
    entries: int
    transactions: int
    keys: int
    signatures_checked: int
    nodes_checked: int = 0
    index_nodes_checked: int = 0


_NODE_BATCH = 20_000


class _NodeCheck:
    """Compare recomputed log subtree hashes with the stored ones, a batch at a time (bounded memory)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pending: list[tuple[int, bytes]] = []
        self.total = 0

    def flush(self) -> None:
        stored = store.fetch_nodes(self.conn, [i for i, _ in self.pending])
        for nid, h in self.pending:
            if stored.get(nid) != h:
                what = "missing" if nid not in stored else "altered"
                raise ProofError(f"stored log subtree {describe(nid)} is {what}")
        self.total += len(self.pending)
        self.pending = []

    def finish(self) -> int:
        self.flush()
        count = store.count_rows(self.conn, "nodes")
        if count != self.total:
            raise ProofError(f"the log holds {count} stored subtrees, {self.total} expected: extra rows")
        return self.total


def recompute(verifier: Verifier, conn: sqlite3.Connection, v2: bool, *,
              all_signatures: bool = True) -> tuple[AuditReport, dict[str, tuple[int, int, bytes]]]:
    """Recompute every leaf, transaction root and stored subtree; raise ProofError at the first thing that
    does not hold. Returns the report and every key's newest (revision, leaf index, leaf hash)."""
    frontier = Frontier(0, [])
    entries = store.iter_entries(conn)
    newest: dict[str, tuple[int, int, bytes]] = {}
    nodes = _NodeCheck(conn)
    checked, last_time, expected_tx = 0, None, 1
    last_row: store.HeadRow | None = None
    for tx in store.iter_txs(conn, v2):
        verifier.valid_row(tx)
        if tx.tx != expected_tx:
            raise ProofError(f"transaction {expected_tx} is missing (found {tx.tx} next)")
        if tx.first_leaf != frontier.size:
            raise ProofError(f"transaction {tx.tx} starts at leaf {tx.first_leaf}, expected {frontier.size}")
        if last_time is not None and tx.time_us < last_time:
            raise ProofError(f"transaction {tx.tx} is older than transaction {tx.tx - 1}")
        for _ in range(tx.leaf_count):
            row = next(entries, None)
            if row is None or row.leaf != frontier.size:
                raise ProofError(f"entry at leaf {frontier.size} (tx {tx.tx}) is missing")
            if row.tx != tx.tx:
                raise ProofError(f"entry at leaf {row.leaf} claims tx {row.tx}, but lies in tx {tx.tx}")
            codec.check_key(row.key)
            revision = newest[row.key][0] + 1 if row.key in newest else 1
            if row.revision != revision:
                raise ProofError(f"entry at leaf {row.leaf} is revision {row.revision} of {row.key!r}, "
                                 f"expected {revision}")
            leaf = codec.leaf_hash_of(tx.tx, tx.time_us, row.key, row.revision, row.value)
            newest[row.key] = (revision, row.leaf, leaf)
            frontier.append(leaf, nodes.pending)
        if frontier.root() != tx.root:
            raise ProofError(f"root of transaction {tx.tx} does not match its entries")
        if last_row is not None and last_row.map_root is not None and tx.map_root is None:
            raise ProofError(f"transaction {tx.tx} has no key index root, but an earlier one had")
        if len(nodes.pending) >= _NODE_BATCH:
            nodes.flush()
        if all_signatures:
            verifier.check_head(tx)
            checked += 1
        expected_tx += 1
        last_time = tx.time_us
        last_row = tx
    extra = next(entries, None)
    if extra is not None:
        raise ProofError(f"entry at leaf {extra.leaf} belongs to no transaction")
    head = verifier.check_head(last_row)
    total = nodes.finish()
    report = AuditReport(head, frontier.size, expected_tx - 1, len(newest),
                         checked if all_signatures else int(last_row is not None), total)
    return report, newest


def check_index(conn: sqlite3.Connection, head: TreeHead, newest: dict[str, tuple[int, int, bytes]]) -> int:
    """Rebuild the key index from every key's newest version; it must match the signed root and the file."""
    from notary.ledger.embedded._writer import build_index

    root, rows = build_index(newest)
    if head.map_root is not None and root != head.map_root:
        raise ProofError("the signed key index root does not match the newest versions in the log")
    with contextlib.closing(store.map_nodes_cursor(conn)) as cursor:
        return _compare_index(rows, ((_map.key_node(n), h, leaf) for n, h, leaf in cursor))


def _compare_index(rows: list[tuple[int, bytes, bytes | None]], stored: Iterator[tuple[int, bytes, bytes | None]]) -> int:
    for expected in rows:  # both in node number order
        found = next(stored, None)
        if found is None or found[0] > expected[0]:
            raise ProofError(f"stored key index node {expected[0]} (depth {_map.depth_of(expected[0])}) is missing")
        if found[0] < expected[0]:
            raise ProofError(f"stored key index node {found[0]} is not part of the index")
        if found != expected:
            raise ProofError(f"stored key index node {expected[0]} (depth {_map.depth_of(expected[0])}) is altered")
    extra = next(stored, None)
    if extra is not None:
        raise ProofError(f"stored key index node {extra[0]} is not part of the index")
    return len(rows)
