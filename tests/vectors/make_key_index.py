"""Generate tests/vectors/key_index.json once (python -m tests.vectors.make_key_index). The vectors pin the key
index's byte format: a change to hashing or proof layout breaks test_key_index_vectors, on purpose."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from notary.ledger.embedded import _map


def _value(rng: random.Random) -> _map.MapValue:
    return _map.MapValue(rng.randrange(1, 50), rng.randrange(0, 1 << 40), hashlib.sha256(rng.randbytes(8)).digest())


def main() -> None:
    rng = random.Random(9162)
    cases = []
    for name, keys in (("empty", []), ("one key", ["subject/sha256:aa/sha256:bb"]),
                       ("two keys", ["job/github/1", "job/gitlab/1"]),
                       ("sixty-four keys", [f"artifact/sha256:{i:064x}" for i in range(64)])):
        entries = {k: _value(rng) for k in keys}
        items = sorted((_map.key_hash(k), v.encode()) for k, v in entries.items())
        nodes: dict[int, _map.Node] = {}
        root = _map.build(items, nodes.__setitem__)
        probes = keys[:3] + ["absent/key", "job/github/2"]
        proofs = []
        for key in probes:
            ids = _map.proof_ids(_map.key_hash(key), 0, _map.DEPTH + 1)
            proof = _map.prove(_map.key_hash(key), {i: nodes.get(i) for i in ids})
            assert proof is not None
            proofs.append({"key": key, "key_hash": _map.key_hash(key).hex(), "present": key in entries,
                           **proof.to_json()})
        cases.append({
            "name": name,
            "entries": [{"key": k, "revision": v.revision, "leaf_index": v.leaf_index, "leaf_hash": v.leaf_hash.hex()}
                        for k, v in entries.items()],
            "root": root.hex(),
            "proofs": proofs,
        })
    out = {"description": "notary embedded ledger key index (docs/proofs.md, 'The key index'): roots and proofs",
           "cases": cases}
    (Path(__file__).parent / "key_index.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
