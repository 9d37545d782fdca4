"""Appending to the embedded ledger: new leaves, the key index, and one signed head per transaction.

Runs inside the caller's write transaction, after the caller proved the current head against trust and the
stored right edge of the log against that head. The key index is loaded along the paths of the keys being
written and checked against the signed index root before it is used (MapUpdate.prefetch), so revision
numbers come from the signed index, not from rows anyone could edit.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from notary.errors import ProofError
from notary.ledger.base import TreeHead
from notary.ledger.embedded import _codec as codec
from notary.ledger.embedded import _map
from notary.ledger.embedded import _store as store
from notary.ledger.embedded._tree import Frontier

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class Written(NamedTuple):
    tx: int
    time_us: int
    keys: tuple[str, ...]
    leaves: tuple[tuple[int, bytes], ...]  # (leaf index, leaf hash)
    tree_size: int
    root: bytes
    map_root: bytes
    signature: bytes


def map_rows(update: _map.MapUpdate) -> list[tuple[int | bytes, bytes, bytes | None]]:
    """Changed nodes as rows, in key order (the B-tree is then written front to back)."""
    hashes, leaves, key = update.hashes, update.leaves, _map.node_key
    return [(key(n), hashes[n], (leaf[0] + leaf[1]) if (leaf := leaves.get(n)) else None)
            for n in sorted(update.changed)]


def append(conn: sqlite3.Connection, txs: list[list[tuple[str, bytes]]], frontier: Frontier, before: TreeHead,
           signer: Ed25519PrivateKey) -> list[Written]:
    """Append txs (each a sorted list of (key, value)) as consecutive transactions; returns what was written."""
    if before.map_root is None:
        raise ProofError("internal: appending to a ledger without a key index")  # the caller upgrades first
    now = max(time.time_ns() // 1000, codec.to_time_us(before.time) if before.time else 0)
    index = _map.MapUpdate(before.map_root, store.map_loader(conn))
    hashes = {key: _map.key_hash(key) for items in txs for key, _ in items}
    index.prefetch(hashes.values())
    entry_rows: list[tuple[int, int, str, int, bytes]] = []
    node_rows: list[tuple[int, bytes]] = []
    tx_rows: list[tuple[int, int, int, int, int, bytes, bytes, bytes | None]] = []
    written = []
    tx = before.tx
    for items in txs:
        tx += 1
        first = frontier.size
        leaves = []
        for key, value in items:
            khash = hashes[key]
            newest = index.get(khash)
            revision = (newest.revision if newest else 0) + 1
            leaf = codec.leaf_hash_of(tx, now, key, revision, value)
            index.set(khash, _map.MapValue(revision, frontier.size, leaf))
            leaves.append((frontier.size, leaf))
            entry_rows.append((frontier.size, tx, key, revision, value))
            frontier.append(leaf, node_rows)
        root, map_root = frontier.root(), index.root()
        signature = signer.sign(codec.head_message(frontier.size, root, tx, now, map_root))
        tx_rows.append((tx, now, first, len(items), frontier.size, root, signature, map_root))
        written.append(Written(tx, now, tuple(k for k, _ in items), tuple(leaves), frontier.size, root, map_root,
                               signature))
    planted = store.fetch_map_nodes(conn, [_map.node_key(n) for n in index.assumed_empty - index.changed])
    if planted:  # rows below a one-key leaf: nothing the signed index covers, so someone put them there
        raise ProofError(f"ledger holds {len(planted)} key index node(s) where the signed index is empty: the file "
                         "was tampered with; nothing was written")
    store.insert(conn, entry_rows, node_rows, tx_rows, map_rows(index))
    return written


def build_index(newest: Mapping[str, tuple[int, int, bytes]]) -> tuple[bytes, list[tuple[int, bytes, bytes | None]]]:
    """The key index over {key: (revision, leaf index, leaf hash)} from scratch: (root, rows to store)."""
    items = sorted((_map.key_hash(k), _map.MapValue(*v).encode()) for k, v in newest.items())
    rows: list[tuple[int, bytes, bytes | None]] = []
    root = _map.build(items, lambda nid, node: rows.append(
        (nid, node[0], None if node[1] is None else node[1][0] + node[1][1])))
    rows.sort()
    return root, rows
