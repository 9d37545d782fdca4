"""immudb's proofs, checked by notary's own code on plain bytes: no immudb-py, no grpc, no I/O.

The gateway client (gateway.py) reads immudb through its HTTP/JSON gateway, so nothing of immudb-py is loaded and
every answer must be proven here. These are the checks of immudb v1.10.0's embedded/store verification:

- an entry is in its transaction: an inclusion proof in the transaction's entries tree (htree: leaves
  sha256(0x00 || digest), nodes sha256(0x01 || left || right)) from the entry's digest to the header's eH;
- a transaction is consistent with a trusted state (the *dual proof*): both headers hash to the Alh values they
  are checked against; the source is in the target's binary-linking tree (an append-only hash tree, ahtree,
  whose leaves are sha256(0x00 || Alh)), that tree extends the source's tree (consistency), its last leaf is the
  Alh the proof names, the linear chain Alh(n) = sha256(u64 n || Alh(n-1) || innerHash(n)) runs from there to
  the target, and the *linear advance proof* binds the chain between the source's tree and the source (or the
  target's tree) to the target's tree leaf by leaf.

Every function returns a bool or raises ProofError; none trusts a length or index it was given without checking
it against the proof's own structure. `tests/test_immudb_gateway.py` checks them against immudb-py's verdicts on a
live server's proofs, and against altered ones.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import NamedTuple

from notary.ledger.immudb._replay import TxRow

_sha = hashlib.sha256
_LEAF, _NODE = b"\x00", b"\x01"
_U64 = struct.Struct(">Q").pack


class LinearProof(NamedTuple):
    source_tx: int
    target_tx: int
    terms: Sequence[bytes]


class LinearAdvanceProof(NamedTuple):
    terms: Sequence[bytes]  # Alh of start+1, then the inner hashes of start+2 .. end
    inclusions: Sequence[Sequence[bytes]]  # an ahtree inclusion proof for each of start+1 .. end-1


class DualProof(NamedTuple):
    source: TxRow  # headers with their Alh computed from their own fields (TxRow.alh)
    target: TxRow
    inclusion: Sequence[bytes]
    consistency: Sequence[bytes]
    target_bl_tx_alh: bytes
    last_inclusion: Sequence[bytes]
    linear: LinearProof
    advance: LinearAdvanceProof


class EntryInclusion(NamedTuple):
    leaf: int
    width: int
    terms: Sequence[bytes]


def leaf_for(alh: bytes) -> bytes:
    """The binary-linking tree's leaf for a transaction's Alh."""
    return _sha(_LEAF + alh).digest()


def entry_included(proof: EntryInclusion, digest: bytes, root: bytes) -> bool:
    """The entry digest is leaf `proof.leaf` of a `proof.width`-entry transaction whose entries tree is root."""
    if not 0 <= proof.leaf < proof.width:
        return False
    node = _sha(_LEAF + digest).digest()
    i, r = proof.leaf, proof.width - 1
    for term in proof.terms:
        node = _sha(_NODE + (node + term if i % 2 == 0 and i != r else term + node)).digest()
        i //= 2
        r //= 2
    return i == r and node == root


def _ah_inclusion_root(proof: Sequence[bytes], i: int, j: int, leaf: bytes) -> bytes:
    i1, j1 = i - 1, j - 1
    node = leaf
    for term in proof:
        node = _sha(_NODE + (node + term if i1 % 2 == 0 and i1 != j1 else term + node)).digest()
        i1 >>= 1
        j1 >>= 1
    return node


def ah_included(proof: Sequence[bytes], i: int, j: int, leaf: bytes, root: bytes) -> bool:
    """Leaf i (1-based) is in the ahtree of j leaves whose root is root."""
    if i > j or i == 0 or (i < j and not proof):
        return False
    return _ah_inclusion_root(proof, i, j, leaf) == root


def ah_consistent(proof: Sequence[bytes], i: int, j: int, i_root: bytes, j_root: bytes) -> bool:
    """The ahtree of j leaves (root j_root) extends the one of i leaves (root i_root)."""
    if i > j or i == 0 or (i < j and not proof):
        return False
    if i == j and not proof:
        return i_root == j_root
    fn, sn = i - 1, j - 1
    while fn % 2 == 1:
        fn >>= 1
        sn >>= 1
    ci = cj = proof[0]
    for term in proof[1:]:
        if fn % 2 == 1 or fn == sn:
            ci = _sha(_NODE + term + ci).digest()
            cj = _sha(_NODE + term + cj).digest()
            while fn % 2 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            cj = _sha(_NODE + cj + term).digest()
        fn >>= 1
        sn >>= 1
    return ci == i_root and cj == j_root


def ah_last_included(proof: Sequence[bytes], i: int, leaf: bytes, root: bytes) -> bool:
    """leaf is the last (i-th) leaf of the ahtree whose root is root."""
    if i == 0:
        return False
    node = leaf
    for term in proof:
        node = _sha(_NODE + term + node).digest()
    return node == root


def _advance(alh: bytes, tx: int, inner: bytes) -> bytes:
    return _sha(_U64(tx) + alh + inner).digest()


def linear_holds(proof: LinearProof, source_tx: int, target_tx: int, source_alh: bytes, target_alh: bytes) -> bool:
    """The linear chain runs from (source_tx, source_alh) to (target_tx, target_alh) through proof's terms."""
    if proof.source_tx != source_tx or proof.target_tx != target_tx:
        return False
    if source_tx == 0 or source_tx > target_tx or not proof.terms or proof.terms[0] != source_alh:
        return False
    if len(proof.terms) != target_tx - source_tx + 1:
        return False
    alh = proof.terms[0]
    for n, inner in enumerate(proof.terms[1:], start=1):
        alh = _advance(alh, source_tx + n, inner)
    return alh == target_alh


