"""The published RFC 6962/9162 proof vectors (transparency-dev/merkle): every happy path accepted, every
corrupted variant (bit flips, wrong sizes, swapped or truncated roots, garbage around the path) refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from notary import merkle
from notary.errors import ProofError

# transparency-dev/merkle testdata, Apache-2.0: source, commit and license in tests/vectors/merkle/
VECTORS = Path(__file__).resolve().parent / "vectors" / "merkle"


def _cases(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _id(path: Path) -> str:
    return str(path.relative_to(VECTORS))


INCLUSION = _cases("inclusion")
CONSISTENCY = _cases("consistency")


def test_vector_corpus_is_present() -> None:
    assert len(INCLUSION) >= 80, f"expected the inclusion vectors under {VECTORS}"
    assert len(CONSISTENCY) >= 80, f"expected the consistency vectors under {VECTORS}"
    assert any(not json.loads(p.read_text())["wantErr"] for p in INCLUSION)
    assert any(not json.loads(p.read_text())["wantErr"] for p in CONSISTENCY)


@pytest.mark.parametrize("path", INCLUSION, ids=_id)
def test_inclusion_vector_is_accepted_exactly_when_valid(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (
        _b64(case["leafHash"]),
        case["leafIdx"],
        case["treeSize"],
        [_b64(p) for p in case["proof"] or []],
        _b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(ProofError) as info:
            merkle.verify_inclusion(*args)
        assert "\n" not in str(info.value)
    else:
        assert merkle.verify_inclusion(*args) is None


@pytest.mark.parametrize("path", CONSISTENCY, ids=_id)
def test_consistency_vector_is_accepted_exactly_when_valid(path: Path) -> None:
    case = json.loads(path.read_text())
    args = (
        case["size1"],
        case["size2"],
        _b64(case["root1"]),
        _b64(case["root2"]),
        [_b64(p) for p in case["proof"] or []],
    )
    if case["wantErr"]:
        with pytest.raises(ProofError) as info:
            merkle.verify_consistency(*args)
        assert "\n" not in str(info.value)
    else:
        assert merkle.verify_consistency(*args) is None


# The 8-leaf reference tree of RFC 6962's reference implementation, which the vectors' happy paths use.
REFERENCE_LEAVES = [
    b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57", bytes(range(0x60, 0x70)),
]


def test_reference_tree_roots_match_published_values() -> None:
    hashes = [merkle.leaf_hash(d) for d in REFERENCE_LEAVES]
    assert merkle.root(hashes[:1]).hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert merkle.root(hashes).hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert merkle.root([]) == merkle.EMPTY_ROOT


def _happy(paths: list[Path]) -> list[dict]:
    cases = [json.loads(p.read_text()) for p in paths]
    return [c for c in cases if not c["wantErr"] and c.get("treeSize", c.get("size2", 0)) > 1]


def test_our_proof_generation_reproduces_every_happy_vector() -> None:
    """Generation and verification must agree with the outside world, not just with each other."""
    hashes = [merkle.leaf_hash(d) for d in REFERENCE_LEAVES]
    inclusion, consistency = _happy(INCLUSION), _happy(CONSISTENCY)
    assert inclusion and consistency
    for case in inclusion:
        n, index = case["treeSize"], case["leafIdx"]
        assert _b64(case["root"]) == merkle.root(hashes[:n])
        assert _b64(case["leafHash"]) == hashes[index]
        assert [_b64(p) for p in case["proof"]] == merkle.inclusion_proof(hashes[:n], index)
    for case in consistency:
        n = case["size2"]
        assert _b64(case["root2"]) == merkle.root(hashes[:n])
        assert _b64(case["root1"]) == merkle.root(hashes[: case["size1"]])
        assert [_b64(p) for p in case["proof"]] == merkle.consistency_proof(hashes[:n], case["size1"])
