"""Attacks on parked kept-alive connections (notary.gate.frontends.parking, pool.PooledServer.mark_park).

In-process tests run a small plain-HTTP PooledServer with short timeouts (so races around the idle timeout
can be repeated many times); process tests run the real webhook over TLS and look at /proc/<pid>/fd and
/proc/<pid>/task.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from http.server import HTTPServer
from pathlib import Path
from typing import Any

import pytest

from notary.gate.frontends.pool import PooledHandler, PooledServer
from notary.gate.frontends.unix_server import PrivateUnixServer, QuietUnixHandler
from notary.sources.base import Subject
from tests.support.runtimes import GateWorld, Webhook
from tests.test_gate_webhook_load import closed_within, post, review

GOOD = "sha256:" + "d1" * 32
HOLD = threading.Event()


# ------------------------------------------------------------------ an in-process pooled server


class _Handler(PooledHandler):
    idle_timeout = 0.3
    timeout = 5.0
    request_deadline = 3.0

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/hold":
            HOLD.wait(20)
        self.send_body(200, b"ok\n", {"Content-Type": "text/plain"})


class _Server(PooledServer, HTTPServer):
    def __init__(self, workers: int, queue_size: int) -> None:
        self.init_pool(workers, queue_size)
        super().__init__(("127.0.0.1", 0), _Handler)
        self.start_pool()


class _UnixHandler(QuietUnixHandler):
    idle_timeout = 0.3

    def do_GET(self) -> None:  # noqa: N802
        self.send_body(200, b"ok\n", {"Content-Type": "text/plain"})


@pytest.fixture
def server() -> Iterator[_Server]:
    HOLD.clear()
    srv = _Server(2, 8)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    HOLD.set()
    srv.shutdown()
    srv.server_close()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def _get(path: str = "/") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def _read_reply(sock: socket.socket, buf: bytearray) -> tuple[int, bytes] | None:
    """One HTTP reply from sock (buf holds bytes read ahead); None on EOF/reset before a whole reply."""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(v) for k, _, v in (x.partition(":") for x in lines[1:]) if k.lower() == "content-length")
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            rest += chunk
        del buf[:]
        buf += rest[length:]
        return status, rest[:length]
    except OSError:
        return None


def _wait(pred: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return bool(pred())


def _park(srv: _Server, n: int) -> list[socket.socket]:
    """n connections that each made one request and are now parked."""
    socks = []
    for _ in range(n):
        s = _connect(srv.server_address[1])
        s.sendall(_get())
        assert _read_reply(s, bytearray()) == (200, b"ok\n")
        socks.append(s)
    assert _wait(lambda: srv.parked() == n), srv.parked()
    return socks


# ------------------------------------------------------------------ in-process attacks


def test_parked_connection_is_resumed_and_answered(server: _Server) -> None:
    (s,) = _park(server, 1)
    for _ in range(3):
        s.sendall(_get())
        assert _read_reply(s, bytearray()) == (200, b"ok\n")
        assert _wait(lambda: server.parked() == 1)
    s.close()


def test_pipelined_requests_sent_right_at_park_time_are_not_lost(server: _Server) -> None:
    """Two pipelined requests sent at every moment around the worker's idle timeout (0.3 s): both answered."""
    s = _connect(server.server_address[1])
    buf = bytearray()
    s.sendall(_get())
    assert _read_reply(s, buf) == (200, b"ok\n")
    for i in range(30):
        time.sleep(0.24 + (i % 15) * 0.01)  # 0.24 .. 0.38 s: before, at and after the park
        s.sendall(_get() + _get())
        assert _read_reply(s, buf) == (200, b"ok\n"), i
        assert _read_reply(s, buf) == (200, b"ok\n"), i
    s.close()


def test_request_split_across_park_is_not_lost(server: _Server) -> None:
    """Half a request before the park, the rest after: the worker reads it all (it never parks mid-request)."""
    (s,) = _park(server, 1)
    s.sendall(b"GET / HTTP/1.1\r\nHo")
    time.sleep(0.5)
    s.sendall(b"st: x\r\n\r\n")
    assert _read_reply(s, bytearray()) == (200, b"ok\n")
    s.close()


def test_parked_client_trickling_a_request_is_cut_at_the_deadline(server: _Server) -> None:
    (s,) = _park(server, 1)
    start = time.monotonic()
    cut = None
    for byte in b"GET / HTTP/1.1\r\nX-Pad: " + b"a" * 200:
        try:
            s.sendall(bytes([byte]))
        except OSError:
            cut = time.monotonic() - start
            break
        if closed_within(s, 0.1):
            cut = time.monotonic() - start
            break
    assert cut is not None and cut < _Handler.request_deadline + 1.5, cut
    # and the other worker kept answering meanwhile; a new client is answered now
    (t,) = _park(server, 1)
    t.close()


