"""RFC 9162 (Certificate Transparency v2) Merkle tree hashing and proof verification.

Pure functions over bytes: no I/O, no state, so the same code checks proofs from the embedded ledger, from a
JSON proof an auditor saved, and from the published test vectors. Verifiers compute first and compare last,
check every precondition before hashing, and raise ProofError with a one-line reason; they return None on
success, so a caller can never ignore a boolean by accident.

Hashes: leaf_hash(d) = SHA-256(0x00 || d), node_hash(l, r) = SHA-256(0x01 || l || r), the empty tree's root
is SHA-256(""). Proof paths are lists of 32-byte hashes ordered from the leaf (or the smaller tree) upwards,
exactly as RFC 9162 sections 2.1.3.1 and 2.1.4.1 produce them.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256

from notary.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = sha256(b"").digest()

_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf; the 0x00 prefix keeps a leaf from ever passing for an inner node."""
    return sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(_NODE + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """k in RFC 9162: the largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of a list of leaf *hashes* (not leaf data), iteratively via a compact range."""
    stack: list[tuple[int, bytes]] = []  # (size, hash) of complete subtrees, left to right
    for h in leaves:
        size = 1
        while stack and stack[-1][0] == size:
            left = stack.pop()[1]
            h = node_hash(left, h)
            size *= 2
        stack.append((size, h))
    return fold_right([h for _, h in stack])


def fold_right(subtrees: Sequence[bytes]) -> bytes:
    """Root of a range given its complete subtrees, largest (leftmost) first: H(s1, H(s2, ... sn))."""
    if not subtrees:
        return EMPTY_ROOT
    acc = subtrees[-1]
    for h in reversed(subtrees[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) over an in-memory list of leaf hashes (RFC 9162 2.1.3.1). For tests and tools."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ValueError(f"index {index} outside tree of size {n}")
    return [_range_root(leaves, lo, hi) for lo, hi in inclusion_ranges(index, n)]


def inclusion_proofs(leaves: Sequence[bytes], indices: Sequence[int]) -> dict[int, list[bytes]]:
    """PATH(i, D[n]) for each i in indices from one pass over the leaves: the tree is built level by level (an
    odd node promoted unchanged, which is RFC 9162's left-balanced shape), then each path is read off it, so a
    bundle of many proofs over a large tree costs O(n) hashes once, not once per proof."""
    n = len(leaves)
    bad = [i for i in indices if not 0 <= i < n]
    if bad:
        raise ValueError(f"index {bad[0]} outside tree of size {n}")
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        prev = levels[-1]
        nxt = [node_hash(prev[i], prev[i + 1]) for i in range(0, len(prev) - 1, 2)]
        if len(prev) % 2:
            nxt.append(prev[-1])
        levels.append(nxt)
    out: dict[int, list[bytes]] = {}
    for index in indices:
        path, i = [], index
        for level in levels[:-1]:
            if i ^ 1 < len(level):
                path.append(level[i ^ 1])
            i >>= 1
        out[index] = path
    return out


def consistency_proof(leaves: Sequence[bytes], size1: int) -> list[bytes]:
    """PROOF(size1, D[n]) over an in-memory list of leaf hashes (RFC 9162 2.1.4.1), 0 < size1 <= n."""
    n = len(leaves)
    if not 0 < size1 <= n:
        raise ValueError(f"size1 {size1} outside 1..{n}")
    return [_range_root(leaves, lo, hi) for lo, hi in consistency_ranges(size1, n)]


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges [lo, hi) whose roots form PATH(index, D[size]), leaf end first.

    A storage backend turns each range into stored complete subtrees (see subtrees()), so a proof costs
    O(log n) reads and never a whole-tree walk.
    """
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + largest_power_of_two_below(hi - lo)
        if index < mid:
            out.append((mid, hi))
            hi = mid
        else:
            out.append((lo, mid))
            lo = mid
    out.reverse()
    return out


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The leaf ranges whose roots form PROOF(size1, D[size2]) (RFC 9162 SUBPROOF), smallest tree end first."""
    out: list[tuple[int, int]] = []
    if size1 == size2:
        return out
    lo, hi, m, whole = 0, size2, size1, True
    while True:
        if m == hi - lo:
            if not whole:
                out.append((lo, hi))
            break
        mid = lo + largest_power_of_two_below(hi - lo)
        if m <= mid - lo:
            out.append((mid, hi))
            hi = mid
        else:
            out.append((lo, mid))
            m -= mid - lo
            lo = mid
            whole = False
    out.reverse()
    return out


def subtrees(lo: int, hi: int) -> list[tuple[int, int]]:
    """Split [lo, hi) into aligned complete subtrees as (level, index), largest first.

    For every range that appears in an RFC 9162 proof this is exactly the tree's own shape, so the range's
    root is fold_right() of these subtrees' hashes.
    """
    out: list[tuple[int, int]] = []
    while lo < hi:
        size = lo & -lo if lo else 1 << (hi - lo).bit_length()
        while lo + size > hi:
            size >>= 1
        level = size.bit_length() - 1
        out.append((level, lo >> level))
        lo += size
    return out


def _range_root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    return root(leaves[lo:hi])


def _check_size(value: int, what: str) -> None:
    if type(value) is not int:
        raise ProofError(f"{what} must be an integer, got {type(value).__name__}")


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != HASH_SIZE:
        got = len(value) if isinstance(value, (bytes, bytearray)) else type(value).__name__
        raise ProofError(f"{what} must be a {HASH_SIZE}-byte hash, got {got}")


def root_from_inclusion(leaf_hash: bytes, index: int, tree_size: int, path: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 2.1.3.2 steps 1-5); raises ProofError if malformed."""
    _check_size(index, "leaf index")
    _check_size(tree_size, "tree size")
    if tree_size <= 0:
        raise ProofError(f"inclusion proof in an empty tree (size {tree_size}) proves nothing")
    if not 0 <= index < tree_size:
        raise ProofError(f"leaf index {index} is outside the tree of size {tree_size}")
    _check_hash(leaf_hash, "leaf hash")
    for i, p in enumerate(path):
        _check_hash(p, f"audit path element {i}")
    expected = len(inclusion_ranges(index, tree_size))
    if len(path) != expected:
        raise ProofError(
            f"audit path has {len(path)} elements, a leaf at {index} in size {tree_size} needs {expected}"
        )
    fn, sn, r = index, tree_size - 1, bytes(leaf_hash)
    for p in path:
        if sn == 0:
            raise ProofError("audit path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("audit path is shorter than the tree is deep")
    return r


def verify_inclusion(leaf_hash: bytes, index: int, tree_size: int, path: Sequence[bytes], root: bytes) -> None:
    """Prove that leaf_hash sits at index in the tree of tree_size leaves whose root is root."""
    _check_hash(root, "root hash")
    computed = root_from_inclusion(leaf_hash, index, tree_size, path)
    if computed != root:
        raise ProofError(
            f"inclusion proof for leaf {index} of {tree_size} yields root {computed.hex()[:16]}..., "
            f"expected {bytes(root).hex()[:16]}..."
        )


def roots_from_consistency(size1: int, size2: int, root1: bytes, path: Sequence[bytes]) -> tuple[bytes, bytes]:
    """(root1', root2') implied by a consistency proof (RFC 9162 2.1.4.2 steps 2-7), 0 < size1 < size2."""
    for i, p in enumerate(path):
        _check_hash(p, f"consistency path element {i}")
    expected = len(consistency_ranges(size1, size2))
    if len(path) != expected:
        raise ProofError(
            f"consistency path has {len(path)} elements, sizes {size1} -> {size2} need {expected}"
        )
    nodes = list(path)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: the old root is itself a node of the new tree
        nodes.insert(0, bytes(root1))
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            raise ProofError("consistency path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency path is shorter than the tree is deep")
    return fr, sr


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, path: Sequence[bytes]) -> None:
    """Prove that the tree (size2, root2) extends the tree (size1, root1) without rewriting any leaf.

    size1 == 0 is refused: every tree extends the empty tree, so such a "proof" would prove nothing and a
    caller relying on it has a bug (a client that trusts nothing yet must say so explicitly).
    """
    _check_size(size1, "size1")
    _check_size(size2, "size2")
    if size1 < 0 or size2 < 0:
        raise ProofError(f"negative tree size ({size1}, {size2})")
    if size1 > size2:
        raise ProofError(f"tree shrank from size {size1} to {size2}: not an extension")
    if size1 == 0:
        raise ProofError("consistency with the empty tree (size 0) proves nothing")
    if size1 == size2:
        if path:
            raise ProofError(f"sizes are equal ({size1}) but the consistency path is not empty")
        if bytes(root1) != bytes(root2):
            raise ProofError(f"two different roots for the same tree size {size1}: the ledger forked")
        return
    _check_hash(root1, "old root hash")
    _check_hash(root2, "new root hash")
    if not path:
        raise ProofError(f"empty consistency path for sizes {size1} -> {size2}")
    fr, sr = roots_from_consistency(size1, size2, root1, path)
    if fr != root1:
        raise ProofError(
            f"consistency proof {size1} -> {size2} does not reproduce the old root "
            f"{bytes(root1).hex()[:16]}...: history was rewritten"
        )
    if sr != root2:
        raise ProofError(
            f"consistency proof {size1} -> {size2} yields new root {sr.hex()[:16]}..., "
            f"expected {bytes(root2).hex()[:16]}..."
        )
