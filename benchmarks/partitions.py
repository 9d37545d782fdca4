"""A partitioned ledger against one database on the same immudb server: what routing and the layout checks
cost, and what a lookup that reads every partition costs (docs/partitions.md, docs/capacity.md).

Baseline of the same run: the same notarizations (library `notarize`, one subject each, mirror on) written to one
database. Then three databases as one partitioned ledger: one-subject notarizations (one member transaction
each), nine-subject ones (three member transactions each), a verified read of a subject (one member) and a
job lookup (all three). One server on a 2-core machine, so this measures notary's overhead, not the
scale-out, which comes from members on servers of their own (each then writing at the one-database rate).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from notary import keys, records
from notary.ledger import open_ledger
from notary.lookup import lookup_job
from notary.notarize import notarize
from notary.sources.base import Subject


def _database(address: str, user: str, password: str) -> str:
    from immudb import ImmudbClient

    name = "bench" + os.urandom(6).hex()
    client = ImmudbClient(address, timeout=30)
    try:
        client.login(user, password)
        client.createDatabase(name.encode())
    finally:
        client.shutdown()
    return name


def _subjects(count: int) -> list[Subject]:
    return [Subject("sha256:" + os.urandom(32).hex(), f"registry.example/app:{i}", "oci-manifest")
            for i in range(count)]


def _rate(ledger: Any, key: keys.SigningKey, records_n: int, per_job: int, job: str) -> float:
    started = time.perf_counter()
    for i in range(records_n // per_job):
        notarize(ledger, _subjects(per_job), key, {"system": "local", "jobId": f"{job}-{i}"})
    return records_n / (time.perf_counter() - started)


def bench(work: Path, url: str, password: str, records_n: int = 270) -> dict[str, Any]:
    from notary.ledger.immudb._conn import parse_url

    target = parse_url(url)
    os.environ.setdefault("NOTARY_IMMUDB_PASSWORD", password)
    key = keys.generate_private_key()
    member = f"immudb://{target.user}@{target.address}/"
    out: dict[str, Any] = {"records": records_n}

    single = open_ledger(member + _database(target.address, target.user, password), state_dir=work / "one",
                         mirror=True)
    try:
        out["one_database_records_per_s"] = round(_rate(single, key, records_n, 1, "one"), 1)
        out["one_database_9_subject_records_per_s"] = round(_rate(single, key, records_n, 9, "one9"), 1)
    finally:
        single.close()

    members = [member + _database(target.address, target.user, password) for _ in range(3)]
    ledger = open_ledger("partitioned:" + ",".join(members), state_dir=work / "three", mirror=True)
    try:
        ledger.initialize()  # type: ignore[attr-defined]
        out["partitioned_records_per_s"] = round(_rate(ledger, key, records_n, 1, "p"), 1)
        out["partitioned_9_subject_records_per_s"] = round(_rate(ledger, key, records_n, 9, "p9"), 1)
        digest = _subjects(1)[0].digest
        notarize(ledger, [Subject(digest, "registry.example/app:read", "oci-manifest")], key,
                 {"system": "local", "jobId": "read"})
        started = time.perf_counter()
        for _ in range(100):
            ledger.history(records.signer_index_key(digest))
        out["partitioned_subject_read_ms"] = round((time.perf_counter() - started) * 10, 2)
        started = time.perf_counter()
        for _ in range(100):
            lookup_job(ledger, "p9-0", "local")
        out["partitioned_job_lookup_ms"] = round((time.perf_counter() - started) * 10, 2)
    finally:
        ledger.close()
    out["partitioned_vs_one_database"] = round(out["partitioned_records_per_s"] / out["one_database_records_per_s"], 2)
    out["partitioned_vs_one_database_9_subjects"] = round(
        out["partitioned_9_subject_records_per_s"] / out["one_database_9_subject_records_per_s"], 2)
    return out
