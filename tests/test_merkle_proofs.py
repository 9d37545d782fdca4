"""Property tests of proof generation and verification: every index and size pair of small trees, random
positions in a 100k-leaf ledger, and tampered proofs, using both the in-memory generator and the ledger's
own stored-subtree proofs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from notary import merkle
from notary.errors import ProofError
from notary.ledger.embedded import EmbeddedLedger
from notary.ledger.trust import TrustStore

SMALL = 64
LARGE = 100_000


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(b"leaf %d" % i) for i in range(n)]


def _flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8 % len(b)] ^= 1 << (bit % 8)
    return bytes(b)


def _assert_inclusion_refused(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> None:
    for k in range(len(path)):
        bad = path[:k] + [_flip(path[k], 7 * k + 3)] + path[k + 1 :]
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaf, index, size, bad, root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(_flip(leaf, 0), index, size, path, root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(leaf, index, size, path, _flip(root, 255))
    if path:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaf, index, size, path[:-1], root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(leaf, index, size, [*path, root], root)


def _assert_consistency_refused(m: int, n: int, r1: bytes, r2: bytes, path: list[bytes]) -> None:
    for k in range(len(path)):
        bad = path[:k] + [_flip(path[k], 5 * k + 1)] + path[k + 1 :]
        with pytest.raises(ProofError):
            merkle.verify_consistency(m, n, r1, r2, bad)
    with pytest.raises(ProofError):
        merkle.verify_consistency(m, n, _flip(r1, 9), r2, path)
    with pytest.raises(ProofError):
        merkle.verify_consistency(m, n, r1, _flip(r2, 9), path)
    if m < n:
        with pytest.raises(ProofError):
            merkle.verify_consistency(n, m, r2, r1, path)


def test_every_inclusion_proof_in_trees_up_to_64_leaves() -> None:
    leaves = _leaves(SMALL)
    for n in range(1, SMALL + 1):
        root = merkle.root(leaves[:n])
        for i in range(n):
            path = merkle.inclusion_proof(leaves[:n], i)
            assert merkle.verify_inclusion(leaves[i], i, n, path, root) is None
            _assert_inclusion_refused(leaves[i], i, n, path, root)
            for j in {i - 1, i + 1} & set(range(n)):
                with pytest.raises(ProofError):
                    merkle.verify_inclusion(leaves[i], j, n, path, root)


def test_every_consistency_proof_between_trees_up_to_64_leaves() -> None:
    leaves = _leaves(SMALL)
    roots = [merkle.root(leaves[:n]) for n in range(SMALL + 1)]
    for n in range(1, SMALL + 1):
        for m in range(1, n + 1):
            path = merkle.consistency_proof(leaves[:n], m)
            assert merkle.verify_consistency(m, n, roots[m], roots[n], path) is None
            _assert_consistency_refused(m, n, roots[m], roots[n], path)


def test_consistency_from_the_empty_tree_is_refused_as_meaningless() -> None:
    leaves = _leaves(3)
    with pytest.raises(ProofError, match="empty tree"):
        merkle.verify_consistency(0, 3, merkle.EMPTY_ROOT, merkle.root(leaves), [])


@pytest.fixture(scope="module")
def small_ledger(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedLedger:
    """64 one-entry transactions: a signed head at every size 1..64."""
    base = tmp_path_factory.mktemp("small-ledger")
    ledger = EmbeddedLedger.open((base / "l.db").as_uri(), trust=TrustStore(base / "state"), create=True)
    ledger.write_batch([{f"leaf/{i:03d}": b"leaf %d" % i} for i in range(SMALL)])
    return ledger


def test_ledger_proofs_match_the_in_memory_generator_for_every_size(small_ledger: EmbeddedLedger) -> None:
    leaves = [small_ledger.stored_leaf_hash(i) for i in range(SMALL)]
    for i, leaf in enumerate(leaves):
        entry = small_ledger.get(f"leaf/{i:03d}")
        assert entry is not None and entry.proof["leaf_hash"] == leaf.hex()
    for n in range(1, SMALL + 1):
        root = small_ledger.tree_root(n)
        assert root == merkle.root(leaves[:n])
        for i in range(n):
            path = small_ledger.inclusion_proof(i, n)
            assert path == merkle.inclusion_proof(leaves[:n], i)
            merkle.verify_inclusion(leaves[i], i, n, path, root)
        for m in range(1, n + 1):
            path = small_ledger.consistency_proof(m, n)
            assert path == merkle.consistency_proof(leaves[:n], m)
            merkle.verify_consistency(m, n, small_ledger.tree_root(m), root, path)
    assert small_ledger.tree_root(SMALL) == small_ledger.info().head.root


@pytest.fixture(scope="module")
def large_ledger(tmp_path_factory: pytest.TempPathFactory) -> EmbeddedLedger:
    base = tmp_path_factory.mktemp("large-ledger")
    ledger = EmbeddedLedger.open((base / "l.db").as_uri(), trust=TrustStore(base / "state"), create=True)
    for start in range(0, LARGE, 25_000):
        ledger.write_batch([{f"k/{j:06d}": b"%d" % j for j in range(s, s + 1000)}
                            for s in range(start, start + 25_000, 1000)])
    return ledger


@pytest.mark.slow
def test_random_proofs_in_a_100k_leaf_ledger(large_ledger: EmbeddedLedger) -> None:
    rng = random.Random(6962)
    assert large_ledger.info().head.tree_size == LARGE
    for _ in range(150):
        n = rng.choice([LARGE, rng.randrange(1, LARGE + 1), 1 << rng.randrange(1, 17)])
        i = rng.randrange(n)
        m = rng.randrange(1, n + 1)
        root, old_root = large_ledger.tree_root(n), large_ledger.tree_root(m)
        leaf = large_ledger.stored_leaf_hash(i)
        path = large_ledger.inclusion_proof(i, n)
        assert len(path) <= 17
        merkle.verify_inclusion(leaf, i, n, path, root)
        _assert_inclusion_refused(leaf, i, n, path, root)
        cpath = large_ledger.consistency_proof(m, n)
        merkle.verify_consistency(m, n, old_root, root, cpath)
        _assert_consistency_refused(m, n, old_root, root, cpath)


@pytest.mark.slow
def test_large_ledger_agrees_with_an_independent_recomputation(large_ledger: EmbeddedLedger) -> None:
    """Stored subtrees against a from-scratch root over leaf hashes recomputed from the entries themselves."""
    leaves = [merkle.leaf_hash(bytes.fromhex(large_ledger.get(f"k/{j:06d}").proof["leaf_data"]))  # type: ignore[union-attr]
              for j in range(0, 4096)]
    assert merkle.root(leaves) == large_ledger.tree_root(4096)
    assert merkle.root(leaves[:3000]) == large_ledger.tree_root(3000)
    rng = random.Random(9162)
    for _ in range(5):
        i = rng.randrange(3000)
        assert large_ledger.inclusion_proof(i, 3000) == merkle.inclusion_proof(leaves[:3000], i)
        m = rng.randrange(1, 3000)
        assert large_ledger.consistency_proof(m, 3000) == merkle.consistency_proof(leaves[:3000], m)


def test_tampered_proof_material_from_the_ledger_is_refused(small_ledger: EmbeddedLedger, tmp_path: Path) -> None:
    root = small_ledger.tree_root(SMALL)
    path = small_ledger.inclusion_proof(37, SMALL)
    leaf = small_ledger.stored_leaf_hash(37)
    with pytest.raises(ProofError, match="inclusion proof for leaf 37"):
        merkle.verify_inclusion(leaf, 37, SMALL, [path[0], _flip(path[1], 100), *path[2:]], root)
    with pytest.raises(ProofError, match="audit path has"):
        merkle.verify_inclusion(leaf, 37, SMALL, path[1:], root)
    with pytest.raises(ProofError, match="outside the tree"):
        merkle.verify_inclusion(leaf, SMALL, SMALL, path, root)
    with pytest.raises(ProofError, match="32-byte"):
        merkle.verify_inclusion(leaf, 37, SMALL, [path[0][:31], *path[1:]], root)


@pytest.mark.parametrize("bad", [True, 1.0, "1", None])
def test_sizes_of_the_wrong_type_are_refused_as_proof_errors(bad: object) -> None:
    leaves = _leaves(2)
    root = merkle.root(leaves)
    with pytest.raises(ProofError, match="must be an integer"):
        merkle.verify_inclusion(leaves[0], bad, 2, [leaves[1]], root)  # type: ignore[arg-type]
    with pytest.raises(ProofError, match="must be an integer"):
        merkle.verify_consistency(bad, 2, leaves[0], root, [leaves[1]])  # type: ignore[arg-type]


def test_batched_inclusion_proofs_are_the_rfc_9162_paths() -> None:
    """merkle.inclusion_proofs builds the tree level by level (odd node promoted); every path it reads off must
    be the one RFC 9162's recursive definition gives, for every index of every size up to 70."""
    import hashlib

    from notary import merkle as m

    for n in range(1, 71):
        leaves = [m.leaf_hash(hashlib.sha256(bytes([n, i])).digest()) for i in range(n)]
        paths = m.inclusion_proofs(leaves, list(range(n)))
        for i in range(n):
            assert paths[i] == m.inclusion_proof(leaves, i), (n, i)
            m.verify_inclusion(leaves[i], i, n, paths[i], m.root(leaves))
