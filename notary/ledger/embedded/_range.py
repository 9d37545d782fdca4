"""Every entry written in a range of transactions, proven complete: what `notary audit diff` reads.

The log is one Merkle tree whose leaves are in write order and each commit to its transaction number, so the
entries of transactions after_tx+1..upto_tx are exactly the leaves lo..hi-1 where lo is the tree size after
after_tx and hi after upto_tx. The sizes come from the txs table, which proves nothing by itself; what proves
the range is the leaves: each one in lo..hi-1 is read, by contiguous index, proven included in the verified
head and found to carry a transaction inside the range, and the leaves just outside it (lo-1 and hi) are
proven to carry transactions outside it. A row deleted, a leaf left out, a size in txs that lies: each
breaks one of these, a ProofError (exit 3), never a shorter list.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from notary.errors import InputError, ProofError
from notary.ledger.base import Entry
from notary.ledger.embedded import _store as store

if TYPE_CHECKING:
    from notary.ledger.embedded._view import View

_CHUNK = 512  # leaves proven per batch of inclusion paths


def changes(view: View, after_tx: int, upto_tx: int) -> Iterator[Entry]:
    head = view.head
    if not 0 <= after_tx <= upto_tx <= head.tx:
        raise InputError(f"no transaction range {after_tx}..{upto_tx} in a ledger at tx {head.tx}")
    lo, hi = _size_after(view, after_tx), _size_after(view, upto_tx)
    if not 0 <= lo <= hi <= head.tree_size:
        raise ProofError(f"the ledger's transaction sizes are not a prefix order ({lo}, {hi}, {head.tree_size})")
    if lo > 0 and _leaf(view, lo - 1).tx > after_tx:
        raise ProofError(f"leaf {lo - 1} belongs to a transaction after tx {after_tx}: the transaction table lies")
    if hi < head.tree_size and _leaf(view, hi).tx <= upto_tx:
        raise ProofError(f"leaf {hi} belongs to tx {upto_tx} or before: an entry would be left out")
    for start in range(lo, hi, _CHUNK):
        end = min(hi, start + _CHUNK)
        rows = view.read(lambda c, a=start, b=end: store.entries_between(c, a, b))
        if [r.leaf for r in rows] != list(range(start, end)):
            missing = sorted(set(range(start, end)) - {r.leaf for r in rows})
            raise ProofError(f"leaf {missing[0] if missing else start} is missing from the ledger: a record was deleted")
        for row, path in zip(rows, view.paths([r.leaf for r in rows]), strict=True):
            entry = view.ledger.verifier.check_entry(row.key, row, head, path, view.cons)
            if not after_tx < entry.tx <= upto_tx:
                raise ProofError(f"leaf {row.leaf} belongs to tx {entry.tx}, outside {after_tx + 1}..{upto_tx}")
            yield entry


def _size_after(view: View, tx: int) -> int:
    if tx == 0:
        return 0
    row = view.read(lambda c: store.tx_row(c, tx, view.v2))
    if row is None:
        raise ProofError(f"transaction {tx} is missing from the ledger")
    return int(row.tree_size)


def _leaf(view: View, index: int) -> Entry:
    row = view.read(lambda c: store.entry_at(c, index))
    if row is None:
        raise ProofError(f"leaf {index} is missing from the ledger: a record was deleted")
    return view.ledger.verifier.check_entry(row.key, row, view.head, view.path(index), view.cons)
