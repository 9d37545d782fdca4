"""The webhook highly available: replicas rolled one at a time on a real kube-apiserver, none refusing wrongly.

There is no kubelet or controller manager here, so the test does what a Deployment with `strategy:
RollingUpdate, maxUnavailable: 0, maxSurge: 1` (docs/kubernetes/deployment.yaml) makes Kubernetes do: start a
new replica (a real `notary gate webhook` process), wait until it is ready, SIGTERM an old one, repeat. The
Service is tests/support/loadbalancer.py: it probes every replica's /readyz every 0.15 s and sends new
connections only to ready ones. docs/kubernetes/webhook.yaml is registered on the API server (failurePolicy:
Fail) pointing at it. All replicas share one certificate, one ledger and one trusted state, as the
Deployment's share a Secret and a ReadWriteMany volume.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from notary.gate.frontends.webhook_ha import FINISH_BOUND
from tests.support.kube import KubeClient, KubeCluster
from tests.support.loadbalancer import LoadBalancer
from tests.support.pushed_images import PushedImage, gate_world, pushed_images  # noqa: F401 - fixture
from tests.support.registry import registry  # noqa: F401 - fixture
from tests.support.runtimes import GateWorld, Webhook, self_signed_cert
from tests.test_kube_webhook import DENIED_BY, GATED, pod, webhook_configuration

DRAIN = 2.0  # --drain-seconds of the replicas rolled here (the manifest's is 5)
EXIT_BOUND = DRAIN + FINISH_BOUND + 3  # SIGTERM to exit: drain, in-flight reviews, interpreter exit


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    kube = KubeCluster(tmp_path_factory.mktemp("kube-ha"))
    try:
        kube.client.create_namespace(GATED)
        yield kube
    finally:
        kube.stop()


@pytest.fixture(scope="module")
def images(pushed_images: dict[str, PushedImage]) -> dict[str, PushedImage]:  # noqa: F811 - fixture
    return pushed_images


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, images: dict[str, PushedImage]) -> GateWorld:
    return gate_world(tmp_path_factory.mktemp("kube-ha-gate") / "world", images, "CVE-2026-4343")


@pytest.fixture(scope="module")
def tls(world: GateWorld) -> tuple[Path, Path]:
    """The one serving certificate every replica mounts (the Deployment's TLS Secret)."""
    return self_signed_cert(world.root / "replica-tls")


class Fleet:
    """The replicas of one webhook behind the load balancer; every one is stopped at the end."""

    def __init__(self, world: GateWorld, tls: tuple[Path, Path], service: LoadBalancer) -> None:
        self.world, self.tls, self.service = world, tls, service
        self.replicas: list[Webhook] = []

    def start(self, *options: str) -> Webhook:
        """A new replica, returned once the Service counts it ready (its /readyz answered 200)."""
        hook = Webhook(self.world, "--insecure", "--drain-seconds", str(DRAIN), *options, tls_files=self.tls)
        self.replicas.append(hook)
        self.service.add(hook.port)
        self.service.wait(hook.port, ready=True)
        return hook

    def terminate(self, hook: Webhook) -> tuple[int, float, float]:
        """SIGTERM, as the kubelet sends it: (exit code, seconds until the Service saw it unready, seconds to
        exit). The replica leaves the Service once it has exited."""
        assert hook.proc is not None
        started = time.monotonic()
        hook.proc.terminate()
        unready = self.service.wait(hook.port, ready=False, timeout=EXIT_BOUND)
        code = hook.proc.wait(timeout=EXIT_BOUND)
        took = time.monotonic() - started
        self.service.remove(hook.port)
        return code, unready, took

    def stop_all(self) -> None:
        for hook in self.replicas:
            hook.stop()
            self.service.remove(hook.port)


@pytest.fixture(scope="module")
def service(tls: tuple[Path, Path]) -> Iterator[LoadBalancer]:
    with LoadBalancer(tls[0]) as lb:
        yield lb


@pytest.fixture
def fleet(world: GateWorld, tls: tuple[Path, Path], service: LoadBalancer) -> Iterator[Fleet]:
    replicas = Fleet(world, tls, service)
    try:
        yield replicas
    finally:
        replicas.stop_all()


@pytest.fixture(scope="module")
def kube(cluster: KubeCluster, world: GateWorld, tls: tuple[Path, Path], service: LoadBalancer,
         images: dict[str, PushedImage]) -> KubeClient:
    """docs/kubernetes/webhook.yaml registered, pointing at the Service, once the API server calls it."""
    client = cluster.client
    resp = client.create(webhook_configuration(client, tls[0], service.url))
    assert resp.status_code == 201, resp.text
    warm = Fleet(world, tls, service)
    try:
        warm.start()
        deadline = time.monotonic() + 60
        while True:
            probe = client.create(pod(images["unsigned"].tag_ref), dry_run=True)
            if probe.status_code == 403 and DENIED_BY in probe.json().get("message", ""):
                return client
            assert time.monotonic() < deadline, f"webhook never took effect: {probe.status_code} {probe.text}"
            time.sleep(0.5)
    finally:
        warm.stop_all()


class Creator:
    """Pods created through the API server in a loop (threads), trusted and untrusted in turn; every answer kept."""

    def __init__(self, client: KubeClient, trusted: list[str], untrusted: list[str], threads: int = 3) -> None:
        self.client, self.trusted, self.untrusted = client, trusted, untrusted
        self.results: list[tuple[bool, int, str, float]] = []  # (trusted?, status, message, when)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> Creator:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _loop(self, seed: int) -> None:
        n = seed
        while not self._stop.is_set():
            n += 1
            trusted = n % 2 == 0
            images = self.trusted if trusted else self.untrusted
            resp = self.client.create(pod(images[n % len(images)]))
            message = resp.json().get("message", "") if resp.status_code != 201 else ""
            with self._lock:
                self.results.append((trusted, resp.status_code, message, time.monotonic()))

    def count(self) -> int:
        with self._lock:
            return len(self.results)

    def wait_for(self, more: int, timeout: float = 60) -> None:
        target = self.count() + more
        deadline = time.monotonic() + timeout
        while self.count() < target:
            assert time.monotonic() < deadline, f"only {self.count()} pods created, wanted {target}"
            time.sleep(0.05)


# ---------------------------------------------------------------- the rolling update


def test_rolling_every_replica_refuses_no_trusted_pod(kube: KubeClient, fleet: Fleet, service: LoadBalancer,
                                                      images: dict[str, PushedImage], world: GateWorld) -> None:
    """Two replicas, rolled one at a time (start a new one, wait until ready, SIGTERM an old one) while three
    threads create Pods without pause: every trusted Pod is admitted (no webhook call error, no refusal),
    every untrusted one refused by notary, and every old replica exits 0 within its drain bound."""
    old = [fleet.start(), fleet.start()]
    trusted = [images["good"].tag_ref, images["good"].digest_ref]
    untrusted = [images["unsigned"].tag_ref, images["revoked"].digest_ref]
    stops = []
    started = time.monotonic()
    with Creator(kube, trusted, untrusted) as creator:
        creator.wait_for(10)
        for replica in old:
            new = fleet.start()  # maxSurge: 1, maxUnavailable: 0
            creator.wait_for(4)  # the new replica takes reviews while the old one still serves
            stops.append(fleet.terminate(replica))
            assert new.proc is not None and new.proc.poll() is None
        creator.wait_for(10)  # and after the roll, on the new replicas only
    rolled = time.monotonic() - started
    results = creator.results
    wrong = [(round(when - started, 2), status, message) for ok, status, message, when in results
             if ok and status != 201]
    events = [(round(when - started, 2), port, up) for when, port, up in service.events]
    assert not wrong, (f"{len(wrong)} of {len(results)} trusted pods not admitted during the roll: {wrong[:3]} "
                       f"(readiness changes: {events}; stops: {stops})")
    for ok, status, message, _ in results:
        if not ok:
            assert status == 403 and DENIED_BY in message, (status, message)
    for code, unready, took in stops:
        assert code == 0, f"an old replica exited {code}"
        assert unready < 1.0, f"the Service saw a draining replica ready for {unready:.2f} s"
        assert DRAIN <= took < EXIT_BOUND, f"an old replica took {took:.1f} s to exit (drain {DRAIN} s)"
    assert service.refused == 0, "a connection found no ready replica"
    assert sum(ok for ok, *_ in results) >= 15 and len(results) >= 30
    print(f"rolled 2 replicas in {rolled:.1f} s: {len(results)} pods created, stops {stops}")


def test_sigterm_with_reviews_in_flight_drops_none(kube: KubeClient, fleet: Fleet, service: LoadBalancer,
                                                  images: dict[str, PushedImage], tls: tuple[Path, Path]) -> None:
    """SIGTERM reaches a replica while reviews are in flight on it: those sent at once, a review whose body is
    only half written when the signal comes and finished after the listener has closed, and one sent on a new
    connection during the drain period. Every one is answered, rightly; the replica exits 0.

    The replica has a worker for every connection here: with fewer, the burst waits for workers, and a review
    still being sent after a second while others wait is dropped by design (the slow-sender defence of
    tests/test_gate_webhook_slow_clients.py), which on a busy machine would be the half-written ones."""
    hook = fleet.start("--workers", "48")
    context = ssl.create_default_context(cafile=str(tls[0]))
    good, bad = images["good"].tag_ref, images["unsigned"].tag_ref
    answers: dict[str, Any] = {}

    def send(image: str, key: str, pause_after: int | None = None, hold: threading.Event | None = None) -> None:
        body = json.dumps(review(image)).encode()
        head = (f"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        try:
            with socket.create_connection(("127.0.0.1", hook.port), timeout=30) as raw, \
                    context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
                data = head + body
                cut = len(data) if pause_after is None else pause_after
                conn.sendall(data[:cut])
                if hold is not None:
                    hold.wait(30)
                conn.sendall(data[cut:])
                answers[key] = read_response(conn)
        except OSError as exc:
            answers[key] = exc

    listener_closed = threading.Event()
    half = [threading.Thread(target=send, args=(good if i % 2 else bad, f"half-{i}", 200, listener_closed))
            for i in range(4)]
    for thread in half:
        thread.start()
    time.sleep(0.5)  # the half-written reviews are accepted and read up to their pause
    burst = [threading.Thread(target=send, args=(good if i % 2 else bad, f"burst-{i}")) for i in range(24)]
    for thread in burst:
        thread.start()
    assert hook.proc is not None
    started = time.monotonic()
    hook.proc.terminate()
    time.sleep(DRAIN / 2)
    assert requests.get(f"https://127.0.0.1:{hook.port}/readyz", verify=str(tls[0]), timeout=5).status_code == 503
    during = threading.Thread(target=send, args=(good, "during-drain"))
    during.start()
    while True:  # wait until the listener is closed: a new connection is refused
        try:
            socket.create_connection(("127.0.0.1", hook.port), timeout=1).close()
        except OSError:
            break
        assert time.monotonic() - started < DRAIN + 5, "the listener stayed open past the drain period"
        time.sleep(0.05)
    listener_closed.set()
    for thread in (*half, *burst, during):
        thread.join(timeout=60)
    code = hook.proc.wait(timeout=EXIT_BOUND)
    assert code == 0
    assert len(answers) == 29
    for key, answer in answers.items():
        assert isinstance(answer, tuple), f"{key}: {answer!r}"
        status, reply = answer
        assert status == 200, (key, status, reply)
        image = reply["response"]
        trusted = key == "during-drain" or int(key.split("-")[1]) % 2 == 1
        assert image["allowed"] is trusted, (key, reply)


def review(image: str) -> dict[str, Any]:
    obj = pod(image)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": str(uuid.uuid4()), "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "resource": {"group": "", "version": "v1", "resource": "pods"},
                        "name": obj["metadata"]["name"], "namespace": GATED, "operation": "CREATE",
                        "object": obj, "oldObject": None, "dryRun": False}}


