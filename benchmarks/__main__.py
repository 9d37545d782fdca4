"""`python -m benchmarks` (or `make bench`): the numbers the issues ask for, measured in one run.

Reports ratios against a baseline measured in the same run on the same machine, not bare timings: a
2-core CI box and a laptop differ, the ratio is what stays meaningful.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MiB = 1024 * 1024


def _write_random_blob(blobs: Path, size: int) -> tuple[str, int]:
    """A pseudo-random blob of size bytes (fast: repeats a 64 MiB random block with a counter)."""
    tmp = blobs / f".tmp-{os.getpid()}-{time.monotonic_ns()}"
    h = hashlib.sha256()
    block = os.urandom(8 * MiB)
    written = 0
    with tmp.open("wb") as fh:
        i = 0
        while written < size:
            chunk = (i.to_bytes(8, "big") + block)[: min(len(block) + 8, size - written)]
            fh.write(chunk)
            h.update(chunk)
            written += len(chunk)
            i += 1
    digest = h.hexdigest()
    tmp.rename(blobs / digest)
    return "sha256:" + digest, written


def build_layout(root: Path, layers: int = 4, layer_mib: int = 160) -> Path:
    """An OCI image layout with `layers` random layers: bytes that must be hashed, nothing compressible."""
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    layer_descs = []
    for _ in range(layers):
        digest, size = _write_random_blob(blobs, layer_mib * MiB)
        layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size})

    def put(obj: dict[str, Any]) -> dict[str, Any]:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        digest = hashlib.sha256(raw).hexdigest()
        (blobs / digest).write_bytes(raw)
        return {"digest": "sha256:" + digest, "size": len(raw)}

    config = put({"architecture": "amd64", "os": "linux",
                  "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in layer_descs]}})
    manifest = put({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                    "layers": layer_descs})
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                 **manifest,
                                                 "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}
    (root / "index.json").write_text(json.dumps(index))
    return root


def _time(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def _best(fn: Callable[[], float], runs: int) -> float:
    return min(fn() for _ in range(runs))


def notary_cmd() -> list[str]:
    return [sys.executable, "-m", "notary.cli.main"]


def bench_notarize(work: Path, layers: int, layer_mib: int, runs: int) -> dict[str, Any]:
    layout = build_layout(work / "layout", layers, layer_mib)
    blobs = sorted(str(p) for p in (layout / "blobs" / "sha256").iterdir())
    total = sum(os.path.getsize(b) for b in blobs)
    env = {**os.environ, "NOTARY_STATE_DIR": str(work / "state"), "NOTARY_LEDGER": (work / "l.db").as_uri()}
    key = work / "bench.key"
    subprocess.run([*notary_cmd(), "key", "generate", "--out", str(key)], check=True, env=env, stdout=subprocess.DEVNULL)
    base = [*notary_cmd(), "notarize", f"oci:{layout}:bench", "--key", str(key), "--create"]
    subprocess.run(["cat", *blobs], check=True, stdout=subprocess.DEVNULL)  # warm the page cache
    openssl = _best(lambda: _time(["openssl", "dgst", "-sha256", *blobs]), runs)
    counter = iter(range(1_000_000))
    parallel = _best(lambda: _time([*base, "--job-id", f"p{next(counter)}"], env), runs)
    serial = _best(lambda: _time([*base, "--job-id", f"s{next(counter)}", "--workers", "1"], env), runs)
    return {
        "bytes": total,
        "layers": layers,
        "openssl_dgst_s": round(openssl, 3),
        "openssl_GBps": round(total / openssl / 1e9, 2),
        "notarize_s": round(parallel, 3),
        "notarize_GBps": round(total / parallel / 1e9, 2),
        "notarize_vs_openssl": round(openssl / parallel, 2),
        "notarize_serial_s": round(serial, 3),
        "parallel_speedup": round(serial / parallel, 2),
    }


def bench_verify_process(work: Path, runs: int, env: dict[str, str] | None = None, goal_ms: int = 80) -> dict[str, Any]:
    """Whole-process `notary verify` (embedded ledger unless env names another), as a runtime hook pays it."""
    work.mkdir(parents=True, exist_ok=True)
    base = env if env is not None else {**os.environ, "NOTARY_LEDGER": (work / "v.db").as_uri()}
    env = {**base, "NOTARY_STATE_DIR": str(work / "vstate")}
    key = work / "v.key"
    subprocess.run([*notary_cmd(), "key", "generate", "--out", str(key)], check=True, env=env, stdout=subprocess.DEVNULL)
    target = work / "artifact.bin"
    target.write_bytes(os.urandom(4096))
    create = ["--create"] if env.get("NOTARY_LEDGER", "").startswith("file:") else []  # embedded: made on first use
    subprocess.run([*notary_cmd(), "notarize", str(target), "--job-id", "v1", "--key", str(key), *create], check=True,
                   env=env, stdout=subprocess.DEVNULL)
    digest = "sha256:" + hashlib.sha256(target.read_bytes()).hexdigest()
    cmd = [shutil.which("notary") or str(Path(sys.executable).parent / "notary"), "verify", digest, "--key", f"{key}.pub"]
    times = sorted(_time(cmd, env) for _ in range(runs))
    python_floor = sorted(_time([sys.executable, "-c", "pass"]) for _ in range(runs))
    return {
        "verify_p50_ms": round(statistics.median(times) * 1000, 1),
        "verify_p90_ms": round(times[int(len(times) * 0.9) - 1] * 1000, 1),
        "python_startup_p50_ms": round(statistics.median(python_floor) * 1000, 1),
        "goal_ms": goal_ms,
    }


def _optional(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a missing part must not hide the other numbers
        return {"error": f"{type(exc).__name__}: {exc}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--layer-mib", type=int, default=160)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--verify-runs", type=int, default=31)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--proof-entries", type=int, default=1_000_000)
    parser.add_argument("--immudb-writes", type=int, default=500)
    parser.add_argument("--cosign-runs", type=int, default=7)
    parser.add_argument("--audit-records", type=int, default=100_000)
    parser.add_argument("--mirror-tx", type=int, default=2000,
                        help="transactions written before the immudb mirror and one-shot verify are measured")
    parser.add_argument("--only", action="append", help="notarize, ledger, verify, immudb, gate, cosign, audit, evidence, pkcs11, awskms, attest")
    args = parser.parse_args(argv)
    only = set(args.only or ["notarize", "ledger", "verify", "immudb", "gate", "cosign", "audit", "evidence", "pkcs11",
                             "awskms", "attest"])
    results: dict[str, Any] = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="notary-bench-") as tmp:
        work = Path(tmp)
        if "notarize" in only:
            results["notarize"] = _optional(lambda: bench_notarize(work, args.layers, args.layer_mib, args.runs))
        if "ledger" in only:
            results["ledger"] = _optional(lambda: _ledger(work, args.records, args.proof_entries))
        if "verify" in only:
            results["verify"] = _optional(lambda: bench_verify_process(work, args.verify_runs))
        if "immudb" in only:
            results["immudb"] = _optional(lambda: _immudb(work, args.verify_runs, args.immudb_writes,
                                                          gate="gate" in only, mirror_tx=args.mirror_tx))
        if "gate" in only:
            results["gate"] = _optional(lambda: _gate(work))
        if "audit" in only:  # audit diff over a real ledger of signed records
            from benchmarks import audit as bench_audit

            results["audit"] = _optional(lambda: bench_audit.bench_diff(work / "audit", args.audit_records))
            from benchmarks import recheck as bench_recheck  # a gate's decision log decided again

            results["audit_recheck"] = _optional(lambda: bench_recheck.bench(work / "recheck"))
        if "evidence" in only:  # what an auditor runs offline: a bundle, a checkpoint with cosignatures
            from benchmarks import evidence as bench_evidence

            results["evidence"] = _optional(lambda: bench_evidence.bench(work / "evidence"))
        if "attest" in only:  # policy `require`: attestations checked in a resident gate, against none
            from benchmarks import attest as bench_attest

            results["attest"] = _optional(lambda: bench_attest.run(work / "attest"))
        if "pkcs11" in only:  # signing inside a SoftHSM2 token against a key file, same run
            from benchmarks import pkcs11 as bench_pkcs11

            results["pkcs11"] = _optional(lambda: bench_pkcs11.bench(work / "pkcs11"))
        if "awskms" in only:  # signing through a KMS API server on loopback against a key file, same run
            from benchmarks import awskms as bench_awskms

            results["awskms"] = _optional(lambda: bench_awskms.bench(work / "awskms"))
        if "cosign" in only:  # the measured peer: cosign sign/verify --key on the same registry image
            from benchmarks import cosign as bench_cosign

            results["cosign"] = _optional(lambda: bench_cosign.bench(work / "cosign", args.cosign_runs))
    print(json.dumps(results, indent=2))
    return 0


def _ledger(work: Path, records: int, proof_entries: int) -> dict[str, Any]:
    from benchmarks import embedded_ledger as bench_local

    rate = bench_local.bench_append(work / "append.db", n=records, batch=1000)
    proof = bench_local.bench_proof_verify(work / "proof", n=proof_entries)
    return {
        "append_records_per_s": round(rate),
        "append_goal_per_s": 5000,
        "proof_entries": proof.get("entries"),
        "proof_build_s": round(proof.get("build_seconds", 0.0), 1),
        "inclusion_plus_consistency_verify_ms": round(proof["seconds_per_verification"] * 1000, 3),
        "key_index_verify_ms": round(proof.get("seconds_per_index_verification", 0.0) * 1000, 3),
        "log_plus_index_verify_ms": round((proof["seconds_per_verification"]
                                           + proof.get("seconds_per_index_verification", 0.0)) * 1000, 3),
        "key_index_proof_bytes": round(proof.get("index_proof_bytes", 0.0)),
        "key_index_proof_bytes_max": proof.get("index_proof_bytes_max"),
        "verified_get_ms": round(proof.get("seconds_per_get", 0.0) * 1000, 3),
        "verify_goal_ms": 1.0,
    }


def _immudb(work: Path, verify_runs: int, writes: int, gate: bool, mirror_tx: int = 2000) -> dict[str, Any]:
    """Against a real immudb: the bench starts its own server (the test suite's launcher) unless
    NOTARY_BENCH_IMMUDB_URL (+ NOTARY_IMMUDB_PASSWORD) names one."""
    from benchmarks import immudb_ledger as bench_immudb

    url = os.environ.get("NOTARY_BENCH_IMMUDB_URL")
    gateway = os.environ.get("NOTARY_BENCH_IMMUDB_GATEWAY")  # immudb's web server, when the URL above is given
    password = os.environ.get("NOTARY_IMMUDB_PASSWORD", "immudb")
    server = None
    if not url:
        from tests.support.immudb import ImmudbServer  # `python -m benchmarks` runs from the repo root

        server = ImmudbServer(work / "immudb-data").start()
        url, password, gateway = server.url, server.password, server.gateway_url
    try:
        out = bench_immudb.bench_notarize_vs_raw(url, password, writes)
        out["mirror"] = _optional(lambda: bench_immudb.bench_mirror(url, password, n_tx=mirror_tx))  # goal: gate < 30 ms
        env = {**os.environ, "NOTARY_LEDGER": url, "NOTARY_IMMUDB_PASSWORD": password}
        out["verify_process"] = bench_verify_process(work / "immudb-verify", verify_runs, env=env, goal_ms=150)
        # the baseline of the same run: the mirror opted out (inclusion only; the default is complete reads)
        out["verify_process_no_mirror"] = bench_verify_process(
            work / "immudb-verify-plain", verify_runs, env={**env, "NOTARY_IMMUDB_MIRROR": "0"}, goal_ms=150)
        if gateway:  # the same, through immudb's HTTP gateway: no grpc, no immudb-py, a cached login token
            out["verify_process_gateway"] = bench_verify_process(
                work / "immudb-verify-gw", verify_runs, env={**env, "NOTARY_IMMUDB_GATEWAY": gateway}, goal_ms=150)
            out["verify_process_gateway_no_mirror"] = bench_verify_process(
                work / "immudb-verify-gw-plain", verify_runs,
                env={**env, "NOTARY_IMMUDB_GATEWAY": gateway, "NOTARY_IMMUDB_MIRROR": "0"}, goal_ms=150)
        out["import_cost_p50_ms"] = {
            name: round(statistics.median(_time([sys.executable, "-c", f"import {name}"]) for _ in range(9)) * 1000, 1)
            for name in ("grpc", "immudb", "notary.cli.main")
        }
        from benchmarks import sync as bench_sync  # an edge's records to this server (goal >= 1000 records/s)

        out["sync"] = _optional(lambda: bench_sync.bench(work / "sync", url, password))
        from benchmarks import evidence as bench_evidence  # an immudb bundle offline (goal: under 100 ms CPU)

        out["evidence"] = _optional(lambda: bench_evidence.bench_immudb(work / "immudb-evidence", url, password))
        from benchmarks import partitions as bench_partitions  # three databases as one ledger, against one

        out["partitions"] = _optional(lambda: bench_partitions.bench(work / "partitions", url, password))
        if gate:  # the runtime hook's cost on this server (goal <= 150 ms)
            from benchmarks import gate as bench_gate

            out["oci_hook"] = _optional(lambda: bench_gate.bench_hook(work / "immudb-hook", immudb=(url, password)))
            if gateway:
                out["oci_hook_gateway"] = _optional(lambda: bench_gate.bench_hook(
                    work / "immudb-hook-gw", immudb=(url, password), gateway=gateway))
        return out
    finally:
        if server is not None:
            server.stop()


def _gate(work: Path) -> dict[str, Any]:
    from benchmarks import gate as bench_gate

    return bench_gate.run(work)


if __name__ == "__main__":
    sys.exit(main())
