"""The key index against vectors generated once (tests/vectors/make_key_index.py) and kept: its hashing and
proof format are a public format (docs/proofs.md), so any change must be deliberate.

Each proof is checked twice: by notary's verifier, and by the few lines of hashlib an auditor would write from
the documentation alone. Roots are rebuilt both from scratch and by incremental updates in random orders."""

from __future__ import annotations

import hashlib
import json
import random
import struct
from pathlib import Path

import pytest

from notary.errors import ProofError
from notary.ledger.embedded import _map

VECTORS = json.loads((Path(__file__).parent / "vectors" / "key_index.json").read_text())["cases"]


def auditor_check(root_hex: str, key: str, proof: dict) -> tuple[int, int, str] | None:
    """docs/proofs.md, "Checking a key index proof": (revision, leaf index, leaf hash) or None if absent."""
    kh = hashlib.sha256(key.encode("ascii")).digest()
    assert proof["key_hash"] == kh.hex(), "a proof for another key"
    siblings = [bytes.fromhex(s) for s in proof["siblings"]]
    assert len(siblings) <= 256 and all(len(s) == 32 for s in siblings), "more siblings than the tree is deep"
    found = None
    if proof["leaf"] is None:
        h = bytes(32)
    else:
        other, value = bytes.fromhex(proof["leaf"]["key_hash"]), bytes.fromhex(proof["leaf"]["value"])
        if other == kh:
            revision, leaf_index = struct.unpack(">QQ", value[:16])
            found = (revision, leaf_index, value[16:].hex())
        else:  # another key: it must share this key's first len(siblings) bits
            depth = len(siblings)
            assert int.from_bytes(other, "big") >> (256 - depth) == int.from_bytes(kh, "big") >> (256 - depth)
        h = hashlib.sha256(b"\x02" + other + value).digest()
    for depth in range(len(siblings) - 1, -1, -1):
        right = (int.from_bytes(kh, "big") >> (255 - depth)) & 1
        pair = siblings[depth] + h if right else h + siblings[depth]
        h = hashlib.sha256(b"\x03" + pair).digest()
    assert h.hex() == root_hex
    return found


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_key_index_vectors(case: dict) -> None:
    entries = {e["key"]: _map.MapValue(e["revision"], e["leaf_index"], bytes.fromhex(e["leaf_hash"]))
               for e in case["entries"]}
    items = sorted((_map.key_hash(k), v.encode()) for k, v in entries.items())
    assert _map.build(items).hex() == case["root"]
    for seed in range(3):  # the root depends on the set, never on the order keys were written in
        order = list(entries)
        random.Random(seed).shuffle(order)
        stored: dict[int, _map.Node] = {}
        root = _map.EMPTY
        for key in order:
            update = _map.MapUpdate(root, lambda ids, s=stored: {i: s[i] for i in ids if i in s})
            update.prefetch([_map.key_hash(key)])
            update.set(_map.key_hash(key), entries[key])
            root = update.root()
            stored.update(update.changes())
        assert root.hex() == case["root"]
    for p in case["proofs"]:
        proof = _map.MapProof.from_json(p)
        value = _map.verify(bytes.fromhex(case["root"]), p["key"], proof)
        assert (value is not None) == p["present"]
        if value is not None:
            assert value == entries[p["key"]]
        audited = auditor_check(case["root"], p["key"], p)
        assert audited == (None if value is None else (value.revision, value.leaf_index, value.leaf_hash.hex()))


def _a_proof() -> tuple[bytes, str, dict]:
    case = VECTORS[-1]
    p = next(p for p in case["proofs"] if p["present"] and p["siblings"])
    return bytes.fromhex(case["root"]), p["key"], p


@pytest.mark.parametrize("attack", ["flip sibling", "drop sibling", "extra sibling", "other value",
                                    "claim absent", "off-path leaf", "swap key"])
