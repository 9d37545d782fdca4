"""What notary's verification and trust bookkeeping cost on top of immudb-py's own verified writes.

`bench_notarize_vs_raw` writes the same bytes three ways against a real server and returns rates; it prints
nothing (callers such as `make bench` format the numbers). It writes under a fresh random key prefix and keeps
its trusted state in a temporary directory, so it never touches the user's trust store. `bench_mirror` measures
the verified mirror: catch-up from tx 1, re-hashing the file at open, and a resident gate's decision with it.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from notary.ledger import open_immudb
from notary.ledger.immudb._conn import parse_url
from notary.ledger.trust import TrustStore

VALUE_SIZE = 1200  # about one DSSE envelope of a notarization record


def bench_notarize_vs_raw(url: str, password: str, n: int, *, value_size: int = VALUE_SIZE) -> dict[str, Any]:
    """Rates (per second) for n single-key writes via ImmudbLedger and via a raw immudb-py verifiedSet loop,
    plus n keys in one transaction and n one-key transactions through write_batch.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    from immudb import ImmudbClient

    target = parse_url(url)
    value = os.urandom(value_size // 2).hex().encode()[:value_size]
    prefix = f"bench/{os.urandom(6).hex()}"
    results: dict[str, Any] = {"n": n, "value_bytes": len(value), "url": target.url}

    raw = ImmudbClient(target.address, timeout=30)
    try:
        raw.login(target.user, password, database=target.database.encode())
        started = time.perf_counter()
        for i in range(n):
            raw.verifiedSet(f"{prefix}/raw/{i}".encode(), value)
        results["raw_verified_set_per_s"] = n / (time.perf_counter() - started)
    finally:
        raw.shutdown()

    with tempfile.TemporaryDirectory(prefix="notary-bench-") as state:
        ledger = open_immudb(url, trust=TrustStore(state), password=password)
        try:
            started = time.perf_counter()
            for i in range(n):
                ledger.write({f"{prefix}/ledger/{i}": value})
            results["ledger_write_per_s"] = n / (time.perf_counter() - started)

            started = time.perf_counter()
            for i in range(n):
                ledger.write({f"{prefix}/notarize/{i}/subject": value, f"{prefix}/notarize/{i}/job": b"[]",
                              f"{prefix}/notarize/{i}/artifact": b"[]"})
            results["ledger_notarization_3_keys_per_s"] = n / (time.perf_counter() - started)

            started = time.perf_counter()
            ledger.write({f"{prefix}/one-tx/{i}": value for i in range(n)})
            results["ledger_one_tx_keys_per_s"] = n / (time.perf_counter() - started)

            started = time.perf_counter()
            ledger.write_batch([{f"{prefix}/batch/{i}": value} for i in range(n)])
            results["ledger_write_batch_tx_per_s"] = n / (time.perf_counter() - started)

            started = time.perf_counter()
            for i in range(n):
                ledger.get(f"{prefix}/ledger/{i}")
            results["ledger_verified_get_per_s"] = n / (time.perf_counter() - started)
        finally:
            ledger.close()
    results["ledger_vs_raw"] = results["ledger_write_per_s"] / results["raw_verified_set_per_s"]
    return results


def bench_mirror(url: str, password: str, n_tx: int = 2000, keys_per_tx: int = 3, *, runs: int = 201,
                 value_size: int = VALUE_SIZE) -> dict[str, Any]:
    """Write n_tx transactions of keys_per_tx keys (plain setAll, as fast as the server takes them), then time a
    fresh mirror catching up from tx 1 (every transaction fetched, re-hashed and chained), re-opening it (the
    file re-hashed in full, then warm: sealed, nothing re-hashed), an incremental catch-up of one transaction, and a resident gate's decision p50 with
    and without the mirror (the webhook's default on immudb: mirror on)."""
    import statistics

    from immudb import ImmudbClient

    target = parse_url(url)
    value = os.urandom(value_size // 2).hex().encode()[:value_size]
    prefix = f"bench/{os.urandom(6).hex()}"
    raw = ImmudbClient(target.address, timeout=30)
    try:
        raw.login(target.user, password, database=target.database.encode())
        for i in range(n_tx):
            raw.setAll({f"{prefix}/{i}/{k}".encode(): value for k in range(keys_per_tx)})
    finally:
        raw.shutdown()
    out: dict[str, Any] = {"transactions_written": n_tx, "keys_per_tx": keys_per_tx}
    with tempfile.TemporaryDirectory(prefix="notary-bench-") as state:
        from notary.ledger.immudb._mirrored import MirroredLedger

        ledger = open_immudb(url, trust=TrustStore(state), password=password, mirror=True)
        try:
            assert isinstance(ledger, MirroredLedger)
            added, seconds = ledger.last_catch_up
            out["catch_up_transactions"] = added
            out["catch_up_tx_per_s"] = round(added / seconds)
            out["mirror_bytes_per_tx"] = round(ledger.mirror.size_bytes() / max(1, ledger.mirror.last_tx))
        finally:
            ledger.close()
        out["reopen_full_rehash_s"] = _reopen_s(url, state, password, unseal=True)  # login + every row re-hashed
        out["reopen_s"] = _reopen_s(url, state, password, unseal=False)  # login + the seal: nothing re-hashed
        ledger = open_immudb(url, trust=TrustStore(state), password=password, mirror=True)
        try:
            ledger.write({f"{prefix}/one-more": value})
            started = time.perf_counter()
            ledger.get(f"{prefix}/0/0")
            out["read_after_one_new_tx_ms"] = round((time.perf_counter() - started) * 1000, 2)
            samples = []
            for _ in range(runs):
                started = time.perf_counter()
                ledger.get(f"{prefix}/0/0")
                samples.append(time.perf_counter() - started)
            out["mirrored_get_p50_ms"] = round(statistics.median(samples) * 1000, 2)
        finally:
            ledger.close()
        saved = os.environ.get("NOTARY_IMMUDB_PASSWORD")
        os.environ["NOTARY_IMMUDB_PASSWORD"] = password  # the gate opens its ledger as a server does: from the env
        try:
            out["gate_decision_p50_ms"] = {
                "mirror": _gate_decision_p50(url, Path(state) / "gate-mirror", runs, mirror=True),
                "no_mirror": _gate_decision_p50(url, Path(state) / "gate-plain", runs, mirror=False),
                "goal_ms": 30,
            }
        finally:
            if saved is None:
                os.environ.pop("NOTARY_IMMUDB_PASSWORD", None)
            else:
                os.environ["NOTARY_IMMUDB_PASSWORD"] = saved
    return out


def _reopen_s(url: str, state: str, password: str, *, unseal: bool) -> float:
    """Seconds to open the mirrored ledger again; unseal: without the seal, so the whole file is re-hashed."""
    from notary.ledger.immudb._seal import discard
    from notary.ledger.immudb.mirror import mirror_path

    store = TrustStore(state)
    if unseal:
        probe = open_immudb(url, trust=store, password=password)
        discard(mirror_path(store, probe.ledger_id))
        probe.close()
    started = time.perf_counter()
    ledger = open_immudb(url, trust=store, password=password, mirror=True)
    seconds = time.perf_counter() - started
    ledger.close()
    return round(seconds, 3)


def _gate_decision_p50(url: str, work: Path, runs: int, *, mirror: bool) -> float:
    """p50 of Gate.check on a notarized file subject, through gate_for as `notary gate webhook` builds it."""
    import statistics

    from notary import keys
    from notary.config import Config
    from notary.gate.decision import gate_for
    from notary.notarize import notarize
    from notary.sources import identify

    work.mkdir(parents=True)
    signer = keys.generate_private_key()
    pub = keys.write_key_pair(work / "ci.key", signer)
    artifact = work / "app.bin"
    artifact.write_bytes(os.urandom(64))
    subjects = identify(str(artifact))
    writer = open_immudb(url, trust=TrustStore(work / "ci-state"))
    try:
        notarize(writer, subjects, signer, {"system": "local", "jobId": "bench"})
    finally:
        writer.close()
    config = Config(None, {"state_dir": str(work / "gate-state"), "immudb": {"mirror": mirror},
                           "policy": {"require_name_match": False,  # a file: no repository to bind
                                      "trust": [{"images": ["*"], "keys": [str(pub)]}]}})
    gate = gate_for(config, url, front_end="webhook")
    try:
        samples = []
        for _ in range(runs + 1):
            started = time.perf_counter()
            decision = gate.check("bench.example/app:1", [subjects[0].digest])
            samples.append(time.perf_counter() - started)
            if not decision.allowed:
                raise RuntimeError(f"the bench gate refused its own subject: {decision.reason}")
    finally:
        gate.close()
    return round(statistics.median(samples[1:]) * 1000, 2)  # the first decision opens the ledger
