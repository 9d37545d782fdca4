"""Unauthenticated clients that send slowly cannot take the webhook's workers, and a ledger read that hangs
cannot take its probes or its exit: real `notary gate webhook` processes on loopback.

With `failurePolicy: Fail`, a replica whose workers are all held refuses every Pod of the cluster, and one
whose probes hang is restarted by the kubelet while the attacker just goes on: these are denial-of-service
attacks on the whole cluster, found in review.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.runtimes import GateWorld, Webhook

pytestmark = [pytest.mark.integration]


def _get(port: int, path: str, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


@pytest.fixture
def world(tmp_path: Path) -> GateWorld:
    found = GateWorld(tmp_path / "w")
    found.ensure_ledger()
    return found


@pytest.fixture
def webhook(world: GateWorld) -> Iterator[Webhook]:
    server = Webhook(world, "--workers", "4", "--queue", "64", tls=False)
    try:
        yield server
    finally:
        server.stop()


def test_clients_trickling_requests_cannot_hold_every_worker(webhook: Webhook) -> None:
    """Twice as many connections as workers, each sending its request line a byte a second (within any
    per-read timeout): the health endpoint and the probe still answer, promptly."""
    stop = threading.Event()
    cut: list[int] = []

    def trickle() -> None:
        with socket.create_connection(("127.0.0.1", webhook.port)) as s:
            for byte in b"GET /" + b"a" * 10_000:
                if stop.wait(1.0):
                    return
                try:
                    s.send(bytes([byte]))
                except OSError:
                    cut.append(1)
                    return

    threads = [threading.Thread(target=trickle, daemon=True) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        time.sleep(3)  # every worker is reading a trickle now
        for path in ("/healthz", "/readyz", "/healthz"):
            started = time.monotonic()
            assert _get(webhook.port, path).startswith(b"HTTP/1.1 200"), path
            assert time.monotonic() - started < 4, f"{path} waited behind the tricklers"
        assert cut, "no trickling connection was dropped to serve the waiting ones"
    finally:
        stop.set()
        for t in threads:
            t.join(5)


def test_a_request_sent_a_byte_at_a_time_is_cut_at_its_deadline(webhook: Webhook) -> None:
    """Even with workers to spare, a request must arrive within its deadline (10 s, the API server's own)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", webhook.port)) as s:
        s.settimeout(30)
        try:
            for byte in b"GET /" + b"a" * 100:
                s.send(bytes([byte]))
                time.sleep(0.5)
            pytest.fail("a 50 s request line was read to its end")
        except OSError:
            pass
    assert time.monotonic() - started < 14


def test_a_hung_ledger_read_neither_piles_up_probes_nor_blocks_the_exit(world: GateWorld) -> None:
    """The trusted state's lock held elsewhere (an NFS stall, a stuck replica): probes answer at once with
    "not ready" instead of waiting, and SIGTERM still ends the process within its bound."""
    server = Webhook(world, "--workers", "4", tls=False)
    holder = None
    try:
        assert _get(server.port, "/readyz").startswith(b"HTTP/1.1 200")
        time.sleep(1.2)  # past the readiness cache
        locks = sorted(world.gate_state.rglob("*.lock")) or sorted(p for p in world.gate_state.rglob("*")
                                                                   if p.is_file())
        assert locks, "no trusted state file to hold"
        holder = os.open(locks[0], os.O_RDWR)
        fcntl.flock(holder, fcntl.LOCK_EX)
        first = threading.Thread(target=lambda: _get(server.port, "/readyz", timeout=30), daemon=True)
        first.start()  # this probe hangs on the lock
        time.sleep(0.5)
        for _ in range(12):  # more probes than workers: each must answer, none may wait
            started = time.monotonic()
            reply = _get(server.port, "/readyz", timeout=5)
            assert time.monotonic() - started < 2
            assert reply.startswith((b"HTTP/1.1 200", b"HTTP/1.1 503")), reply[:80]
        time.sleep(3.5)  # the cached answer is stale now and the probe still runs: not ready
        assert _get(server.port, "/readyz", timeout=5).startswith(b"HTTP/1.1 503")
        assert _get(server.port, "/healthz", timeout=5).startswith(b"HTTP/1.1 200")
        assert server.proc is not None
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=30)
        assert time.monotonic() - started < 20, "the exit waited on the hung ledger read"
    finally:
        if holder is not None:
            os.close(holder)
        server.stop()


def test_a_connect_flood_during_shutdown_cannot_hold_the_exit_open() -> None:
    """Clients that connect faster than a loaded node accepts while the webhook stops: the exit takes at most
    one backlog's worth of what is waiting, for at most ACCEPT_BOUND, then closes the listener. The listener
    and the flood are real sockets; the node's load is each accept costing 2 ms."""
    from notary.gate.frontends import webhook_ha

    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    port = listener.getsockname()[1]
    stop = threading.Event()
    accepted = [0]

    class Loaded:
        socket = listener
        request_queue_size = 1024

        def accept_one(self) -> None:
            conn, _ = listener.accept()
            conn.close()
            accepted[0] += 1
            time.sleep(0.002)

        def in_flight(self) -> int:
            return 0

        def close_parked(self) -> None:
            return

    def flood() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                pass

    floods = [threading.Thread(target=flood, daemon=True) for _ in range(4)]
    for t in floods:
        t.start()
    try:
        time.sleep(0.3)
        left: list[int] = []
        finishing = threading.Thread(target=lambda: left.append(webhook_ha.finish(Loaded())), daemon=True)
        started = time.monotonic()
        finishing.start()
        finishing.join(timeout=10)
        assert not finishing.is_alive(), "the exit kept accepting the flood"
        assert time.monotonic() - started < webhook_ha.ACCEPT_BOUND + 1
        assert left == [0], "finish did not return: it failed on the server it was given"
        assert accepted[0] > 0, "nothing was taken from the backlog: the bound was never what ended the exit"
    finally:
        stop.set()
        for t in floods:
            t.join(timeout=5)
        listener.close()
