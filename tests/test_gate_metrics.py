"""Prometheus metrics of the resident front ends, scraped for real: GET /metrics on the hook server's and the
Docker plugin's unix sockets, and on the webhook's own port; `--log-format json` lines on their stderr.

The scrape is parsed by a strict reader of the text exposition format (0.0.4) below, and the numbers must be
the decisions just made: allowed and refused counted by front end and exit code, every checked decision in
the latency histogram, an integrity failure counted as a proof failure, the verified ledger head's size.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.burst import hook_burst, state, write_bundle
from notary.gate.metrics import Metrics, ServerLog
from notary.sources.base import Subject
from tests.support.gate_servers import raw_http, raw_request
from tests.support.runtimes import AuthzPlugin, GateWorld, HookServer, Webhook

GOOD = "sha256:" + "a9" * 32
UNSIGNED = "sha256:" + "b9" * 32
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf'^({_NAME})(\{{(?:{_NAME[:-1]}*="(?:[^"\\\n]|\\[\\"n])*",?)*\}})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def parse_exposition(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{metric name: {sorted labels: value}}; AssertionError on anything the format does not allow."""
    assert text.endswith("\n")
    families: dict[str, str] = {}
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram") and name not in families, line
            families[name] = kind
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.group(1), match.group(2) or "", match.group(3)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in families or (base in families and families[base] == "histogram"), f"untyped {name}"
        key = tuple(sorted(_LABEL.findall(labels)))
        samples.setdefault(name, {})[key] = float(value)
    for name, kind in families.items():  # histogram buckets never decrease and end with +Inf == count
        if kind != "histogram":
            continue
        for key, count in samples.get(f"{name}_count", {}).items():
            buckets = sorted(((float(dict(k)["le"]), v) for k, v in samples[f"{name}_bucket"].items()
                              if tuple(x for x in k if x[0] != "le") == key))
            values = [v for _, v in buckets]
            assert values == sorted(values) and buckets[-1] == (float("inf"), count)
    return samples


def _value(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


@pytest.fixture
def world(tmp_path: Path) -> GateWorld:
    w = GateWorld(tmp_path / "world")
    w.ensure_ledger()
    w.notarize(Subject(GOOD, "registry.example/app", "oci-manifest"))
    return w


def test_hook_server_metrics_count_what_was_decided(world: GateWorld, tmp_path: Path) -> None:
    with HookServer(world, "--log-format", "json") as server:
        good = write_bundle(tmp_path / "good", GOOD, "registry.example/app:1")
        unsigned = write_bundle(tmp_path / "unsigned", UNSIGNED, "registry.example/app:2")
        states = {f"g{i}": state(f"g{i}", good) for i in range(3)} | {"u0": state("u0", unsigned)}
        results = {r.container: r.exit_code for r in hook_burst(str(server.socket), states)}
        assert results == {"g0": 0, "g1": 0, "g2": 0, "u0": 22}
        status, body = raw_http(str(server.socket), raw_request("GET", "/metrics"))
        text = body.decode()
        assert status == 200
        samples = parse_exposition(text)
        assert _value(samples, "notary_gate_decisions_total", front_end="oci-hook-server", decision="allow",
                      exit_code="0") == 3
        assert _value(samples, "notary_gate_decisions_total", front_end="oci-hook-server", decision="refuse",
                      exit_code="1") == 1
        assert _value(samples, "notary_gate_decision_duration_seconds_count", front_end="oci-hook-server") == 4
        assert _value(samples, "notary_gate_ledger_tree_size") >= 1
        assert 0 <= _value(samples, "notary_gate_ledger_head_age_seconds") < 60
        world.tamper()
        [broken] = hook_burst(str(server.socket), {"t0": state("t0", good)})
        assert broken.exit_code == 22
        after = parse_exposition(raw_http(str(server.socket), raw_request("GET", "/metrics"))[1].decode())
        assert _value(after, "notary_gate_proof_failures_total", front_end="oci-hook-server") == 1
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines()]
    assert lines[0]["level"] == "info" and "listening" in lines[0]["msg"]
    refused = [x for x in lines if x["level"] == "warning"]
    assert {x.get("container") for x in refused} == {"u0", "t0"}
    assert all(x["front_end"] == "oci-hook-server" and x["reason"] for x in refused)
    assert lines[-1]["msg"] == "stopped"


