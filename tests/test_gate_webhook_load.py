"""The admission webhook under load, as its own process over real TLS: bursts are answered, not dropped.

The webhook serves on the gate's bounded pool (notary.gate.frontends.pool): a 1024-deep backlog, --workers
threads doing the TLS handshakes, --queue connections waiting, and a busy answer past that. A burst of
connections all get verdicts; a full queue gets HTTP 503 with a Kubernetes Status saying the gate is busy
(logged and counted); clients that connect and never handshake hold a worker no longer than the handler
timeout and never stall the accept loop.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from benchmarks.burst import percentile, webhook_burst
from notary.sources.base import Subject
from tests.support.runtimes import GateWorld, Webhook
from tests.test_gate_metrics import _value, parse_exposition

GOOD = "sha256:" + "d1" * 32
UNKNOWN = "sha256:" + "d2" * 32
HANDSHAKE_TIMEOUT = 15.0  # the webhook handler's timeout, within which a whole TLS handshake must finish


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> GateWorld:
    w = GateWorld(tmp_path_factory.mktemp("webhook-load") / "world")
    w.notarize(Subject(GOOD, "registry.example/app", "oci-manifest"))
    return w


def review(image: str, name: str = "web") -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": str(uuid.uuid4()), "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "resource": {"group": "", "version": "v1", "resource": "pods"}, "name": name,
                        "namespace": "prod", "operation": "CREATE",
                        "object": {"apiVersion": "v1", "kind": "Pod",
                                   "metadata": {"name": name, "namespace": "prod"},
                                   "spec": {"containers": [{"name": "c0", "image": image}]}}}}


def post(webhook: Webhook, body: dict[str, Any], timeout: float = 30) -> requests.Response:
    return requests.post(webhook.url + "/validate", json=body, verify=str(webhook.cert), timeout=timeout)


def silent_client(webhook: Webhook) -> socket.socket:
    """A TCP connection that never sends its ClientHello (it sits in a worker's handshake, or in the queue)."""
    return socket.create_connection(("127.0.0.1", webhook.port), timeout=60)


def test_webhook_burst_of_connections_is_all_answered(world: GateWorld) -> None:
    """100 AdmissionReviews, each on its own new TLS connection, released at the same moment: every one gets
    its own verdict (the old server's backlog of 64 and a thread per connection had no bound at all)."""
    with Webhook(world) as webhook:
        bodies = [review(f"registry.example/app@{GOOD if i % 2 else UNKNOWN}", f"pod-{i}") for i in range(100)]
        before = len(world.decisions())
        results = webhook_burst(webhook.port, str(webhook.cert), [json.dumps(b).encode() for b in bodies])
    for i, (body, result) in enumerate(zip(bodies, results, strict=True)):
        assert result.status == 200, (result.error, result.body[:300])
        answer = json.loads(result.body)["response"]
        assert answer["uid"] == body["request"]["uid"]
        assert answer["allowed"] is bool(i % 2), answer
    seconds = [r.seconds for r in results]
    print(f"burst of 100: p50 {statistics.median(seconds) * 1000:.0f} ms, "
          f"p99 {percentile(seconds, 0.99) * 1000:.0f} ms, max {max(seconds) * 1000:.0f} ms")
    lines = world.decisions()[before:]
    assert sorted(x["object"] for x in lines) == sorted(f"Pod/pod-{i}" for i in range(100))


def test_webhook_full_queue_answers_busy(world: GateWorld) -> None:
    """One worker, a queue of one, both held by clients that never finish their handshake: the next review
    is answered at once with HTTP 503 and a Kubernetes Status saying the gate is busy, logged and counted
    like any refusal; once the slow clients are gone the webhook decides again."""
    with Webhook(world, "--workers", "1", "--queue", "1") as webhook:
        held = silent_client(webhook)  # the only worker waits for its ClientHello
        time.sleep(0.3)
        queued = silent_client(webhook)  # fills the queue
        time.sleep(0.3)
        try:
            start = time.monotonic()
            resp = post(webhook, review(f"registry.example/app@{GOOD}", "refused-pod"), timeout=10)
            took = time.monotonic() - start
        finally:
            held.close()
            queued.close()
        assert resp.status_code == 503, resp.text
        status = resp.json()
        assert (status["kind"], status["status"], status["code"]) == ("Status", "Failure", 503)
        assert status["message"].startswith("notary refused: the gate is busy: 1 reviews being decided and 1 "
                                            "waiting"), status
        assert took < 5, took
        line = world.decisions()[-1]
        assert (line["allowed"], line["exit_code"], line["front_end"]) == (False, 4, "webhook"), line
        assert line["object"] == "Pod/refused-pod" and line["namespace"] == "prod", line
        busy = 1
        deadline = time.monotonic() + 5
        while True:  # the worker is free again once it has seen the slow clients go (a moment)
            ok = post(webhook, review(f"registry.example/app@{GOOD}"))
            if ok.status_code != 503 or time.monotonic() > deadline:
                break
            busy += 1
            time.sleep(0.1)
        assert ok.status_code == 200 and ok.json()["response"]["allowed"] is True, ok.text
        metrics = requests.get(webhook.url + "/metrics", verify=str(webhook.cert), timeout=10)
        samples = parse_exposition(metrics.text)
        assert _value(samples, "notary_gate_decisions_total", front_end="webhook", decision="refuse",
                      exit_code="4") == busy


def test_slow_tls_clients_do_not_block_the_accept_loop(world: GateWorld) -> None:
    """Clients that connect and never send a ClientHello (and one trickling it a byte at a time) hold a worker
    each, never the acceptor: 20 other clients are answered at once meanwhile; and the server gives each slow
    one up once its whole handshake has taken the handler timeout, however it trickles (a timeout per read
    alone would keep the trickling one for as long as it keeps sending)."""
    with Webhook(world, "--workers", "8") as webhook:
        connected = time.monotonic()
        silent = [silent_client(webhook) for _ in range(5)]
        trickler = silent_client(webhook)
        hello = _client_hello()
        try:
            trickler.sendall(hello[:1])
            time.sleep(0.3)
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=20) as pool:
                answers = list(pool.map(lambda i: post(webhook, review(f"registry.example/app@{GOOD}"),
                                                       timeout=10), range(20)))
            took = time.monotonic() - started
            assert all(a.status_code == 200 and a.json()["response"]["allowed"] for a in answers)
            assert took < 5, f"20 reviews took {took:.1f}s next to 6 slow TLS clients"
            trickled = _trickle_until_closed(trickler, hello[1:], connected + HANDSHAKE_TIMEOUT + 3)
            assert trickled is not None, "a trickling TLS client kept its worker past the handshake timeout"
            assert trickled - connected > HANDSHAKE_TIMEOUT - 1, trickled - connected
            for sock in silent:
                assert _closed_before(sock, connected + HANDSHAKE_TIMEOUT + 3), "a silent client kept its worker"
        finally:
            for sock in (*silent, trickler):
                sock.close()
        assert post(webhook, review(f"registry.example/app@{GOOD}")).status_code == 200


