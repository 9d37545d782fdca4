"""notary next to a measured peer: cosign, on the same registry image, in the same run (`make bench`).

Why cosign: it is what a team would otherwise use to sign an image in CI and check it before running it. Both
tools sign with a key file and check with the public key; neither uploads to a transparency log here
(`cosign sign --tlog-upload=false`, `cosign verify --insecure-ignore-tlog`). The work differs, and the ratios
should be read with that in mind:

- `notary notarize registry://...` fetches and hashes every blob of the image (manifest, config, each layer)
  and appends a signed record to a verifiable ledger (proofs checked); `cosign sign` signs the manifest digest
  and pushes a signature manifest to the registry, without reading the layers.
- `notary verify` proves the record is in the ledger and the ledger extends the state this client trusted;
  `cosign verify` fetches the signature manifest from the registry and checks the signature.

Every number is a whole-process wall time (best and median of N runs), as a CI step or a script pays it. The
registry (Debian's docker-registry on loopback) and the image (busybox, built with umoci, pushed with skopeo)
come from the test suite's helpers, so the bench measures the same real components the tests use. cosign is
built by scripts/cosign-build.sh (pinned, from the Go module proxy, cached), never by CI.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def cosign_binary() -> Path:
    """COSIGN_BIN, else what scripts/cosign-build.sh provides (it builds the pinned version once)."""
    if os.environ.get("COSIGN_BIN"):
        return Path(os.environ["COSIGN_BIN"])
    proc = subprocess.run([str(REPO / "scripts" / "cosign-build.sh")], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/cosign-build.sh failed: {proc.stderr.strip()[-300:]}")
    return Path(proc.stdout.strip().splitlines()[-1]) / "cosign"


def _wall(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} {cmd[1] if len(cmd) > 1 else ''} exited {proc.returncode}: "
                           f"{proc.stderr.strip()[-400:]}")
    return elapsed


def _series(fn: Callable[[int], float], runs: int) -> dict[str, float]:
    times = [fn(i) for i in range(runs)]
    return {"best_ms": round(min(times) * 1000, 1), "p50_ms": round(statistics.median(times) * 1000, 1)}


def _ratio(a: dict[str, float], b: dict[str, float]) -> float:
    return round(a["p50_ms"] / b["p50_ms"], 2)


def bench(work: Path, runs: int = 7) -> dict[str, Any]:
    """notary notarize/verify and cosign sign/verify on one image in a loopback registry; ratios notary/cosign."""
    from tests.support.images import build_busybox_layout  # `python -m benchmarks` runs from the repo root
    from tests.support.registry import start_registry

    cosign = cosign_binary()
    work.mkdir(parents=True, exist_ok=True)
    layout = build_busybox_layout(work / "layout", tag="v1", marker="bench")
    registry = start_registry()
    try:
        digest = registry.push(layout, "v1", "bench/app:v1")
        ref = f"{registry}/bench/app@{digest}"
        env = {**os.environ, "COSIGN_PASSWORD": "", "COSIGN_YES": "true", "HOME": str(work / "home"),
               "NOTARY_LEDGER": (work / "ledger.db").as_uri(), "NOTARY_STATE_DIR": str(work / "state"),
               "SIGSTORE_NO_CACHE": "true", "TUF_ROOT": str(work / "tuf")}
        for name in ("NOTARY_SIGNING_KEY", "NOTARY_CONFIG", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL"):
            env.pop(name, None)
        notary = [sys.executable, "-m", "notary.cli.main"]
        subprocess.run([*notary, "key", "generate", "--out", str(work / "ci.key")], env=env, check=True,
                       capture_output=True)
        subprocess.run([str(cosign), "generate-key-pair"], env=env, cwd=work, check=True, capture_output=True)
        http = ["--allow-insecure-registry", "--allow-http-registry"]
        cosign_sign = [str(cosign), "sign", "--key", "cosign.key", "--tlog-upload=false", *http, ref]
        cosign_verify = [str(cosign), "verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", *http, ref]
        subject = f"registry://{ref}"
        out: dict[str, Any] = {"image": ref, "runs": runs, "cosign": str(cosign)}
        out["notary_notarize"] = _series(lambda i: _wall(
            [*notary, "notarize", subject, "--insecure", "--key", "ci.key", "--job-id", f"bench-{i}"], env, work), runs)
        out["cosign_sign"] = _series(lambda i: _wall(cosign_sign, env, work), runs)
        out["notary_verify"] = _series(lambda i: _wall(
            [*notary, "verify", subject, "--insecure", "--key", "ci.key.pub"], env, work), runs)
        out["cosign_verify"] = _series(lambda i: _wall(cosign_verify, env, work), runs)
        out["python_startup"] = _series(lambda i: _wall([sys.executable, "-c", "pass"], env, work), runs)
        out["notarize_vs_cosign_sign"] = _ratio(out["notary_notarize"], out["cosign_sign"])
        out["verify_vs_cosign_verify"] = _ratio(out["notary_verify"], out["cosign_verify"])
        out["note"] = ("ratios are notary p50 / cosign p50 (below 1: notary is faster); notary notarize also "
                       "hashes every layer and appends to a proven ledger, cosign sign reads only the manifest")
        return out
    finally:
        registry.stop()