def test_forged_key_index_proof_is_refused(attack: str) -> None:
    root, key, p = _a_proof()
    p = json.loads(json.dumps(p))
    if attack == "flip sibling":
        p["siblings"][0] = ("00" if p["siblings"][0][:2] != "00" else "11") + p["siblings"][0][2:]
    elif attack == "drop sibling":
        p["siblings"].pop()
    elif attack == "extra sibling":
        p["siblings"].append("00" * 32)
    elif attack == "other value":  # an older revision of the same key
        value = bytes.fromhex(p["leaf"]["value"])
        p["leaf"]["value"] = (struct.pack(">Q", struct.unpack(">Q", value[:8])[0] - 1) + value[8:]).hex()
    elif attack == "claim absent":
        p["leaf"] = None
    elif attack == "off-path leaf":  # a real leaf of another key, presented for this key's path
        other = next(q for q in VECTORS[-1]["proofs"] if q["present"] and q["key"] != key)
        p["leaf"] = other["leaf"]
    elif attack == "swap key":
        key = "absent/key"
    with pytest.raises(ProofError):
        _map.verify(root, key, _map.MapProof.from_json(p))


def test_malformed_key_index_proof_is_a_proof_error() -> None:
    root, key, _ = _a_proof()
    for bad in ({"siblings": "zz"}, {"siblings": ["zz"], "leaf": None}, {"siblings": [], "leaf": {"key_hash": 1}},
                {"siblings": ["00" * 31], "leaf": None}, {"siblings": ["00" * 32] * 257, "leaf": None}):
        with pytest.raises(ProofError):
            _map.verify(root, key, _map.MapProof.from_json(bad))


def test_the_worked_example_in_docs_checks_a_real_proof(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/proofs.md's hashlib-only check, run as written against a proof from a real ledger, so the
    documentation cannot drift from the format."""
    import re

    from notary.ledger.embedded import EmbeddedLedger
    from notary.ledger.trust import TrustStore

    url = (tmp_path / "l.db").as_uri()
    with EmbeddedLedger.open(url, trust=TrustStore(tmp_path / "w")) as writer:
        for i in range(5):
            writer.write({f"job/ci/{i}": b"[]"})
        with EmbeddedLedger.open(url, trust=TrustStore(tmp_path / "r")) as reader:
            reader.get("job/ci/0")
            writer.write({"subject/sha256:ab/sha256:cd": b'{"payload":"..."}'})
            writer.write({"job/ci/5": b"[]"})
            proof = reader.get("subject/sha256:ab/sha256:cd").proof  # type: ignore[union-attr]
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    doc = (Path(__file__).parent.parent / "docs" / "proofs.md").read_text()
    check_index = re.search(r"```python\n(import hashlib, struct\ndef check_index.*?)```", doc, re.S)
    example = re.search(r"## Worked example.*?```python\n(.*?)```", doc, re.S)
    assert check_index and example
    monkeypatch.chdir(tmp_path)
    exec(check_index.group(1) + "\n" + example.group(1), {})  # noqa: S102 - the documentation's own code


def test_as_of_reads_check_by_the_document_alone(tmp_path: Path) -> None:
    """docs/proofs.md's rule for reads as of a transaction, checked with the auditor's code only: key_index
    names the newest version (a later one on an older read), next_version is null exactly when the version
    returned is that newest one."""
    from tests.support.local_ledger import open_local

    with open_local(tmp_path) as ledger:
        first = ledger.write({"k": b"v1"}).tx
        second = ledger.write({"k": b"v2"}).tx
        ledger.write({"other": b"x"})
        old = ledger.get("k", at_tx=first)
        current = ledger.get("k", at_tx=second + 1)
    assert old is not None and current is not None
    for entry, revision_returned in ((old, 1), (current, 2)):
        proof = entry.proof
        newest = auditor_check(proof["key_index_root"], "k", proof["key_index"])
        assert newest is not None and newest[0] == 2, "key_index names the newest version, whatever was read"
        assert entry.revision == revision_returned and proof["as_of_tx"] in (first, second + 1)
    assert current.proof["next_version"] is None and current.proof["leaf_index"] == newest[1]
    assert old.proof["next_version"]["leaf_index"] == newest[1]