def test_connection_flood_keeps_threads_bounded_and_sheds_the_rest(world: GateWorld) -> None:
    """300 connections that never handshake against 4 workers and a queue of 16: the webhook keeps its
    threads (a thread per connection used to mean 300), closes what neither queue can hold at once instead
    of piling it up, and answers again as soon as the flood is gone."""
    with Webhook(world, "--workers", "4", "--queue", "16") as webhook:
        assert webhook.proc is not None
        tasks = Path(f"/proc/{webhook.proc.pid}/task")
        idle_threads = len(list(tasks.iterdir()))
        flood = [silent_client(webhook) for _ in range(300)]
        try:
            time.sleep(0.5)
            assert len(list(tasks.iterdir())) == idle_threads  # the pool's threads, started with the server
            shed = sum(_closed_before(sock, time.monotonic() + 0.05) for sock in flood)
            assert 300 - 4 - 16 - 64 - 5 <= shed <= 300 - 4 - 16, shed  # workers, queue, refusal queue kept
        finally:
            for sock in flood:
                sock.close()
        resp = post(webhook, review(f"registry.example/app@{GOOD}"), timeout=20)
        assert resp.status_code == 200 and resp.json()["response"]["allowed"] is True, resp.text


def test_idle_kept_alive_connections_hand_their_worker_on(world: GateWorld) -> None:
    """The API server keeps connections alive between reviews. With both workers holding such an idle
    connection, a new connection is answered at once (the idle ones give their worker up as soon as someone
    waits), not after the 5 s idle timeout; a kept-alive connection nobody waits behind stays usable."""
    with Webhook(world, "--workers", "2") as webhook:
        context = ssl.create_default_context(cafile=str(webhook.cert))
        idle = [http.client.HTTPSConnection("127.0.0.1", webhook.port, context=context, timeout=30) for _ in range(2)]
        try:
            for conn in idle:
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                assert resp.status == 200 and resp.getheader("Connection") != "close"
                resp.read()
            idle[0].request("GET", "/healthz")  # still the same connection: kept alive while nobody waits
            assert idle[0].getresponse().read() == b"ok\n"
            started = time.monotonic()
            resp = post(webhook, review(f"registry.example/app@{GOOD}"), timeout=10)
            took = time.monotonic() - started
            assert resp.status_code == 200 and resp.json()["response"]["allowed"] is True, resp.text
            assert took < 2, f"a new connection waited {took:.1f}s behind idle kept-alive ones"
            for conn in idle:  # they gave their worker up by parking, not closing: both still answer
                conn.request("GET", "/healthz")
                assert conn.getresponse().read() == b"ok\n"
        finally:
            for conn in idle:
                conn.close()


