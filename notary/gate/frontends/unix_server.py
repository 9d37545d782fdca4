"""The unix-socket server under the Docker authorization plugin and the hook server.

Both are asked by root (dockerd, the container runtime) and act on what they are told with root's trust, so
the socket is created 0600 and nobody else can talk to them. A leftover socket from a crashed server is
replaced; a live one is never stolen.

Sized for a node's bursts (every pod of a rebooted node starting at once): a listen backlog of 1024 (the
kernel caps it at net.core.somaxconn), so a connect never fails while the server is up; one acceptor thread
that only hands connections on; a bounded pool of worker threads; and a bounded queue of accepted
connections waiting for a worker. When that queue is full, the connection goes to a small refusal path that
reads the request (so the client is not reset mid-write) and answers the server's `busy_reply`, a 503 with a
one-line reason: the caller fails closed with a message instead of a timeout. Nothing here grows without
bound, and nothing prints: the decision log is the record.
"""

from __future__ import annotations

import contextlib
import os
import queue
import resource
import socket
import socketserver
import stat
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from notary.errors import InputError, UsageError

LISTEN_BACKLOG = 1024
DEFAULT_WORKERS = 16
DEFAULT_QUEUE = 512
REFUSERS = 2  # threads answering "busy" when the queue is full
REFUSAL_QUEUE = 64  # connections waiting for that answer; beyond it a connection is closed unanswered
MAX_BUSY_BODY = 4 << 20  # an AuthZReq carries a base64 body of up to 1 MiB
FD_HEADROOM = 64  # the listening socket, the ledger, log files, Docker API connections


class BusyReply:
    """What the server answers when its queue is full: status, headers and body."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {"Content-Type": "text/plain; charset=utf-8"}


class PrivateUnixServer(socketserver.UnixStreamServer):
    """A 0600 unix-socket HTTP server with a bounded worker pool and a bounded queue of waiting connections."""

    request_queue_size = LISTEN_BACKLOG

    def __init__(self, path: str, handler: Any, *, dir_mode: int = 0o755, workers: int = DEFAULT_WORKERS,
                 queue_size: int = DEFAULT_QUEUE) -> None:
        if workers < 1 or queue_size < 1:
            raise UsageError("a gate server needs at least one worker and a queue of at least one")
        self.path = path
        self.workers = workers
        self.queue_size = _fit_fd_limit(workers, queue_size)
        self._pending: queue.Queue[tuple[Any, Any] | None] = queue.Queue(maxsize=self.queue_size)
        self._refusals: queue.Queue[Any] = queue.Queue(maxsize=REFUSAL_QUEUE)
        self._threads: list[threading.Thread] = []
        remove_stale_socket(path)
        os.makedirs(os.path.dirname(path) or ".", mode=dir_mode, exist_ok=True)
        old = os.umask(0o177)
        try:
            super().__init__(path, handler)
        finally:
            os.umask(old)
        for i in range(workers):
            self._spawn(self._work, f"notary-gate-worker-{i}")
        for i in range(REFUSERS):
            self._spawn(self._refuse, f"notary-gate-busy-{i}")

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # ------------------------------------------------------------ the acceptor (serve_forever's thread)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Queue the connection for a worker; never block the acceptor."""
        try:
            self._pending.put_nowait((request, client_address))
            return
        except queue.Full:
            pass
        try:
            self._refusals.put_nowait(request)
        except queue.Full:
            self.shutdown_request(request)  # even the refusal path is saturated: close, the caller fails closed

    def pending(self) -> int:
        return self._pending.qsize()

    # ------------------------------------------------------------ workers

    def _work(self) -> None:
        while True:
            item = self._pending.get()
            if item is None:
                return
            request, client_address = item
            try:
                self.finish_request(request, client_address)
            except Exception:  # noqa: BLE001, S110 - the handler already answered or the peer is gone
                pass
            finally:
                self.shutdown_request(request)

    def _refuse(self) -> None:
        while True:
            request = self._refusals.get()
            if request is None:
                return
            try:
                _BusyHandler(request, "", self)
            except Exception:  # noqa: BLE001, S110 - a refusal that cannot be delivered still refuses
                pass
            finally:
                self.shutdown_request(request)

    def busy_reply(self, method: str, path: str, body: bytes) -> BusyReply:
        """The answer when the queue is full (servers override it to speak their protocol, and log)."""
        return BusyReply(503, (f"notary: refused: the gate is busy ({self.workers} workers busy, "
                               f"{self.queue_size} requests waiting); try again\n").encode())

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # library code never prints; every handler fails closed on its own

    def server_close(self) -> None:
        super().server_close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        while True:  # waiting connections: close them (their callers fail closed)
            try:
                item = self._pending.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.shutdown_request(item[0])
        for _ in range(self.workers):
            with contextlib.suppress(queue.Full):
                self._pending.put_nowait(None)
        for _ in range(REFUSERS):
            with contextlib.suppress(queue.Full):
                self._refusals.put_nowait(None)


class QuietUnixHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 over the socket, with no access log (the decision log is the record).

    A worker serves one connection at a time, so a kept-alive connection must not hold it for long: between
    requests it waits `idle_timeout` at most, and a reply made while other connections wait in the queue says
    `Connection: close`, handing the worker on. Within a request, reads may take `timeout`."""

    protocol_version = "HTTP/1.1"
    timeout = 30.0
    idle_timeout = 5.0
    peer = "peer"  # unix sockets have no peer address; name who asks
    server: PrivateUnixServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def address_string(self) -> str:
        return self.peer

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection and self._next_request_arrives():
            self.handle_one_request()

    def _next_request_arrives(self) -> bool:
        try:
            self.connection.settimeout(self.idle_timeout)
            return bool(self.rfile.peek(1))  # type: ignore[attr-defined]  # socketserver's rfile is a BufferedReader
        except OSError:  # idle too long (TimeoutError), or the peer is gone
            return False
        finally:
            with contextlib.suppress(OSError):
                self.connection.settimeout(self.timeout)

    def end_reply_headers(self) -> None:
        """end_headers, closing the connection after this reply when others wait for a worker."""
        if self.server.pending() > 0:
            self.send_header("Connection", "close")
        self.end_headers()


def send_metrics(handler: BaseHTTPRequestHandler, metrics: Any) -> None:
    """GET /metrics: the Prometheus text exposition (notary.gate.metrics), on the server's own socket."""
    from notary.gate.metrics import CONTENT_TYPE

    body = metrics.render().encode()
    handler.send_response(200)
    handler.send_header("Content-Type", CONTENT_TYPE)
    handler.send_header("Content-Length", str(len(body)))
    end = getattr(handler, "end_reply_headers", handler.end_headers)
    end()
    handler.wfile.write(body)


class _BusyHandler(QuietUnixHandler):
    """Reads one request (bounded in size and time) and answers the server's busy reply, then closes."""

    server: PrivateUnixServer
    timeout = 2.0

    def _busy(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = 0
        body = self.rfile.read(length) if 0 < length <= MAX_BUSY_BODY else b""
        reply = self.server.busy_reply(self.command, self.path.split("?", 1)[0], body)
        self.close_connection = True
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _busy  # noqa: N815 - stdlib naming


def _fit_fd_limit(workers: int, queue_size: int) -> int:
    """The queue size the open-file limit allows (raising the soft limit up to the hard one if needed).

    Every waiting connection is an open descriptor; a server out of descriptors cannot accept, and the
    kernel's backlog then fills with connections nobody will answer in time."""
    need = workers + queue_size + REFUSERS + REFUSAL_QUEUE + FD_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft == resource.RLIM_INFINITY:
        return queue_size
    room = soft - workers - REFUSERS - REFUSAL_QUEUE - FD_HEADROOM
    if room < 1:
        raise UsageError(f"the open-file limit ({soft}) is too low for {workers} workers",
                         hint="raise LimitNOFILE or use fewer --workers")
    return min(queue_size, room)


def remove_stale_socket(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise InputError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: a leftover from a crashed server
        return
    finally:
        probe.close()
    raise InputError(f"another process already serves {path}")
