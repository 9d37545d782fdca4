"""notary's key index of an immudb ledger: the map immudb does not hash, built from the verified mirror.

immudb proves a value included in a transaction, never that it is its key's newest version or that a key is
absent: its own index is a B-tree that no proof covers. A client holding the verified mirror knows both, but an
auditor without the ledger needs a root to check such answers against. This is the embedded ledger's key index
(notary/ledger/embedded/_map: a sparse Merkle tree of depth 256 over SHA-256 of the key, its root independent of
insertion order) over every indexed plain key of the immudb database up to transaction N, each pointing at its
newest version:

    value = u64 revision || u64 transaction id || immudb's entry digest of that version (32 bytes)

The entry digest (immudb's TxEntryDigest over key, KV metadata and value hash) is the leaf of its transaction's
entries tree, so the map names exactly one entry that an inclusion proof ties to the Alh chain. The root travels
as the `notary-key-index` extension line of an immudb checkpoint, signed with the log root by the operator key
(notary/audit/immudb_checkpoints.py): anyone with a mirror recomputes it (`notary audit checkpoint`), and an
evidence bundle proves histories complete and keys absent against it (notary/audit/immudb_evidence.py).

Revisions count as immudb counts them: indexed versions only (an entry marked non-indexable is no version).
A whole build from the mirror's rows runs at about 45,000 keys/s here; key_index_store keeps the map beside the
mirror and catches it up per transaction, so checkpoints and exports pay for what is new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from itertools import groupby

from notary.ledger.embedded import _map
from notary.ledger.immudb._replay import entry_digest, md_flags
from notary.ledger.immudb.mirror import Mirror


class _AllNodes(dict[_map.NodeId, _map.Node]):
    """Every non-empty node of a fully built map: a node it lacks is empty, not unknown (what _map.prove
    reads as 'load deeper levels')."""

    def __contains__(self, nid: object) -> bool:
        return True

    def __getitem__(self, nid: _map.NodeId) -> _map.Node | None:  # type: ignore[override]
        return self.get(nid)


class KeyIndex:
    """The map over an immudb ledger's first `size` transactions, held whole in memory to prove keys from."""

    def __init__(self, size: int, items: list[tuple[bytes, bytes]],
                 emit: Callable[[_map.NodeId, _map.Node], None] | None = None) -> None:
        self.size = size
        self.keys = len(items)
        self._nodes = _AllNodes()
        keep = self._nodes.__setitem__

        def both(nid: _map.NodeId, node: _map.Node) -> None:
            keep(nid, node)
            assert emit is not None
            emit(nid, node)

        self.root = _map.build(items, keep if emit is None else both)

    def prove(self, key: str) -> _map.MapProof:
        """The path of key: to its newest version, or to where it would be (absent)."""
        proof = _map.prove(_map.key_hash(key), self._nodes)
        assert proof is not None  # every node is loaded
        return proof


def value_of(revision: int, tx: int, digest: bytes) -> _map.MapValue:
    return _map.MapValue(revision, tx, digest)


def build(mirror: Mirror, size: int, emit: Callable[[_map.NodeId, _map.Node], None] | None = None) -> KeyIndex:
    """The key index as of transaction `size`, from rows the mirror re-hashed and chained to trust; emit gets
    every non-empty node (what a store keeps)."""
    items: list[tuple[bytes, bytes]] = []
    for raw, group in groupby(mirror.plain_entries(size), key=lambda r: r[0]):
        revision, newest = 0, None
        for row in group:
            if not md_flags(row[2])[2]:
                revision, newest = revision + 1, row
        if newest is not None:
            _, tx, md, hvalue, version = newest
            digest = entry_digest(version, (raw, md, hvalue, 0))  # the length is no part of the digest
            items.append((hashlib.sha256(raw[1:]).digest(), value_of(revision, tx, digest).encode()))
    items.sort()
    return KeyIndex(size, items, emit)
