"""`notary audit recheck` over a real gate's decision log: n images notarized on an embedded ledger, each
admitted by a resident gate (its decision log written as in production), then every admission decided again
with the same policy as of the head. The baseline of the same run is the gate's own decisions over the same
images: the ratio says what reading the log and cutting each history as of a point add."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from notary import keys
from notary.audit.recheck import recheck
from notary.config import load_config
from notary.gate.decision import gate_for
from notary.gate.decision_log import read_decisions, rotated_files
from notary.gate.policy import load_policy
from notary.ledger import open_ledger
from notary.notarize import notarize
from notary.sources.base import Subject

APP = "registry.example/team/app"


def bench(work: Path, n: int = 1000) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    key = keys.generate_private_key()
    keys.write_key_pair(work / "ci.key", key, force=True)
    url = (work / "ledger.db").resolve().as_uri()
    ledger = open_ledger(url, state_dir=work / "ci-state", create=True)
    digests = ["sha256:" + os.urandom(32).hex() for _ in range(n)]
    try:
        for at in range(0, n, 100):
            for d in digests[at:at + 100]:
                notarize(ledger, [Subject(d, f"{APP}:{d[7:15]}", "oci-manifest", names=(APP,))], key,
                         {"system": "local", "jobId": d[7:19]})
    finally:
        ledger.close()
    config_path = work / "notary.toml"
    config_path.write_text(f'ledger = "{url}"\nstate_dir = "{work / "gate-state"}"\n[policy]\nfail = "closed"\n'
                           f'decision_log = "{work / "decisions.jsonl"}"\n'
                           '[[policy.trust]]\nimages = ["*"]\nkeys = ["ci.key.pub"]\n')
    config = load_config(str(config_path))
    gate = gate_for(config, url, front_end="webhook")
    try:
        started = time.perf_counter()
        for d in digests:
            assert gate.check(f"{APP}@{d}", (d,)).allowed
        gate_s = time.perf_counter() - started
    finally:
        gate.close()
    policy = load_policy(config)
    reader = open_ledger(url, state_dir=work / "auditor-state", create=False)
    try:
        started = time.perf_counter()
        read = read_decisions(rotated_files(work / "decisions.jsonl"), max_lines=10 * n)
        head = reader.info().head
        result = recheck(reader, policy, read.decisions, as_of_tx=head.tx, as_of_time=head.time)  # type: ignore[arg-type]
        recheck_s = time.perf_counter() - started
    finally:
        reader.close()
    assert sum(1 for a in result.admitted if a.now is not None and a.now.allowed) == n
    return {"admissions": n, "recheck_per_s": round(n / recheck_s), "gate_decisions_per_s": round(n / gate_s),
            "recheck_vs_gate": round(gate_s / recheck_s, 2)}
