"""Appending to the embedded ledger: new leaves, the key index, and one signed head per transaction.

Writer is the ledger's write path: under the trust lock, in one write transaction, it proves the current
head against trust and the stored right edge of the log against that head (never extend a ledger this client
cannot trust), upgrades a format v1 file first, appends, and after the commit proves what it wrote the way
any reader would. Loaded on the first write only: a read-only open never imports this module.

append runs inside that write transaction, after those checks. The key index is loaded along the paths of
the keys being written and checked against the signed index root before it is used (MapUpdate.prefetch), so
revision numbers come from the signed index, not from rows anyone could edit.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from notary.errors import InputError, ProofError, RollbackError
from notary.ledger.base import TreeHead, WriteReceipt
from notary.ledger.embedded import _codec as codec
from notary.ledger.embedded import _map, _reads
from notary.ledger.embedded import _store as store
from notary.ledger.embedded._tree import Frontier, ProofPlan, assemble

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from notary.ledger.embedded._keyfile import LedgerKey
    from notary.ledger.embedded._upgrade import Upgrader
    from notary.ledger.embedded._view import Snapshots, View


class Written(NamedTuple):
    tx: int
    time_us: int
    keys: tuple[str, ...]
    leaves: tuple[tuple[int, bytes], ...]  # (leaf index, leaf hash)
    tree_size: int
    root: bytes
    map_root: bytes
    signature: bytes


class Writer:
    def __init__(self, snapshots: Snapshots, key: LedgerKey, upgrader: Upgrader) -> None:
        self.snapshots, self.key, self.upgrader = snapshots, key, upgrader
        self.file, self.verifier, self.keeper = snapshots.file, snapshots.verifier, snapshots.keeper
        self.path = self.file.path

    def write(self, kvs: Mapping[str, bytes]) -> WriteReceipt:
        return self.write_all([codec.check_kvs(kvs)], prove_each=True)[0]

    def write_batch(self, txs: Sequence[Mapping[str, bytes]]) -> list[WriteReceipt]:
        if not isinstance(txs, Sequence) or isinstance(txs, (str, bytes)):
            raise InputError(f"write_batch takes a list of transactions, got {type(txs).__name__}")
        checked = [codec.check_kvs(kvs) for kvs in txs]
        return self.write_all(checked, prove_each=False) if checked else []

    def write_all(self, txs: list[list[tuple[str, bytes]]], *, prove_each: bool) -> list[WriteReceipt]:
        """Append txs (each checked and sorted by codec.check_kvs) as consecutive transactions, then prove
        them: prove_each, every leaf and its key index entry; else that the log written is in the head."""
        signer = self.key.private()
        with self.keeper.locked():
            trusted = self.keeper.load()
            with self.file.transaction(write=True) as conn:
                if not store.is_v2(conn):
                    trusted = self.upgrader.upgrade_in_place(conn, trusted, signer)
                before = self.snapshots.verified_head(conn, trusted)  # never extend a ledger we cannot trust
                plan = ProofPlan()
                ids = plan.frontier(before.tree_size)
                nodes = store.fetch_nodes(conn, plan.ids)
                frontier = Frontier(before.tree_size, assemble([[i] for i in ids], nodes))
                if frontier.root() != before.root:
                    raise ProofError(f"stored tree of ledger {self.path} does not match its signed head")
                written = append(conn, txs, frontier, before, signer)
            # Committed. Now prove it the way any reader would, against whatever head is current.
            last = written[-1]
            with self.snapshots.open(trusted) as view:
                if view.head.tree_size < last.tree_size:
                    raise RollbackError(f"ledger {self.path} lost the transaction just written to it")
                if prove_each:
                    self.prove_written(view, written)
                else:
                    tail = view.consistency(last.tree_size)
                    self.verifier.check_extension(last.tree_size, last.root, view.head, tail)
                    if view.head.tx == last.tx and view.head.map_root != last.map_root:
                        raise ProofError(f"ledger {self.path} does not hold the key index just written")
                view.done()
        ledger_id = self.verifier.ledger_id
        return [
            WriteReceipt(tx=w.tx, time=codec.from_time_us(w.time_us), keys=w.keys,
                         head=TreeHead(ledger_id, w.tree_size, w.root, w.tx, codec.from_time_us(w.time_us),
                                       w.signature, w.map_root))
            for w in written
        ]

    def prove_written(self, view: View, written: list[Written]) -> None:
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
