"""Benchmarks of the embedded ledger, for `python -m benchmarks` (which prints; these only measure).

Each function builds real ledgers with real SQLite files and its own trusted-state directory, so a run never
touches the user's ledgers or trust.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from notary import merkle
from notary.ledger.embedded import EmbeddedLedger, _map
from notary.ledger.trust import TrustStore

_VALUE = b"x" * 600  # about the size of one DSSE envelope of a notarization record


def _open(path: Path, state: Path) -> EmbeddedLedger:
    return EmbeddedLedger.open(path.resolve().as_uri(), trust=TrustStore(state), create=True)


def bench_append(path: str | os.PathLike[str], n: int = 100_000, batch: int = 1000) -> float:
    """Records per second appended through write_batch, one record per transaction (the worst case: every
    transaction gets its own signed head), `batch` transactions per call, each call verified."""
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="notary-bench-state-") as state, _open(path, Path(state)) as ledger:
        start = time.perf_counter()
        for first in range(0, n, batch):
            ledger.write_batch(
                [{f"bench/append/{i:09d}": _VALUE} for i in range(first, min(n, first + batch))]
            )
        return n / (time.perf_counter() - start)


def build_ledger(path: Path, state: Path, n: int, *, tx_size: int = 1000, txs_per_batch: int = 100) -> float:
    """Fill a ledger up to n entries as fast as the write path allows; returns the seconds it took."""
    with _open(path, state) as ledger:
        have = ledger.info().entries or 0
        start = time.perf_counter()
        while have < n:
            txs: list[dict[str, bytes]] = []
            while have < n and len(txs) < txs_per_batch:
                count = min(tx_size, n - have)
                txs.append({f"bench/proof/{i:09d}": _VALUE[:100] for i in range(have, have + count)})
                have += count
            ledger.write_batch(txs)
        return time.perf_counter() - start


def bench_proof_verify(path_or_tmp: str | os.PathLike[str] | None = None, n: int = 1_000_000,
                       samples: int = 2000) -> dict[str, Any]:
    """Cost of proving one entry at n entries.

    Returns seconds per inclusion+consistency verification (pure merkle checks of proofs read from the
    ledger: the number to compare with the 1 ms goal), seconds per full verified `get` of a random key (SQLite
    reads, head signature, leaf recomputation, inclusion; trust already current), and the build time.
    """
    with tempfile.TemporaryDirectory(prefix="notary-bench-") as tmp:
        path = Path(path_or_tmp) if path_or_tmp else Path(tmp) / "ledger.db"
        if path.is_dir():
            path = path / "ledger.db"
        state = Path(tmp) / "state"
        build_s = build_ledger(path, state, n)
        rng = random.Random(9162)
        with _open(path, state) as ledger:
            size = ledger.info().entries or 0
            root = ledger.tree_root(size)
            cases = []
            for _ in range(min(samples, 200)):
                index = rng.randrange(size)
                old = rng.randrange(1, size)
                path_i = ledger.inclusion_proof(index, size)
                path_c = ledger.consistency_proof(old, size)
                cases.append((index, path_i, old, ledger.tree_root(old), path_c))
            leaves = {index: ledger.stored_leaf_hash(index) for index, *_ in cases}
            timings = []
            for k in range(samples):
                index, path_i, old, old_root, path_c = cases[k % len(cases)]
                leaf = leaves[index]
                t0 = time.perf_counter()
                merkle.verify_inclusion(leaf, index, size, path_i, root)
                merkle.verify_consistency(old, size, old_root, root, path_c)
                timings.append(time.perf_counter() - t0)
            keys = [f"bench/proof/{rng.randrange(size):09d}" for _ in range(200)]
            index_root = ledger.info().head.map_root
            proofs = [(k, e.proof["key_index"]) for k in keys if (e := ledger.get(k)) is not None]
            map_timings, sizes = [], []
            for k in range(samples):
                key, kp = proofs[k % len(proofs)]
                proof = _map.MapProof.from_json(kp)
                t0 = time.perf_counter()
                assert index_root is not None
                _map.verify(index_root, key, proof)
                map_timings.append(time.perf_counter() - t0)
                sizes.append(len(proof.siblings) * 32 + (0 if proof.leaf is None else 32 + _map.VALUE_SIZE))
            gets = []
            for key in keys:
                t0 = time.perf_counter()
                ledger.get(key)
                gets.append(time.perf_counter() - t0)
        return {
            "entries": size,
            "build_seconds": build_s,
            "seconds_per_verification": statistics.median(timings),
            "seconds_per_index_verification": statistics.median(map_timings),
            "index_proof_bytes": statistics.mean(sizes),
            "index_proof_bytes_max": max(sizes),
            "seconds_per_get": statistics.median(gets),
        }
