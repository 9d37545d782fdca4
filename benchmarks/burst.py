"""Bursts against the gate's resident servers: what a node sees when every pod starts, and what the webhook sees
when a cluster creates many pods at once.

`hook_burst` starts one real curl per hook, with exactly the argv `gate install --server` writes, waits until
every curl is up and blocked on its stdin, then hands all of them their container state at once: the
connections arrive together, as they do when a rebooted node starts its pods. Each hook's time runs from
that release to curl's exit (curl's own start-up excluded). Used by `bench_hook_burst` (p50/p99 for 50
simultaneous hooks, in `make bench`) and by the burst tests.

`webhook_burst` does the same for `notary gate webhook`: one thread per AdmissionReview, each opening its own
TLS connection once all are released together (connect, handshake, POST, answer all inside the timing), as
an API server's many callers do.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from notary.gate.frontends.hook_server import curl_hook_args


@dataclass(frozen=True)
class HookResult:
    container: str
    exit_code: int  # curl's: 0 allowed, 22 refused by notary (HTTP 4xx/5xx), 7 could not connect, ...
    body: str  # what notary answered (curl --fail-with-body prints it on stdout)
    output: str  # that body and curl's own error line, as the runtime shows them
    seconds: float


def write_bundle(directory: Path, digest: str, name: str) -> Path:
    """A bundle directory whose config.json names the image through notary's own annotations."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({
        "ociVersion": "1.0.2", "process": {"args": ["/bin/true"], "cwd": "/"}, "root": {"path": "rootfs"},
        "annotations": {"dev.notary.image.digest": digest, "dev.notary.image.name": name}}))
    return directory


def state(container: str, bundle: Path) -> bytes:
    """The OCI state a runtime hands a createRuntime hook."""
    return json.dumps({"ociVersion": "1.0.2", "id": container, "status": "creating", "pid": os.getpid(),
                       "bundle": str(bundle)}).encode()