def read_response(conn: ssl.SSLSocket) -> tuple[int, Any]:
    """(status, JSON body) of one HTTP/1.1 response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a response: {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        body += chunk
    return int(lines[0].split()[1]), json.loads(body)


# ---------------------------------------------------------------- readiness on the decision path


@pytest.fixture
def lone(tmp_path: Path, images: dict[str, PushedImage],
         tls: tuple[Path, Path]) -> Iterator[tuple[GateWorld, Webhook]]:
    """A replica with a ledger (and trusted state) of its own, to break."""
    own = gate_world(tmp_path / "world", images, "CVE-2026-4343")
    with Webhook(own, "--insecure", tls_files=tls) as hook:
        yield own, hook


def readyz(hook: Webhook) -> requests.Response:
    return requests.get(hook.url + "/readyz", verify=str(hook.cert), timeout=5)


def wait_unready(hook: Webhook, timeout: float = 5) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        resp = readyz(hook)
        if resp.status_code != 200 or time.monotonic() > deadline:
            return resp
        time.sleep(0.1)


def test_readyz_says_503_once_the_ledger_file_is_gone(lone: tuple[GateWorld, Webhook]) -> None:
    world, hook = lone
    ok = readyz(hook)
    assert ok.status_code == 200 and "ledger head verified" in ok.text, ok.text
    world.ledger_path.rename(world.ledger_path.with_suffix(".moved"))
    resp = wait_unready(hook)
    assert resp.status_code == 503 and "cannot decide" in resp.text, resp.text
    assert requests.get(hook.url + "/healthz", verify=str(hook.cert), timeout=5).status_code == 200  # not restarted


def test_readyz_says_503_once_the_ledger_head_is_tampered(lone: tuple[GateWorld, Webhook]) -> None:
    world, hook = lone
    assert readyz(hook).status_code == 200
    con = sqlite3.connect(world.ledger_path)
    try:
        (root,) = con.execute("SELECT root FROM txs ORDER BY tx DESC LIMIT 1").fetchone()
        con.execute("UPDATE txs SET root = ? WHERE tx = (SELECT MAX(tx) FROM txs)", (bytes([root[0] ^ 1]) + root[1:],))
        con.commit()
    finally:
        con.close()
    resp = wait_unready(hook)
    assert resp.status_code == 503 and "not signed by the ledger key" in resp.text, resp.text


def test_readyz_says_503_once_the_ledger_is_rolled_back(lone: tuple[GateWorld, Webhook],
                                                          images: dict[str, PushedImage]) -> None:
    """An older copy of the ledger put back: the replica's trusted state is ahead of it, a rollback."""
    world, hook = lone
    older = world.ledger_path.with_suffix(".older")
    shutil.copy(world.ledger_path, older)
    world.notarize(images["unsigned"].subject())  # the ledger moves on ...
    time.sleep(1.2)  # ... and the replica's cached readiness is probed again: it trusts the newer head
    assert readyz(hook).status_code == 200
    shutil.copy(older, world.ledger_path)
    resp = wait_unready(hook)
    assert resp.status_code == 503 and "cannot decide" in resp.text, resp.text


