"""Metrics that alert from the first event: real front-end servers scraped before any decision, then after.

Prometheus' `increase()` and `rate()` need a sample before the event: a counter whose series is born at 1
shows no increase, so an alert on `increase(notary_gate_proof_failures_total[5m]) > 0` would miss the first
(often the only) proof failure. Every scrape here is read twice, by the strict line reader of
test_gate_metrics and by prometheus_client's own parser (test-only; made strict where it is lax), and the
process metrics are checked against what the kernel says about the server's process, not against themselves.
"""

from __future__ import annotations

import http.client
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import notary
from benchmarks.burst import hook_burst, state, write_bundle
from notary.gate.metrics import Metrics, process_metrics
from notary.sources.base import Subject
from tests.support.gate_servers import raw_http, raw_request
from tests.support.runtimes import AuthzPlugin, GateServer, GateWorld, HookServer, Webhook
from tests.test_gate_metrics import parse_exposition

GOOD = "sha256:" + "a9" * 32
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]
# what the gate can answer (notary.errors, the CLI contract): allow is 0; refuse is 1 refused, 2 bad input,
# 3 integrity, 4 unreachable or busy. Written out here, not imported, so a code the metrics forget fails.
OUTCOMES = [("allow", "0"), ("refuse", "1"), ("refuse", "2"), ("refuse", "3"), ("refuse", "4")]
PROCESS = ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
           "process_open_fds", "process_max_fds")


def reference_parse(text: str) -> Samples:
    """Both readers of the exposition; prometheus_client's is lax (a stray sample becomes an untyped family, a
    family may repeat), so those are failures here."""
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), f"a family is split or repeated: {names}"
    for family in families:
        assert family.type in ("counter", "gauge", "histogram"), f"untyped (no # TYPE): {family.name}"
        assert family.documentation, f"no # HELP for {family.name}"
    return parse_exposition(text)


def scrape(server: GateServer) -> Samples:
    if isinstance(server, Webhook):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            status, body = resp.status, resp.read()
        finally:
            conn.close()
    else:
        status, body = raw_http(str(server.socket), raw_request("GET", "/metrics"))
    assert status == 200, body
    return reference_parse(body.decode())


def one(samples: Samples, name: str, **labels: str) -> float:
    """The sample itself: KeyError when it is missing (a missing series is the fault, not a zero)."""
    return samples[name][tuple(sorted(labels.items()))]


@pytest.fixture
def world(tmp_path: Path) -> GateWorld:
    w = GateWorld(tmp_path / "world")
    w.ensure_ledger()
    w.notarize(Subject(GOOD, "registry.example/app", "oci-manifest"))
    return w


SERVERS: dict[str, Callable[[GateWorld], GateServer]] = {
    "oci-hook-server": HookServer,
    "docker-authz": AuthzPlugin,
    "webhook": lambda w: Webhook(w, tls=False),
}


@pytest.fixture(params=sorted(SERVERS))
def server(request: pytest.FixtureRequest, world: GateWorld) -> Iterator[tuple[str, GateServer]]:
    with SERVERS[request.param](world) as running:
        yield request.param, running


def test_no_counter_series_is_born_at_one(server: tuple[str, GateServer]) -> None:
    """Before any decision every series the front end can produce is there, at 0."""
    front_end, running = server
    samples = scrape(running)
    assert samples["notary_gate_decisions_total"] == {
        tuple(sorted({"front_end": front_end, "decision": d, "exit_code": c}.items())): 0.0 for d, c in OUTCOMES}
    assert samples["notary_gate_proof_failures_total"] == {(("front_end", front_end),): 0.0}
    buckets = samples["notary_gate_decision_duration_seconds_bucket"]
    assert len(buckets) == 14 and set(buckets.values()) == {0.0}
    assert {dict(k)["le"] for k in buckets} >= {"0.001", "10.0", "+Inf"}
    assert one(samples, "notary_gate_decision_duration_seconds_count", front_end=front_end) == 0
    assert one(samples, "notary_gate_decision_duration_seconds_sum", front_end=front_end) == 0


def test_first_proof_failure_is_an_increase_from_zero(world: GateWorld, tmp_path: Path) -> None:
    good = write_bundle(tmp_path / "good", GOOD, "registry.example/app:1")
    with HookServer(world) as server:
        before = scrape(server)
        world.tamper()
        [broken] = hook_burst(str(server.socket), {"t0": state("t0", good)})
        after = scrape(server)
    assert broken.exit_code != 0
    assert [d["exit_code"] for d in world.decisions()] == [3]  # the decision log says integrity failure
    name, labels = "notary_gate_proof_failures_total", {"front_end": "oci-hook-server"}
    assert (one(before, name, **labels), one(after, name, **labels)) == (0, 1)  # what increase() sees
    refused = {"front_end": "oci-hook-server", "decision": "refuse", "exit_code": "3"}
    assert (one(before, "notary_gate_decisions_total", **refused),
            one(after, "notary_gate_decisions_total", **refused)) == (0, 1)
    others = {k: v for k, v in after["notary_gate_decisions_total"].items() if dict(k)["exit_code"] != "3"}
    assert len(others) == 4 and set(others.values()) == {0.0}
    assert one(after, "notary_gate_decision_duration_seconds_count", front_end="oci-hook-server") == 1


