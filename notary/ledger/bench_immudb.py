"""What notary's verification and trust bookkeeping cost on top of immudb-py's own verified writes.

`bench_notarize_vs_raw` writes the same bytes three ways against a real server and returns rates; it prints
nothing (callers such as `make bench` format the numbers). It writes under a fresh random key prefix and keeps
its trusted state in a temporary directory, so it never touches the user's trust store.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from notary.ledger.immudb import ImmudbLedger
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
        ledger = ImmudbLedger.open(url, trust=TrustStore(state), password=password)
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