def test_broken_replica_leaves_the_service_and_the_other_takes_every_pod(
        kube: KubeClient, fleet: Fleet, service: LoadBalancer, images: dict[str, PushedImage],
        lone: tuple[GateWorld, Webhook]) -> None:
    """A replica whose ledger breaks (here: the file gone) stops saying ready and the Service stops sending
    it reviews; Pods keep being admitted by the healthy replica."""
    healthy = fleet.start()
    world, broken = lone
    service.add(broken.port)
    service.wait(broken.port, ready=True)
    world.ledger_path.rename(world.ledger_path.with_suffix(".moved"))
    service.wait(broken.port, ready=False, timeout=5)
    try:
        for _ in range(6):
            resp = kube.create(pod(images["good"].digest_ref))
            assert resp.status_code == 201, resp.text
        assert service.backends[healthy.port].connections >= 1
    finally:
        service.remove(broken.port)


# ---------------------------------------------------------------- readiness cache and drain settings


def test_flood_of_readiness_probes_reads_the_ledger_once_a_second() -> None:
    """Probes cannot flood the ledger: within READY_TTL every probe gets the cached answer, one probe at a time
    reads the head, and a draining server is unready without asking the ledger at all."""
    from notary.gate.frontends.webhook_ha import READY_TTL, Readiness

    reads: list[int] = []
    now = [100.0]

    def probe() -> str:
        time.sleep(0.05)  # a head read takes a moment: the other probes wait for its answer
        reads.append(1)
        return f"head read {len(reads)}"

    ready = Readiness(probe, clock=lambda: now[0])
    threads = [threading.Thread(target=ready.state) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reads) == 1 and ready.state()[0] is True
    now[0] += READY_TTL
    assert ready.state()[0] is True and len(reads) == 2
    ready.draining.set()
    assert ready.state() == (False, "draining: shutting down, new reviews go to the other replicas")
    assert len(reads) == 2


def test_drain_seconds_flag_wins_over_the_config_key_and_both_are_bounded(tmp_path: Path) -> None:
    from notary.config import load_config
    from notary.errors import UsageError
    from notary.gate.frontends.webhook_ha import DEFAULT_DRAIN, drain_seconds

    config = tmp_path / "notary.toml"
    config.write_text("[gate]\nwebhook_drain_seconds = 12\n")
    section = load_config(str(config)).section("gate")
    assert drain_seconds(None, section) == 12 and drain_seconds(0.5, section) == 0.5
    assert drain_seconds(None, {}) == DEFAULT_DRAIN
    with pytest.raises(UsageError, match="webhook_drain_seconds"):
        drain_seconds(None, {"webhook_drain_seconds": 601})
    config.write_text('[gate]\nwebhook_drain_seconds = "5s"\n')
    with pytest.raises(UsageError, match="gate.webhook_drain_seconds must be"):
        load_config(str(config))
