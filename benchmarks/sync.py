"""`notary sync` throughput, an edge's embedded ledger to a real immudb, against the same immudb's own raw
commit rate (one `setAll` per source transaction, no proofs: what a sync without packing could at best do)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from notary import keys
from notary import sync as syncing
from notary.ledger import open_ledger
from notary.notarize import notarize
from notary.sources.base import Subject


def bench(work: Path, url: str, password: str, records: int = 2000) -> dict[str, Any]:
    """Records/s copied (each a one-subject notarization, its own source transaction), first run and a rerun
    that finds nothing to copy; the baseline is raw immudb-py setAll of the same transactions, one each."""
    work.mkdir(parents=True, exist_ok=True)
    source = open_ledger((work / "edge.db").as_uri(), state_dir=work / "edge-state", create=True)
    key = keys.generate_private_key()
    for i in range(records):
        notarize(source, [Subject("sha256:" + os.urandom(32).hex(), f"registry.example/app:{i}", "oci-manifest")],
                 key, {"system": "local", "jobId": f"bench-{i}"})
    os.environ.setdefault("NOTARY_IMMUDB_PASSWORD", password)
    out: dict[str, Any] = {"records": records}
    try:
        destination = open_ledger(url, state_dir=work / "centre-state")
        try:
            started = time.perf_counter()
            done = syncing.sync(source, destination)
            out["sync_records_per_s"] = round(done.transactions / (time.perf_counter() - started))
            out["destination_transactions"] = done.written
            started = time.perf_counter()
            syncing.sync(source, destination)
            out["in_sync_rerun_ms"] = round((time.perf_counter() - started) * 1000, 1)
        finally:
            destination.close()
        out["raw_set_all_tx_per_s"] = round(_raw(source, url, password, min(records, 300)))
    finally:
        source.close()
    out["sync_vs_raw_commits"] = round(out["sync_records_per_s"] / out["raw_set_all_tx_per_s"], 2)
    out["goal_records_per_s"] = 1000
    return out


def _raw(source: Any, url: str, password: str, n: int) -> float:
    from immudb import ImmudbClient

    from notary.ledger.immudb._conn import parse_url

    target = parse_url(url)
    client = ImmudbClient(target.address, timeout=30)
    client.login(target.user, password, database=target.database.encode())
    prefix = os.urandom(4).hex()
    txs = []
    for tx in range(1, n + 1):
        txs.append({f"raw-{prefix}/{e.key}".encode(): e.value for e in source.changes(tx - 1, tx)})
    try:
        started = time.perf_counter()
        for kvs in txs:
            client.setAll(kvs)
        return n / (time.perf_counter() - started)
    finally:
        client.shutdown()
