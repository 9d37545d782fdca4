"""Gate benchmarks for `python -m benchmarks`: what the gate costs where it sits on the critical path.

- `bench_hook`: `runc run` of a busybox bundle with the notary hook vs the same bundle without it, the runs
  interleaved in one run (so machine noise hits all alike); reports the added p50 wall (and CPU) time of the
  Python hook deciding in process (no server), of the same Python hook while a `notary gate hook-server`
  runs (it delegates), and of the curl hook asking that server.
- `bench_webhook`: `notary gate webhook` as its own process over TLS; 8 clients with keep-alive connections
  POST a Pod with 3 containers; reports requests/s and p50/p99 latency.
- `bench_burst.bench_hook_burst`: 50 curl hooks at the same moment against one hook server; p50/p99 per hook
  next to one hook alone (a node starting all its pods).
- `bench_burst.bench_webhook_burst`: 100 AdmissionReviews, each on a new TLS connection, at the same moment
  against one webhook with its default --workers and --queue; p50/p99 (every one must be answered).
Both use the embedded ledger and real tools (umoci, runc, busybox-static); they raise if one is missing.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._environ import patched_environ

BUSYBOX = "/bin/busybox"


def _run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} is not on PATH")
    return path


def build_image(work: Path) -> Path:
    """A one-layer busybox OCI layout (tag v1) built with umoci."""
    umoci = _need("umoci")
    if not os.path.isfile(BUSYBOX):
        raise RuntimeError(f"{BUSYBOX} not found (install busybox-static)")
    layout = work / "layout"
    _run(umoci, "init", "--layout", str(layout))
    _run(umoci, "new", "--image", f"{layout}:v1")
    bundle = work / "build-bundle"
    _run(umoci, "unpack", "--image", f"{layout}:v1", str(bundle))
    (bundle / "rootfs" / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, bundle / "rootfs" / "bin" / "busybox")
    os.symlink("busybox", bundle / "rootfs" / "bin" / "true")
    _run(umoci, "repack", "--image", f"{layout}:v1", str(bundle))
    _run(umoci, "config", "--image", f"{layout}:v1", "--config.cmd", "/bin/true")
    shutil.rmtree(bundle)
    return layout


def gate_world(work: Path, subjects: list[Any], ledger_url: str | None = None) -> Path:
    """A ledger holding subjects notarized by a fresh key, and a notary.toml whose policy trusts it.

    The ledger is a fresh embedded one unless ledger_url names another (an immudb, whose password the
    caller has put in the environment)."""
    from notary import keys
    from notary.ledger import open_ledger
    from notary.notarize import notarize

    key = keys.generate_private_key()
    pub = keys.write_key_pair(work / "ci.key", key)
    ledger_url = ledger_url or (work / "ledger.db").as_uri()
    ledger = open_ledger(ledger_url, state_dir=work / "ci-state", create=True)
    try:
        notarize(ledger, subjects, key, {"system": "local", "jobId": "bench"})
    finally:
        ledger.close()
    config = work / "notary.toml"
    config.write_text(f'ledger = "{ledger_url}"\nstate_dir = "{work / "gate-state"}"\n[policy]\n'
                      f'decision_log = "{work / "decisions.jsonl"}"\n'
                      f'[[policy.trust]]\nimages = ["*"]\nkeys = ["{pub}"]\n')
    return config


def _bundle(layout: Path, dest: Path, hook: dict[str, Any] | None) -> Path:
    _run(_need("umoci"), "unpack", "--image", f"{layout}:v1", str(dest))
    path = dest / "config.json"
    config = json.loads(path.read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    if hook:
        config["hooks"] = {"createRuntime": [hook]}
    path.write_text(json.dumps(config))
    return dest


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _runc_once(runc: str, root: Path, bundle: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of runc and everything it waited for, the hook included)."""
    cid = "nb-" + uuid.uuid4().hex[:10]
    cpu = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run([runc, "--root", str(root), "run", "--bundle", str(bundle), cid],
                          capture_output=True, stdin=subprocess.DEVNULL, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        subprocess.run([runc, "--root", str(root), "delete", "--force", cid], capture_output=True, check=False)
        raise RuntimeError(f"runc run failed: {proc.stderr.decode(errors='replace').strip()}")
    return elapsed, _children_cpu() - cpu


def bench_hook(work: Path, runs: int = 21, immudb: tuple[str, str] | None = None,
               gateway: str | None = None) -> dict[str, Any]:
    """p50 wall time of `runc run` with and without the hook, interleaved; the difference is the hook's cost.

    On the embedded ledger unless immudb = (ledger URL, password): the hook then reads the password from a
    0600 file named by NOTARY_IMMUDB_PASSWORD_FILE, as a real deployment would, and goes through immudb's HTTP
    gateway when one is given (NOTARY_IMMUDB_GATEWAY)."""
    from notary.sources import identify

    runc = _need("runc")
    work.mkdir(parents=True, exist_ok=True)
    layout = build_image(work)
    ledger_env: dict[str, str] = {}
    if immudb is not None:
        secret = work / "immudb.password"
        secret.touch(mode=0o600)
        secret.write_text(immudb[1])
        ledger_env["NOTARY_IMMUDB_PASSWORD_FILE"] = str(secret)
        if gateway:
            ledger_env["NOTARY_IMMUDB_GATEWAY"] = gateway
    with patched_environ(ledger_env):
        config = gate_world(work, identify(f"oci:{layout}:v1"), immudb[0] if immudb else None)
    from notary.gate.oci_hook import HOOK_CODE

    def python_hook(socket_path: str) -> dict[str, Any]:
        return {"path": sys.executable, "args": [sys.executable, "-c", HOOK_CODE], "timeout": 30,
                "env": [f"NOTARY_CONFIG={config}", f"NOTARY_GATE_SOCKET={socket_path}",
                        *(f"{k}={v}" for k, v in ledger_env.items())]}

    plain = _bundle(layout, work / "plain", None)
    hooked = _bundle(layout, work / "hooked", python_hook("none"))  # never asks a server: the whole decision
    server, served = _start_hook_server(work, config, layout, ledger_env)
    delegating = _bundle(layout, work / "delegating", python_hook(str(work / "gate.sock"))) if served else None
    root = work / "runc-state"
    try:
        modes = {"plain": plain, "hook": hooked,
                 **({"server": served, "delegated": delegating} if served and delegating else {})}
        for _ in range(2):  # warm the page cache and the trusted state
            for bundle in modes.values():
                _runc_once(runc, root, bundle)
        times: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
        for _ in range(runs):
            for mode, bundle in modes.items():
                times[mode].append(_runc_once(runc, root, bundle))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)

    def p50(mode: str, index: int) -> float:
        return statistics.median(t[index] for t in times[mode]) * 1000

    out = {
        "runs": runs,
        "runc_run_p50_ms": round(p50("plain", 0), 1),
        "runc_run_with_hook_p50_ms": round(p50("hook", 0), 1),
        "hook_added_p50_ms": round(p50("hook", 0) - p50("plain", 0), 1),
        # CPU time is what the hook costs regardless of other load on the machine (wall time is not)
        "hook_added_cpu_p50_ms": round(p50("hook", 1) - p50("plain", 1), 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "ledger": ("immudb-gateway" if gateway else "immudb") if immudb else "embedded",
        "goal_ms": 150 if immudb else 80,
    }
    if "server" in times:  # the curl hook asking a resident `notary gate hook-server`
        out["hook_server_added_p50_ms"] = round(p50("server", 0) - p50("plain", 0), 1)
    if "delegated" in times:  # the Python hook (what `gate install` writes) while a hook server runs
        out["hook_delegated_added_p50_ms"] = round(p50("delegated", 0) - p50("plain", 0), 1)
        out["hook_delegated_added_cpu_p50_ms"] = round(p50("delegated", 1) - p50("plain", 1), 1)
    return out


def _start_hook_server(work: Path, config: Path, layout: Path,
                       ledger_env: dict[str, str]) -> tuple[subprocess.Popen[bytes] | None, Path | None]:
    """A `notary gate hook-server` and a bundle whose hook is curl asking it; (None, None) without curl."""
    from notary.gate.install import hook_definition

    if shutil.which("curl") is None:
        return None, None
    sock = work / "gate.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTARY_")} | ledger_env
    proc = subprocess.Popen([sys.executable, "-m", "notary.cli.main", "--config", str(config), "gate",
                             "hook-server", "--socket", str(sock)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("notary gate hook-server did not start")
        time.sleep(0.05)
    return proc, _bundle(layout, work / "served", hook_definition(str(config), server=str(sock))["hook"])


def start_webhook(work: Path, config: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    """`notary gate webhook` as its own process on a free loopback port, with the suite's throwaway
    certificate: (process, port, certificate)."""
    from tests.support.runtimes import self_signed_cert

    cert, key = self_signed_cert(work)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTARY_")}
    server = subprocess.Popen([sys.executable, "-m", "notary.cli.main", "--config", str(config), "gate", "webhook",
                               "--cert", str(cert), "--key", str(key), "--host", "127.0.0.1", "--port", str(port),
                               "--drain-seconds", "0"],  # nothing routes to it: stop at once
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return server, port, cert


def _pod_review(images: list[str]) -> bytes:
    return json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": str(uuid.uuid4()), "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "namespace": "bench", "operation": "CREATE",
                    "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bench"},
                               "spec": {"containers": [{"name": f"c{i}", "image": im}
                                                       for i, im in enumerate(images)]}}},
    }).encode()


