"""Full audit of an embedded ledger: recompute the whole tree from the entry rows.

Per-read proofs show that what was returned is in the signed tree; they cannot show that nothing was
*removed* from the tables (a deleted newest version of a key, say a revocation, leaves the tree intact).
The audit closes that gap the expensive way: every leaf is recomputed from its row and every transaction's
root from those leaves, so a missing, edited, reordered or extra row anywhere is found. O(n) time,
O(log n + keys) memory, one read snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from notary.errors import ProofError
from notary.ledger.base import TreeHead
from notary.ledger.embedded import _codec as codec
from notary.ledger.embedded import _store as store
from notary.ledger.embedded._tree import Frontier

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


def recompute(verifier: Verifier, conn: sqlite3.Connection, *, all_signatures: bool = True) -> AuditReport:
    """Recompute every leaf and transaction root; raise ProofError at the first thing that does not hold."""
    frontier = Frontier(0, [])
    entries = store.iter_entries(conn)
    last_revision: dict[str, int] = {}
    checked, last_time, expected_tx = 0, None, 1
    last_row: store.HeadRow | None = None
    for tx in store.iter_txs(conn):
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
            revision = last_revision.get(row.key, 0) + 1
            if row.revision != revision:
                raise ProofError(f"entry at leaf {row.leaf} is revision {row.revision} of {row.key!r}, "
                                 f"expected {revision}")
            last_revision[row.key] = revision
            frontier.append(codec.leaf_hash_of(tx.tx, tx.time_us, row.key, row.revision, row.value), [])
        if frontier.root() != tx.root:
            raise ProofError(f"root of transaction {tx.tx} does not match its entries")
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
    return AuditReport(head, frontier.size, expected_tx - 1, len(last_revision),
                       checked if all_signatures else int(last_row is not None))