def test_docker_plugin_serves_metrics_on_its_socket(world: GateWorld) -> None:
    with AuthzPlugin(world) as plugin:
        body = json.dumps({"RequestMethod": "POST", "RequestUri": "/v1.41/containers/create",
                           "RequestBody": "bm90IGpzb24="}).encode()  # "not json": refused, logged, counted
        status, answer = raw_http(str(plugin.socket), raw_request("POST", "/AuthZPlugin.AuthZReq", body))
        assert status == 200 and json.loads(answer)["Allow"] is False
        status, text = raw_http(str(plugin.socket), raw_request("GET", "/metrics"))
    assert status == 200
    samples = parse_exposition(text.decode())
    assert _value(samples, "notary_gate_decisions_total", front_end="docker-authz", decision="refuse",
                  exit_code="2") == 1


@pytest.fixture
def webhook(world: GateWorld) -> Iterator[Webhook]:
    with Webhook(world, "--log-format", "json", tls=False) as server:
        yield server


def _review(image: str) -> bytes:
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE",
        "namespace": "team", "object": {"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "image": image}]}}}}).encode()


def test_webhook_serves_metrics_on_its_port_and_logs_json(webhook: Webhook) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", webhook.port, timeout=30)
    try:
        for image in (f"registry.example/app@{GOOD}", f"registry.example/app@{UNSIGNED}"):
            conn.request("POST", "/validate", body=_review(image), headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            assert resp.status == 200, resp.read()
            resp.read()
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        text = resp.read().decode()
        assert resp.status == 200 and resp.getheader("Content-Type", "").startswith("text/plain; version=0.0.4")
    finally:
        conn.close()
    samples = parse_exposition(text)
    assert _value(samples, "notary_gate_decisions_total", front_end="webhook", decision="allow", exit_code="0") == 1
    assert _value(samples, "notary_gate_decisions_total", front_end="webhook", decision="refuse", exit_code="1") == 1
    assert _value(samples, "notary_gate_decision_duration_seconds_count", front_end="webhook") == 2
    webhook.stop()
    lines = [json.loads(line) for line in webhook.log_path.read_text().splitlines()]
    assert [x["level"] for x in lines[:2]] == ["warning", "info"]  # plain HTTP warning, then the banner
    assert any(x["level"] == "warning" and x.get("digest") == UNSIGNED and x["reason"] for x in lines)


def test_label_values_are_escaped_and_the_exposition_stays_parseable() -> None:
    """A front end name with a quote, backslash or newline (it never is, but the format must hold)."""
    metrics = Metrics(clock=lambda: 1000.0)

    class Decision:
        allowed, exit_code, tree_size, via = False, 3, 7, "verified"

    metrics.observe(Decision(), 'odd"front\\end\n', 0.004)
    samples = parse_exposition(metrics.render())
    assert _value(samples, "notary_gate_proof_failures_total", front_end='odd\\"front\\\\end\\n') == 1
    assert _value(samples, "notary_gate_decision_duration_seconds_bucket", front_end='odd\\"front\\\\end\\n',
                  le="0.005") == 1
    assert _value(samples, "notary_gate_ledger_head_age_seconds") == 0.0


def test_json_log_lines_are_one_object_each(tmp_path: Path) -> None:
    out = tmp_path / "log"
    with out.open("w") as stream:
        ServerLog("json", stream).warning("refused a\nb", reason="multi\nline", container=None)
    [line] = out.read_text().splitlines()
    assert json.loads(line)["msg"] == "refused a\nb" and "container" not in json.loads(line)