def bench_webhook(work: Path, seconds: float = 5.0, clients: int = 8) -> dict[str, Any]:
    from notary.sources.base import Subject

    work.mkdir(parents=True, exist_ok=True)
    digests = [f"sha256:{i:064x}" for i in range(1, 4)]
    config = gate_world(work, [Subject(d, f"registry.example/app{i}", "oci-manifest") for i, d in enumerate(digests)])
    server, port, cert = start_webhook(work, config)
    context = ssl.create_default_context(cafile=str(cert))
    body = _pod_review([f"registry.example/app{i}@{d}" for i, d in enumerate(digests)])
    try:
        _wait_healthy(port, context, server)
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        stop_at = time.perf_counter() + seconds

        def client() -> None:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
            mine: list[float] = []
            try:
                while time.perf_counter() < stop_at:
                    start = time.perf_counter()
                    conn.request("POST", "/validate", body=body, headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    data = resp.read()
                    mine.append(time.perf_counter() - start)
                    if resp.status != 200 or not json.loads(data)["response"]["allowed"]:
                        with lock:
                            errors.append(f"{resp.status} {data[:200]!r}")
            finally:
                conn.close()
                with lock:
                    latencies.extend(mine)

        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=10)
    if errors:
        raise RuntimeError(f"webhook answered wrongly during the benchmark: {errors[0]}")
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return {
        "clients": clients,
        "containers_per_pod": len(digests),
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(p99 * 1000, 2),
    }


def _wait_healthy(port: int, context: ssl.SSLContext, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"webhook exited: {server.stderr.read().decode() if server.stderr else ''}")
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("webhook did not become healthy within 20s")


def run(work: Path) -> dict[str, Any]:
    """The gate benchmarks; one failing does not hide the others' numbers."""
    from benchmarks.burst import bench_hook_burst, bench_webhook_burst

    out: dict[str, Any] = {}
    benches: list[tuple[str, Callable[[], Any]]] = [("oci_hook", lambda: bench_hook(work / "hook")),
                                                   ("hook_burst", lambda: bench_hook_burst(work / "burst")),
                                                   ("webhook", lambda: bench_webhook(work / "webhook")),
                                                   ("webhook_burst", lambda: bench_webhook_burst(work / "wburst"))]
    for name, fn in benches:
        try:
            out[name] = fn()
        except Exception as exc:  # noqa: BLE001 - report, do not hide the rest
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out