def test_build_info_names_the_notary_that_answers(world: GateWorld) -> None:
    """The version a fleet reports is the one `notary --version` prints, and the interpreter running it."""
    printed = subprocess.run([sys.executable, "-m", "notary.cli.main", "--version"], capture_output=True,
                             text=True, check=True, env=world.env()).stdout
    with HookServer(world) as server:
        samples = scrape(server)
    [(labels, value)] = samples["notary_build_info"].items()
    info = dict(labels)
    assert value == 1 and info["version"] == notary.__version__ and info["version"] in printed.split()
    v = sys.version_info
    assert info["python"] == f"{v.major}.{v.minor}.{v.micro}" and info["implementation"] == sys.implementation.name


def _status_kib(pid: int, field: str) -> int:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process metrics come from /proc (Linux)")
def test_process_metrics_are_the_servers_own_and_move(world: GateWorld, tmp_path: Path) -> None:
    """Sizes in bytes, not pages or KiB; the server's own fds and limits; CPU time that grows with work."""
    good = write_bundle(tmp_path / "good", GOOD, "registry.example/app:1")
    with HookServer(world) as server:
        assert server.proc is not None
        pid = server.proc.pid
        first = scrape(server)
        rss, vm = _status_kib(pid, "VmRSS") * 1024, _status_kib(pid, "VmSize") * 1024
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        assert rss / 2 < one(first, "process_resident_memory_bytes") < rss * 2
        assert vm / 2 < one(first, "process_virtual_memory_bytes") < vm * 2
        assert abs(one(first, "process_open_fds") - fds) <= 3  # the scrape's own connection and listdir
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]  # the server inherited the test's limit
        if soft != resource.RLIM_INFINITY:
            assert one(first, "process_max_fds") == soft
        assert 0 < one(first, "process_open_fds") < one(first, "process_max_fds")
        assert one(first, "process_cpu_seconds_total") > 0  # starting Python alone costs CPU time
        assert abs(one(first, "process_start_time_seconds") - time.time()) < 300
        deadline, later = time.monotonic() + 60, first
        while one(later, "process_cpu_seconds_total") <= one(first, "process_cpu_seconds_total"):
            assert time.monotonic() < deadline, "the server's CPU time never grew while it decided"
            hook_burst(str(server.socket), {f"g{i}": state(f"g{i}", good) for i in range(8)})
            later = scrape(server)
    assert one(later, "process_resident_memory_bytes") > 0


def test_a_scrape_without_proc_leaves_process_metrics_out_but_still_answers(tmp_path: Path) -> None:
    metrics = Metrics(front_ends=["oci-hook-server"], proc=str(tmp_path / "no-proc"))
    samples = reference_parse(metrics.render())
    assert not set(PROCESS) & set(samples)
    assert "process_start_time_seconds" in samples and "notary_build_info" in samples
    assert one(samples, "notary_gate_proof_failures_total", front_end="oci-hook-server") == 0


def _fake_proc(root: Path, stat: str, fd_limit: str) -> str:
    """A /proc/self look-alike made of real files, for the shapes this machine's own process does not have."""
    (root / "fd").mkdir(parents=True)
    (root / "fd" / "0").touch()
    (root / "stat").write_text(stat)
    limits = [x for x in Path("/proc/self/limits").read_text().splitlines() if not x.startswith("Max open files")]
    (root / "limits").write_text("\n".join([*limits, f"Max open files  {fd_limit}  {fd_limit}  files"]) + "\n")
    return str(root)


def _numbers(lines: list[str]) -> dict[str, float]:
    return {line.split()[0]: float(line.split()[1]) for line in lines if not line.startswith("#")}


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process metrics come from /proc (Linux)")
def test_a_process_name_with_parentheses_or_an_unlimited_fd_limit_does_not_corrupt_the_numbers(
        tmp_path: Path) -> None:
    """proc(5) fields are counted after the last ')' (a command name may hold ') 1 2 ('), and "unlimited" is
    no number: no process_max_fds sample rather than a wrong one or a failed scrape."""
    stat = Path("/proc/self/stat").read_text()
    pid, rest = stat.split(" (", 1)
    odd = pid + " (odd) 1 2 (name" + rest[rest.rindex(")"):]
    plain = _numbers(process_metrics(_fake_proc(tmp_path / "plain", stat, "1024")))
    got = _numbers(process_metrics(_fake_proc(tmp_path / "odd", odd, "unlimited")))
    assert plain["process_max_fds"] == 1024 and "process_max_fds" not in got
    assert got == {k: v for k, v in plain.items() if k != "process_max_fds"}
    assert got["process_open_fds"] == 1 and got["process_resident_memory_bytes"] > 0
    assert got["process_virtual_memory_bytes"] >= got["process_resident_memory_bytes"]