def test_parked_half_close_and_reset_release_the_descriptor(server: _Server) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    socks = _park(server, 4)
    socks[0].shutdown(socket.SHUT_WR)
    assert closed_within(socks[0], 3), "a half-closed parked connection was not closed"
    socks[1].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    socks[1].close()  # RST
    socks[2].close()  # FIN
    assert _wait(lambda: server.parked() == 1)
    socks[3].close()
    socks[0].close()
    assert _wait(lambda: server.parked() == 0)
    assert _wait(lambda: len(os.listdir("/proc/self/fd")) <= fds), (len(os.listdir("/proc/self/fd")), fds)


def test_parked_garbage_gets_400_and_server_keeps_serving(server: _Server) -> None:
    (s,) = _park(server, 1)
    s.sendall(b"\x16\x03\x01\x00\x05hello\r\n\r\n")
    reply = _read_reply(s, bytearray())
    assert reply is None or reply[0] == 400
    assert closed_within(s, 3)
    (t,) = _park(server, 1)
    t.close()
    s.close()


def test_past_park_capacity_idle_connections_are_closed_and_new_clients_served(server: _Server) -> None:
    server._parking.capacity = 3
    socks = _park(server, 3)
    extra = []
    for _ in range(4):
        s = _connect(server.server_address[1])
        s.sendall(_get())
        assert _read_reply(s, bytearray()) == (200, b"ok\n")
        extra.append(s)
    for s in extra:
        assert closed_within(s, 3), "past capacity an idle connection must be closed, not kept"
    assert server.parked() == 3
    for s in socks:  # the parked ones still answer
        s.sendall(_get())
        assert _read_reply(s, bytearray()) == (200, b"ok\n")
    for s in socks + extra:
        s.close()


def test_parked_connection_expires_after_park_idle(server: _Server) -> None:
    server._parking.idle = 0.5
    (s,) = _park(server, 1)
    assert closed_within(s, 4), "a parked connection outlived PARK_IDLE"
    assert _wait(lambda: server.parked() == 0)
    s.close()


def test_server_close_with_parked_connections_closes_them_at_once() -> None:
    srv = _Server(2, 8)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    socks = _park(srv, 5)
    started = time.monotonic()
    srv.shutdown()
    srv.server_close()
    for s in socks:
        assert closed_within(s, 3)
        s.close()
    assert time.monotonic() - started < 3
    assert _wait(lambda: not any(t.name == "notary-gate-parking" and t.is_alive() for t in srv._threads), 3)


def test_parked_connections_resumed_into_a_full_queue_get_the_busy_answer_not_a_silent_close() -> None:
    """A parked connection whose next request arrives while the queue is full must be answered busy (503),
    as a new connection would be (process_request's refusal path): closing it drops a request already sent
    (for the webhook: a review lost, the pod refused with a transport error instead of the gate's Status)."""
    HOLD.clear()
    srv = _Server(1, 1)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        parked = _park(srv, 3)
        holder = _connect(srv.server_address[1])
        holder.sendall(_get("/hold"))  # the one worker is held in its handler
        time.sleep(0.3)
        queued = _connect(srv.server_address[1])
        queued.sendall(_get("/hold"))  # the queue of one is full
        time.sleep(0.3)
        fresh = _connect(srv.server_address[1])
        fresh.sendall(_get())
        assert _read_reply(fresh, bytearray())[0] == 503  # type: ignore[index]  # a new connection: busy
        for s in parked:
            s.sendall(_get())
        replies = [_read_reply(s, bytearray()) for s in parked]
        assert all(r is not None and r[0] == 503 for r in replies), replies
    finally:
        HOLD.set()
        srv.shutdown()
        srv.server_close()


def test_unix_server_parks_and_resumes(tmp_path: Path) -> None:
    path = str(tmp_path / "g.sock")
    srv = PrivateUnixServer(path, _UnixHandler, workers=1, queue_size=4)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        buf = bytearray()
        s.sendall(_get())
        assert _read_reply(s, buf) == (200, b"ok\n")
        assert _wait(lambda: srv.parked() == 1)
        s.sendall(_get() + _get())
        assert _read_reply(s, buf) == (200, b"ok\n")
        assert _read_reply(s, buf) == (200, b"ok\n")
        s.close()
        assert _wait(lambda: srv.parked() == 0)
    finally:
        srv.shutdown()
        srv.server_close()


def test_parked_burst_all_resumed_at_once_is_all_answered(server: _Server) -> None:
    socks = _park(server, 40)
    for s in socks:
        s.sendall(_get())
    replies = [_read_reply(s, bytearray()) for s in socks]
    lost = sum(r is None for r in replies)
    assert all(r is not None and r[0] in (200, 503) for r in replies), f"{lost} of 40 parked requests lost"
    for s in socks:
        s.close()


# ------------------------------------------------------------------ the real webhook over TLS


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> GateWorld:
    w = GateWorld(tmp_path_factory.mktemp("parking-attacks") / "world")
    w.notarize(Subject(GOOD, "registry.example/app", "oci-manifest"))
    return w


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _tls(webhook: Webhook) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=str(webhook.cert))
    return http.client.HTTPSConnection("127.0.0.1", webhook.port, context=context, timeout=30)


def _healthz(conn: http.client.HTTPSConnection) -> None:
    conn.request("GET", "/healthz")
    assert conn.getresponse().read() == b"ok\n"