def linear_advance_holds(proof: LinearAdvanceProof, start: int, end: int, end_alh: bytes, root: bytes,
                         tree_size: int) -> bool:
    """Transactions start+1 .. end-1 are leaves of the tree (root, tree_size), chained linearly up to end_alh."""
    if end < start:
        return False
    if end <= start + 1:
        return True  # nothing between the old tree and the end that the other parts of the proof leave open
    if len(proof.terms) != end - start or len(proof.inclusions) != end - start - 1:
        return False
    alh = proof.terms[0]  # Alh of tx start+1
    for tx in range(start + 1, end):
        if not ah_included(proof.inclusions[tx - start - 1], tx, tree_size, leaf_for(alh), root):
            return False
        alh = _advance(alh, tx + 1, proof.terms[tx - start])
    return alh == end_alh


def dual_proof_holds(proof: DualProof, source_tx: int, target_tx: int, source_alh: bytes, target_alh: bytes) -> bool:
    """Transaction target_tx (Alh target_alh) extends source_tx (Alh source_alh): immudb's dual proof, with the
    linear advance proof."""
    src, tgt = proof.source, proof.target
    if src.id != source_tx or tgt.id != target_tx or src.id == 0 or src.id > tgt.id:
        return False
    if src.alh != source_alh or tgt.alh != target_alh:
        return False
    if source_tx < tgt.bl_tx and not ah_included(proof.inclusion, source_tx, tgt.bl_tx, leaf_for(source_alh),
                                                 tgt.bl_root):
        return False
    if src.bl_tx > 0 and not ah_consistent(proof.consistency, src.bl_tx, tgt.bl_tx, src.bl_root, tgt.bl_root):
        return False
    if tgt.bl_tx > 0 and not ah_last_included(proof.last_inclusion, tgt.bl_tx, leaf_for(proof.target_bl_tx_alh),
                                              tgt.bl_root):
        return False
    if source_tx < tgt.bl_tx:
        return (linear_holds(proof.linear, tgt.bl_tx, target_tx, proof.target_bl_tx_alh, target_alh)
                and linear_advance_holds(proof.advance, src.bl_tx, source_tx, source_alh, tgt.bl_root, tgt.bl_tx))
    return (linear_holds(proof.linear, source_tx, target_tx, source_alh, target_alh)
            and linear_advance_holds(proof.advance, src.bl_tx, tgt.bl_tx, proof.target_bl_tx_alh, tgt.bl_root,
                                     tgt.bl_tx))
