"""`audit diff` over a real embedded ledger of signed records (the issue's goal: at least 5,000 records/s).

Builds n notarizations the way `notary notarize` writes them (the signed record under subject/<d>/<signer>, the
signer index, the job finder), ten records per transaction, then times the proven read of the whole range
(Ledger.changes + notary.audit.diff: every leaf proven, every envelope's signature checked) and a monitor's
first round over it (notary.audit.follow: the same, per transaction, plus the key index rebuilt and compared). The baseline of
the same run: the same rows read straight from SQLite and their envelopes opened, with no ledger proof, so the
ratio is what the completeness proof costs.
"""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from notary import keys, records
from notary.audit.diff import diff
from notary.ledger.embedded import EmbeddedLedger
from notary.ledger.trust import TrustStore
from notary.notarize import signer_index_value

_PER_TX = 10


def bench_diff(work: Path, n: int = 100_000) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    signer = keys.generate_private_key()
    signer_id = keys.key_id(signer)
    with tempfile.TemporaryDirectory(prefix="notary-bench-state-") as state:
        path = work / "audit.db"
        path.unlink(missing_ok=True)
        ledger = EmbeddedLedger.open(path.resolve().as_uri(), trust=TrustStore(state), create=True)
        started = time.perf_counter()
        for first in range(0, n, _PER_TX * 100):
            txs = []
            for t in range(first, min(n, first + _PER_TX * 100), _PER_TX):
                kvs: dict[str, bytes] = {}
                for i in range(t, min(n, t + _PER_TX)):
                    digest = "sha256:" + hashlib.sha256(str(i).encode()).hexdigest()
                    record = records.new_record("notarization", {"digest": digest, "name": f"app-{i}"}, signer,
                                                ci={"system": "local", "jobId": str(i)})
                    kvs[records.subject_key(digest, signer_id)] = records.sign_record(record, signer)
                    kvs[records.signer_index_key(digest)] = signer_index_value(signer_id)
                    kvs[records.job_key("local", str(i))] = b'{"subjects":["' + digest.encode() + b'"]}'
                txs.append(kvs)
            ledger.write_batch(txs)
        build_s = time.perf_counter() - started
        head = ledger.info().head

        started = time.perf_counter()
        found = diff(ledger.changes(0, head.tx), 0, head.tx, head)
        proven_s = time.perf_counter() - started
        assert len(found.changes) == n and not found.findings

        from notary.audit.follow import one_round

        started = time.perf_counter()
        events = sum(1 for _ in one_round(ledger, 0))  # a monitor's first round: the key index rebuilt too
        follow_s = time.perf_counter() - started
        assert events == head.tx + 1
        ledger.close()

        started = time.perf_counter()
        with sqlite3.connect(path) as db:
            opened = sum(1 for (value,) in db.execute("SELECT value FROM entries WHERE key LIKE 'subject/%'")
                         if records.open_envelope(value))
        baseline_s = time.perf_counter() - started
        assert opened == n
    return {
        "records": n, "entries": found.entries, "transactions": head.tx, "build_s": round(build_s, 1),
        "diff_records_per_s": round(n / proven_s), "follow_records_per_s": round(n / follow_s),
        "goal_records_per_s": 5000,
        "baseline_open_only_records_per_s": round(n / baseline_s),
        "proof_cost_ratio": round(proven_s / baseline_s, 2),
    }
