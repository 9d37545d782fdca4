"""What a policy `require` adds to a gate decision (goal: at most 2 ms), against the same gate without it.

Three policies over the same notarized image, one resident gate each (the hook server's and the webhook's
case): no `require` (the baseline of the same run), SLSA provenance with builder and source conditions, and
that plus an SPDX SBOM of 2,000 packages. The first decision is reported apart: it opens each envelope once
(a one-shot hook pays it every time), later ones find the opened statements in the cache.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

DIGEST = "sha256:" + "ab" * 32
CI = {"system": "github", "jobId": "7-1", "runUrl": "https://github.com/team/app/actions/runs/7",
      "commit": "0123456789abcdef0123456789abcdef01234567", "ref": "refs/heads/main", "project": "team/app"}
PROVENANCE = ('[[policy.trust.require]]\ntype = "https://slsa.dev/provenance/v1"\n'
              'builder_id = "https://github.com/actions/runner"\nsource = "https://github.com/team/app"\n')
SBOM = '[[policy.trust.require]]\ntype = "https://spdx.dev/Document"\n'


def _world(work: Path, extra: str) -> Path:
    from benchmarks.gate import gate_world
    from notary import attest, keys
    from notary.ledger import open_ledger
    from notary.sources.base import Subject

    work.mkdir(parents=True)
    config = gate_world(work, [Subject(DIGEST, "registry.example/app:1", "oci-manifest")])
    config.write_text(config.read_text() + extra)
    key = keys.load_private_key(str(work / "ci.key"))
    ledger = open_ledger((work / "ledger.db").as_uri(), state_dir=work / "ci-state")
    try:
        subjects = [("registry.example/app", DIGEST)]
        attest.attest(ledger, subjects, key, attest.SLSA_PROVENANCE, attest.provenance(CI))
        packages = [{"name": f"p{i}", "versionInfo": "1.0", "SPDXID": f"SPDXRef-{i}"} for i in range(2000)]
        attest.attest(ledger, subjects, key, attest.SPDX, {"spdxVersion": "SPDX-2.3", "packages": packages})
    finally:
        ledger.close()
    return config


def run(work: Path, decisions: int = 300) -> dict[str, Any]:
    from notary.config import load_config
    from notary.gate.decision import gate_for

    out: dict[str, Any] = {}
    for label, extra in (("no_require", ""), ("provenance", PROVENANCE), ("provenance_and_sbom", PROVENANCE + SBOM)):
        config = load_config(str(_world(work / label, extra)))
        gate = gate_for(config, config.ledger_url, front_end="bench")
        try:
            started = time.perf_counter()
            assert gate.check("registry.example/app", [DIGEST]).allowed
            first = (time.perf_counter() - started) * 1000
            times = []
            for _ in range(decisions):
                started = time.perf_counter()
                decision = gate.check("registry.example/app", [DIGEST])
                times.append((time.perf_counter() - started) * 1000)
                assert decision.allowed, decision.reason
        finally:
            gate.close()
        out[label] = {"first_decision_ms": round(first, 2), "median_ms": round(statistics.median(times), 3)}
    base = out["no_require"]["median_ms"]
    for label in ("provenance", "provenance_and_sbom"):
        out[label]["added_ms"] = round(out[label]["median_ms"] - base, 3)
        out[label]["ratio"] = round(out[label]["median_ms"] / base, 2)
    out["goal"] = "a require check adds at most 2 ms to a resident gate's decision"
    return out