def test_a_connection_idle_past_the_idle_timeout_is_parked_not_closed_under_its_client(world: GateWorld) -> None:
    """The API server reuses a kept-alive connection whenever it likes (Go keeps it 90 s) and does not retry a
    POST that meets a connection closed under it: a review sent after 6 s of quiet (past the worker's 5 s wait)
    on the same connection is answered, and meanwhile the parked connection holds no worker."""
    with Webhook(world, "--workers", "1") as webhook:
        context = ssl.create_default_context(cafile=str(webhook.cert))
        conn = http.client.HTTPSConnection("127.0.0.1", webhook.port, context=context, timeout=30)
        try:
            conn.request("GET", "/healthz")
            assert conn.getresponse().read() == b"ok\n"
            time.sleep(6.5)
            started = time.monotonic()  # the one worker is free: the parked connection does not hold it
            assert post(webhook, review(f"registry.example/app@{GOOD}"), timeout=10).status_code == 200
            assert time.monotonic() - started < 2
            body = json.dumps(review(f"registry.example/app@{GOOD}"))
            conn.request("POST", "/validate", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            assert resp.status == 200 and json.loads(resp.read())["response"]["allowed"] is True
        finally:
            conn.close()


def _client_hello() -> bytes:
    """The first bytes a real TLS client sends (its ClientHello record), from an in-memory handshake."""
    tls = ssl.create_default_context().wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(),
                                                server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[0] == 0x16 and len(hello) > 100  # a handshake record, long enough to trickle for minutes
    return hello


def _trickle_until_closed(sock: socket.socket, data: bytes, deadline: float) -> float | None:
    """Send data a byte every half second until the server closes sock; when it did, or None by deadline."""
    for byte in data:
        if time.monotonic() > deadline:
            return None
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return time.monotonic()
        if not _closed_before(sock, time.monotonic() + 0.5):
            continue
        return time.monotonic()
    return None


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes sock (EOF or reset) within seconds; bytes before (a TLS alert) are skipped."""
    deadline = time.monotonic() + seconds
    try:
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            if sock.recv(4096) == b"":
                return True
            if time.monotonic() >= deadline:
                return False
    except TimeoutError:
        return False
    except OSError:
        return True


def _closed_before(sock: socket.socket, deadline: float) -> bool:
    return closed_within(sock, deadline - time.monotonic())