def hook_burst(socket_path: str, states: dict[str, bytes], *, timeout: float = 60) -> list[HookResult]:
    """Run one curl hook per (container, state) at the same moment; one result each, in container order."""
    curl = shutil.which("curl")
    if curl is None:
        raise RuntimeError("curl is not on PATH")
    argv = curl_hook_args(socket_path, curl)
    procs = {cid: subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for cid in states}
    results: dict[str, HookResult] = {}
    lock = threading.Lock()
    gate = threading.Barrier(len(procs) + 1)

    def one(cid: str, proc: subprocess.Popen[bytes]) -> None:
        gate.wait()
        start = time.perf_counter()
        try:
            out, err = proc.communicate(states[cid], timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        elapsed = time.perf_counter() - start
        with lock:
            results[cid] = HookResult(cid, proc.returncode, out.decode(errors="replace"),
                                      (out + err).decode(errors="replace"), elapsed)

    threads = [threading.Thread(target=one, args=item) for item in procs.items()]
    for thread in threads:
        thread.start()
    time.sleep(0.3 + 0.01 * len(procs))  # let every curl start and block reading its stdin
    gate.wait()
    for thread in threads:
        thread.join()
    return [results[cid] for cid in states]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def bench_hook_burst(work: Path, hooks: int = 50, rounds: int = 5) -> dict[str, Any]:
    """p50/p99 of `hooks` simultaneous curl hooks (allowed ones, on the embedded ledger), next to one hook alone.

    The baseline (one hook at a time, same server, same run) is what makes the burst numbers comparable
    between machines: the ratio says how much waiting the burst adds."""
    from benchmarks.gate import gate_world
    from notary.sources.base import Subject

    work.mkdir(parents=True, exist_ok=True)
    digest = "sha256:" + "5e" * 32
    config = gate_world(work, [Subject(digest, "registry.example/burst", "oci-manifest")])
    bundle = write_bundle(work / "bundle", digest, "registry.example/burst:1")
    sock = work / "gate.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTARY_")}
    server = subprocess.Popen([sys.executable, "-m", "notary.cli.main", "--config", str(config), "gate",
                               "hook-server", "--socket", str(sock)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("notary gate hook-server did not start")
            time.sleep(0.05)
        single: list[float] = []
        for i in range(21):
            [result] = hook_burst(str(sock), {f"single-{i}": state(f"single-{i}", bundle)})
            if result.exit_code != 0:
                raise RuntimeError(f"a single hook was not allowed: {result.output.strip()}")
            single.append(result.seconds)
        burst: list[float] = []
        walls: list[float] = []
        for r in range(rounds):
            states = {f"burst-{r}-{i}": state(f"burst-{r}-{i}", bundle) for i in range(hooks)}
            results = hook_burst(str(sock), states)
            failed = [x for x in results if x.exit_code != 0]
            if failed:
                raise RuntimeError(f"{len(failed)} of {hooks} simultaneous hooks failed, e.g. curl exit "
                                   f"{failed[0].exit_code}: {failed[0].output.strip()[:200]}")
            burst += [x.seconds for x in results]
            walls.append(max(x.seconds for x in results))
    finally:
        server.terminate()
        server.wait(timeout=10)
    single_p50 = statistics.median(single) * 1000
    return {
        "simultaneous_hooks": hooks,
        "rounds": rounds,
        "single_hook_p50_ms": round(single_p50, 1),
        "burst_p50_ms": round(statistics.median(burst) * 1000, 1),
        "burst_p99_ms": round(percentile(burst, 0.99) * 1000, 1),
        "burst_wall_p50_ms": round(statistics.median(walls) * 1000, 1),
        "burst_p50_vs_single": round(statistics.median(burst) * 1000 / single_p50, 1),
        "all_decided": True,
    }


@dataclass(frozen=True)
class WebhookResult:
    status: int  # HTTP status; 0 when there was no answer (refused, reset, timed out: see error)
    body: bytes
    error: str
    seconds: float


def webhook_burst(port: int, cafile: str, bodies: list[bytes], *, host: str = "127.0.0.1",
                  timeout: float = 60) -> list[WebhookResult]:
    """POST each body to /validate on a new TLS connection, all released at the same moment; one result
    each, in order. Each time runs from the release to the last byte of the answer."""
    context = ssl.create_default_context(cafile=cafile)
    results: list[WebhookResult | None] = [None] * len(bodies)
    gate = threading.Barrier(len(bodies) + 1)

    def one(i: int) -> None:
        gate.wait()
        start = time.perf_counter()
        conn = http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
        try:
            conn.request("POST", "/validate", body=bodies[i], headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            results[i] = WebhookResult(resp.status, resp.read(), "", time.perf_counter() - start)
        except (OSError, http.client.HTTPException) as exc:
            results[i] = WebhookResult(0, b"", f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
        finally:
            conn.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    gate.wait()
    for thread in threads:
        thread.join()
    return [r if r is not None else WebhookResult(0, b"", "no result", 0.0) for r in results]


def bench_webhook_burst(work: Path, connections: int = 100, rounds: int = 3) -> dict[str, Any]:
    """p50/p99 of `connections` AdmissionReviews (a Pod, one image) each on its own new TLS connection, all
    released together against `notary gate webhook` with its default --workers and --queue."""

    from benchmarks.gate import _pod_review, _wait_healthy, gate_world, start_webhook
    from notary.sources.base import Subject

    work.mkdir(parents=True, exist_ok=True)
    digest = "sha256:" + "5f" * 32
    config = gate_world(work, [Subject(digest, "registry.example/burst", "oci-manifest")])
    server, port, cert = start_webhook(work, config)
    seconds: list[float] = []
    try:
        _wait_healthy(port, ssl.create_default_context(cafile=str(cert)), server)
        for _ in range(rounds):
            results = webhook_burst(port, str(cert), [_pod_review([f"registry.example/burst@{digest}"])
                                                      for _ in range(connections)])
            wrong = [r for r in results if r.status != 200 or b'"allowed": true' not in r.body]
            if wrong:
                raise RuntimeError(f"{len(wrong)} of {connections} reviews were not allowed, e.g. "
                                   f"{wrong[0].status} {wrong[0].error or wrong[0].body[:200]!r}")
            seconds += [r.seconds for r in results]
    finally:
        server.terminate()
        server.wait(timeout=10)
    return {"simultaneous_connections": connections, "rounds": rounds, "all_answered": True,
            "p50_ms": round(statistics.median(seconds) * 1000, 1),
            "p99_ms": round(percentile(seconds, 0.99) * 1000, 1), "max_ms": round(max(seconds) * 1000, 1)}
