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
from functools import partial
from typing import TYPE_CHECKING

from notary import merkle
from notary.errors import InputError, IntegrityError, ProofError
from notary.ledger.base import Entry, TreeHead
from notary.ledger.embedded import _codec as codec
from notary.ledger.embedded import _map
from notary.ledger.embedded import _store as store
from notary.ledger.embedded._reads import index_proofs

if TYPE_CHECKING:
    from notary.ledger.embedded._view import View

_BLOCK = 4096  # the largest subtree proven at once (a power of two)


def changes(view: View, after_tx: int, upto_tx: int, *, index: bool = False) -> Iterator[Entry]:
    """index: also prove that the signed key index at the head holds, for every key the range wrote, exactly
    the newest version the range shows (a monitor's check that the index was updated as the entries say).
    Only when the range ends at the head, where that version is every such key's newest."""
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
    newest: dict[str, tuple[int, int, bytes]] = {}
    for start, size in _blocks(lo, hi):
        rows = view.read(partial(store.entries_between, lo=start, hi=start + size))
        if [r.leaf for r in rows] != list(range(start, start + size)):
            missing = sorted(set(range(start, start + size)) - {r.leaf for r in rows})
            raise ProofError(f"leaf {missing[0] if missing else start} is missing from the ledger: a record was deleted")
        hashes = [_leaf_hash(r) for r in rows]
        _prove_block(view.head, start, hashes, view.path(start))
        if index:
            newest.update((r.key, (r.revision, r.leaf, h)) for r, h in zip(rows, hashes, strict=True))
        for row in rows:
            if not after_tx < row.tx <= upto_tx:
                raise ProofError(f"leaf {row.leaf} belongs to tx {row.tx}, outside {after_tx + 1}..{upto_tx}")
            yield Entry(row.key, row.value, row.tx, codec.from_time_us(row.time_us), row.revision,
                        {"format": "rfc9162-range", "hash": "sha256", "leaf_index": row.leaf,
                         "tree_size": view.head.tree_size, "root_hash": view.head.root.hex(), "head_tx": view.head.tx})


    if index and upto_tx == head.tx and head.map_root is not None:
        if after_tx == 0:  # every key of the ledger was read: rebuild the whole index, O(n) hashes
            items = sorted((_map.key_hash(k), _map.MapValue(*v).encode()) for k, v in newest.items())
            if _map.build(items) != head.map_root:
                raise ProofError(f"the signed key index at tx {head.tx} is not the index of the log's entries: "
                                 "it was not updated as the entries say")
        else:
            _check_index(view, newest)


def _check_index(view: View, newest: dict[str, tuple[int, int, bytes]]) -> None:
    """Per written key, its index proof at the head (for a range that is not the whole ledger)."""
    keys = sorted(newest)
    for first in range(0, len(keys), 1000):
        chunk = keys[first:first + 1000]
        proofs = view.read(partial(index_proofs, keys=chunk))
        for key in chunk:
            value = view.verifier.check_index(key, proofs[key], view.head)
            held = None if value is None else (value.revision, value.leaf_index, value.leaf_hash)
            if held != newest[key]:
                revision, leaf, _ = newest[key]
                says = "nothing" if held is None else f"revision {held[0]} at leaf {held[1]}"
                raise ProofError(f"the signed key index at tx {view.head.tx} holds {says} for {key!r}, but the "
                                 f"log's newest entry of it is revision {revision} at leaf {leaf}: the index was "
                                 "not updated as the entries say")


def _blocks(lo: int, hi: int) -> Iterator[tuple[int, int]]:
    """[lo, hi) as aligned, full subtrees (start, size), each at most _BLOCK leaves, in order."""
    while lo < hi:
        size = min(lo & -lo if lo else _BLOCK, _BLOCK)
        while lo + size > hi:
            size >>= 1
        yield lo, size
        lo += size


def _prove_block(head: TreeHead, start: int, leaves: list[bytes], path: list[bytes]) -> None:
    """Every leaf of the aligned block at start is at its index in head (see the module doc)."""
    level = leaves
    siblings: list[bytes] = []
    while len(level) > 1:
        siblings.append(level[1])  # the right half of the block's left-most subtree at this height
        level = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    if path[:len(siblings)] != siblings:
        raise ProofError(f"leaves {start}..{start + len(leaves) - 1} are not the ones the signed tree holds there")
    try:
        merkle.verify_inclusion(leaves[0], start, head.tree_size, path, head.root)
    except ProofError as exc:
        raise ProofError(f"leaf {start} is not in the signed tree of size {head.tree_size}: {exc.message}") from exc


def _leaf_hash(row: store.EntryRow) -> bytes:
    if not isinstance(row.value, bytes) or type(row.tx) is not int or type(row.revision) is not int \
            or not isinstance(row.key, str):
        raise IntegrityError(f"the ledger holds a malformed row at leaf {row.leaf}")
    if row.time_us < 0:
        raise ProofError(f"leaf {row.leaf} belongs to a transaction that is missing from the ledger")
    return merkle.leaf_hash(codec.encode_leaf(row.tx, row.time_us, row.key, row.revision, row.value))


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
    return view.verifier.check_entry(row.key, row, view.head, view.path(index), view.cons)