def test_webhook_many_idle_clients_keep_threads_and_fds_bounded_and_new_clients_answered(world: GateWorld) -> None:
    with Webhook(world, "--workers", "2") as webhook:
        assert webhook.proc is not None
        pid = webhook.proc.pid
        assert post(webhook, review(f"registry.example/app@{GOOD}"), timeout=10).status_code == 200
        time.sleep(0.5)
        threads, fds = _threads(pid), _fds(pid)
        conns = [_tls(webhook) for _ in range(60)]
        try:
            for c in conns:
                _healthz(c)  # each of them then idles: parked (others wait) or after the 5 s wait
            started = time.monotonic()
            assert post(webhook, review(f"registry.example/app@{GOOD}"), timeout=10).status_code == 200
            assert time.monotonic() - started < 2
            assert _threads(pid) == threads
            assert fds + 55 <= _fds(pid) <= fds + 62, (fds, _fds(pid))
            for c in conns[:10]:  # parked TLS connections still answer
                _healthz(c)
        finally:
            for c in conns:
                c.close()
        assert _wait(lambda: _fds(pid) <= fds + 1, 5), (fds, _fds(pid))


def test_webhook_parked_tls_close_notify_garbage_and_reset(world: GateWorld) -> None:
    with Webhook(world, "--workers", "1") as webhook:
        assert webhook.proc is not None
        pid = webhook.proc.pid
        assert post(webhook, review(f"registry.example/app@{GOOD}"), timeout=10).status_code == 200
        time.sleep(0.3)
        fds = _fds(pid)
        a, b, c = _tls(webhook), _tls(webhook), _tls(webhook)
        for conn in (a, b, c):
            _healthz(conn)
        time.sleep(0.5)  # each parked as the next one waited for the one worker
        assert a.sock is not None and b.sock is not None and c.sock is not None
        try:
            raw_a = a.sock.unwrap()  # close_notify, TCP kept open: the server answers by closing
            assert closed_within(raw_a, 3), "a parked TLS connection sending close_notify was kept"
        except ssl.SSLEOFError:  # the server closed TCP without its own close_notify: closed all the same
            raw_a = a.sock
        raw_b = socket.socket(fileno=os.dup(b.sock.fileno()))
        raw_b.sendall(b"\x17\x03\x03\x00\x10" + os.urandom(16))  # a forged application-data record
        assert closed_within(raw_b, 3), "a parked TLS connection sending a bad record was kept"
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.sock.close()
        c.sock = None
        assert _wait(lambda: _fds(pid) <= fds + 1, 5) or True
        started = time.monotonic()
        assert post(webhook, review(f"registry.example/app@{GOOD}"), timeout=10).status_code == 200
        assert time.monotonic() - started < 2
        for s in (raw_a, raw_b):
            s.close()
        b.close()
        assert _wait(lambda: _fds(pid) <= fds, 5), (fds, _fds(pid))


def test_webhook_parked_tls_client_trickling_is_cut_at_the_request_deadline(world: GateWorld) -> None:
    with Webhook(world, "--workers", "2") as webhook:
        slow, other = _tls(webhook), _tls(webhook)
        _healthz(slow)
        _healthz(other)
        time.sleep(5.5)  # both parked after the worker's 5 s wait
        assert slow.sock is not None
        start = time.monotonic()
        cut = None
        body = json.dumps(review(f"registry.example/app@{GOOD}")).encode()
        head = f"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        for byte in head + body:
            try:
                slow.sock.sendall(bytes([byte]))  # one TLS record a byte
            except OSError:
                cut = time.monotonic() - start
                break
            slow.sock.settimeout(0.3)
            try:
                if slow.sock.recv(4096) == b"":
                    cut = time.monotonic() - start
                    break
            except TimeoutError:
                pass
            except (OSError, ssl.SSLError):
                cut = time.monotonic() - start
                break
            if time.monotonic() - start > 20:
                break
        assert cut is not None and cut < 12, cut  # request_deadline 10 s
        _healthz(other)  # the other worker was free meanwhile
        slow.close()
        other.close()


def test_webhook_sigterm_with_parked_connections_exits_promptly(world: GateWorld) -> None:
    """SIGTERM (drain 0): an idle parked connection is nobody's request in flight; the webhook must close it and
    exit at once, as it did when idle connections were closed after 5 s, not wait FINISH_BOUND (15 s) for it
    and then warn "drain bound reached"."""
    webhook = Webhook(world, "--workers", "1")
    assert webhook.proc is not None
    conns = [_tls(webhook) for _ in range(3)]
    try:
        for c in conns:
            _healthz(c)
        time.sleep(0.5)
        started = time.monotonic()
        webhook.proc.send_signal(signal.SIGTERM)
        try:
            webhook.proc.wait(timeout=30)
        finally:
            took = time.monotonic() - started
        log = webhook.log_path.read_text()
        assert "drain bound reached" not in log[-2000:], log[-2000:]
        assert took < 5, f"SIGTERM with 3 parked idle connections took {took:.1f}s to exit"
    finally:
        for c in conns:
            c.close()
        webhook.stop()
