"""The bounded serving model every resident gate server shares (hook server, Docker plugin, webhook).

Sized for a node's or a cluster's bursts (every pod of a rebooted node starting at once, a Deployment scaled
up): a listen backlog of 1024 (the kernel caps it at net.core.somaxconn), so a connect never fails while the
server is up; one acceptor thread (serve_forever's) that only hands connections on, never reads from them;
a bounded pool of worker threads; and a bounded queue of accepted connections waiting for a worker. Whatever
a connection needs before its request can be read (the webhook's TLS handshake) happens in the worker, within
`open_connection`'s deadline, never in the acceptor.

When that queue is full, the connection goes to a small refusal path of its own (REFUSERS threads, a queue
of REFUSAL_QUEUE): it is opened there too, within BUSY_TIMEOUT, its request read (so the client is not reset
mid-write) and answered with the server's `busy_reply`, a 503 with a one-line reason, so the caller fails
closed with a message instead of a timeout. If even that queue is full, the connection is closed unanswered
(the caller fails closed all the same). Nothing here grows without bound, and nothing prints: the decision
log is the record.

A kept-alive connection must not hold a worker others wait for: between requests a worker waits
`idle_timeout` at most, or less as soon as another connection waits with no worker free, and then parks the
connection (notary.gate.frontends.parking) instead of closing it: a client reusing it never meets a
connection closed under it. A reply made while others wait says `Connection: close`.
"""

from __future__ import annotations

import contextlib
import queue
import select
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, TypeAlias, cast

from notary.errors import UsageError
from notary.gate.frontends.fds import fit_fd_limit, park_room
from notary.gate.frontends.parking import Parking

if TYPE_CHECKING:
    from notary.gate.metrics import Metrics

# socketserver's types for what it hands a server: a request (a socket, or for a datagram server a (data,
# socket) pair) and the peer's address (a host and port, a unix path: socketserver leaves it untyped). A pooled
# server is a stream server: its request is the connected socket, which is what this module keeps.
Request: TypeAlias = "socket.socket | tuple[bytes, socket.socket]"
Waiting: TypeAlias = "tuple[socket.socket, object]"

LISTEN_BACKLOG = 1024
DEFAULT_WORKERS = 16
DEFAULT_QUEUE = 512
REFUSERS = 2  # threads answering "busy" when the queue is full
REFUSAL_QUEUE = 64  # connections waiting for that answer; beyond it a connection is closed unanswered
BUSY_TIMEOUT = 2.0  # a refused connection gets this long to be opened, and for each read of its request
MAX_BUSY_BODY = 4 << 20  # an AuthZReq carries a base64 body of up to 1 MiB
SLOW_UNDER_PRESSURE = 1.0  # seconds a request may take to arrive while others wait for its worker
DEADLINE_CHECK = 0.25  # how often late requests are looked for (a deadline is kept to this much)
HANDOVER_CHECK = 0.05  # how often an idle kept-alive connection looks whether others wait for its worker


class BusyReply:
    """What the server answers when its queue is full: status, headers and body."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {"Content-Type": "text/plain; charset=utf-8"}


class PooledServer(socketserver.BaseServer):
    """Mixin (before the socketserver class) replacing thread-per-connection with the bounded pool.

    A server calls `init_pool` before it binds (a bad size is a UsageError before anything listens) and
    `start_pool` once it listens; its server_close drains the queues and stops the threads."""

    request_queue_size = LISTEN_BACKLOG
    workers: int
    queue_size: int

    def init_pool(self, workers: int, queue_size: int) -> None:
        if workers < 1 or queue_size < 1:
            raise UsageError("a gate server needs at least one worker and a queue of at least one")
        self.workers = workers
        self.queue_size = fit_fd_limit(workers, queue_size, REFUSERS + REFUSAL_QUEUE)
        self._pending: queue.Queue[Waiting | None] = queue.Queue(maxsize=self.queue_size)
        self._refusals: queue.Queue[Waiting | None] = queue.Queue(maxsize=REFUSAL_QUEUE)
        self._threads: list[threading.Thread] = []
        self._idle_workers = 0  # workers waiting for a connection (starved() is pending with none of them)
        self._idle_lock = threading.Lock()
        self._deadlines: dict[socket.socket, tuple[float, float]] = {}  # connection -> (its request's start, deadline)
        self._deadline_lock = threading.Lock()
        self._stopped = threading.Event()
        self._parking = Parking(park_room(workers, self.queue_size, REFUSERS + REFUSAL_QUEUE), self._resume_parked, self.shutdown_request)
        self._park_lock = threading.Lock()
        self._to_park: set[socket.socket] = set()  # connections whose handler asked to park them when it is done
        self._resumed: set[socket.socket] = set()  # parked connections back in the queue: already open

    def start_pool(self) -> None:
        for i in range(self.workers):
            self._spawn(self._work, f"notary-gate-worker-{i}")
        for i in range(REFUSERS):
            self._spawn(self._refuse, f"notary-gate-busy-{i}")
        self._spawn(self._reap, "notary-gate-deadlines")
        self._spawn(self._parking.run, "notary-gate-parking")

    # ------------------------------------------------------------ parked kept-alive connections

    def mark_park(self, conn: socket.socket) -> None:
        """Called by a handler: park conn once the handler is done with it (its worker then parks it)."""
        with self._park_lock:
            self._to_park.add(conn)

    def parked(self) -> int:
        return self._parking.parked()

    def _resume_parked(self, request: socket.socket, client_address: object) -> None:
        """A parked connection is readable: back to the queue, to a worker that skips opening it."""
        with self._park_lock:
            self._resumed.add(request)
        try:
            self._pending.put_nowait((request, client_address))
            return
        except queue.Full:
            pass
        try:  # its request is on the way: answer it busy, as a new connection would be, never close it mute
            self._refusals.put_nowait((request, client_address))
        except queue.Full:
            with self._park_lock:
                self._resumed.discard(request)
            self.shutdown_request(request)

    def close_parked(self) -> None:
        """Close every parked connection and park no more (a server about to exit: they would only hold its
        drain open)."""
        self._parking.stop()

    # ------------------------------------------------------------ request deadlines

    def watch(self, conn: socket.socket, seconds: float) -> None:
        """From now, conn's request (line, headers, body) must be read within seconds, however slowly it
        trickles in: a socket timeout bounds one read, not a request sent a byte at a time."""
        now = time.monotonic()
        with self._deadline_lock:
            self._deadlines[conn] = (now, now + seconds)

    def unwatch(self, conn: socket.socket) -> None:
        with self._deadline_lock:
            self._deadlines.pop(conn, None)

    def _reap(self) -> None:
        """Shut down the sockets of requests past their deadline, and, while connections wait for a worker
        none is free to take, of requests still being sent after SLOW_UNDER_PRESSURE (a real client sends a
        review in milliseconds; a client trickling bytes to hold workers is dropped as soon as it costs
        anyone a wait). The worker's blocked read returns, the connection closes unanswered (its caller fails
        closed), and the worker serves the next one."""
        while not self._stopped.wait(DEADLINE_CHECK):
            now = time.monotonic()
            pressed = self.starved()
            with self._deadline_lock:
                late = [conn for conn, (start, deadline) in self._deadlines.items()
                        if deadline <= now or (pressed and now - start > SLOW_UNDER_PRESSURE)]
                for conn in late:
                    del self._deadlines[conn]
            for conn in late:
                with contextlib.suppress(OSError):
                    # the plain socket's shutdown, also under TLS: SSLSocket.shutdown would drop the TLS
                    # object the worker's read is using
                    socket.socket.shutdown(conn, socket.SHUT_RDWR)

    def _spawn(self, target: Callable[[], object], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # ------------------------------------------------------------ the acceptor (serve_forever's thread)

    def process_request(self, request: Request, client_address: object) -> None:
        """Queue the connection for a worker; never block the acceptor."""
        conn = cast(socket.socket, request)  # a stream server's request is its connected socket
        try:
            self._pending.put_nowait((conn, client_address))
            return
        except queue.Full:
            pass
        try:
            self._refusals.put_nowait((conn, client_address))
        except queue.Full:
            self.shutdown_request(request)  # even the refusal path is saturated: close, the caller fails closed

    def starved(self) -> bool:
        """Whether a connection waits and no worker is free to take it: only then does an idle kept-alive
        connection give its worker up. (A connection is in the queue for a moment even when workers are free;
        closing idle connections then would race clients reusing them, and fail their reviews.)"""
        with self._idle_lock:
            return self._idle_workers == 0 and self._pending.qsize() > 0

    def pending(self) -> int:
        """Accepted connections waiting for a worker."""
        return self._pending.qsize()

    # ------------------------------------------------------------ workers and refusers

    def open_connection(self, request: socket.socket, seconds: float) -> bool:
        """Make an accepted connection ready for its request, within seconds (the webhook: its TLS handshake);
        False closes it unanswered. Runs in a worker or refuser, never in the acceptor."""
        return True

    def _work(self) -> None:
        timeout = float(getattr(self.RequestHandlerClass, "timeout", None) or BUSY_TIMEOUT)
        self._serve_from(self._pending, timeout, self.finish_request)

    def _refuse(self) -> None:
        self._serve_from(self._refusals, BUSY_TIMEOUT, lambda request, address: BusyHandler(request, address, self))

    def _serve_from(self, waiting: queue.Queue[Waiting | None], seconds: float,
                    handle: Callable[[socket.socket, object], object]) -> None:
        """Open and handle connections from waiting until a stop sign (None); every one is closed after."""
        while True:
            counted = waiting is self._pending
            if counted:
                with self._idle_lock:
                    self._idle_workers += 1
            try:
                item = waiting.get()
            finally:
                if counted:
                    with self._idle_lock:
                        self._idle_workers -= 1
            if item is None:
                return
            request, client_address = item
            with self._park_lock:
                resumed = request in self._resumed
                self._resumed.discard(request)
            handled = False
            try:
                self.watch(request, seconds)  # the handshake too: a TLS hello sent a byte at a time
                if resumed or self.open_connection(request, seconds):
                    handle(request, client_address)
                    handled = True
            except Exception:  # noqa: BLE001, S110 - the handler already answered (or refused), or the peer is gone
                pass
            finally:
                self.unwatch(request)
                with self._park_lock:
                    park = request in self._to_park
                    self._to_park.discard(request)
                if not (handled and park and counted and self._parking.park(request, client_address)):
                    self.shutdown_request(request)

    def busy_reply(self, method: str, path: str, body: bytes) -> BusyReply:
        """The answer when the queue is full (servers override it to speak their protocol, and log)."""
        return BusyReply(503, (f"notary: refused: the gate is busy ({self.workers} workers busy, "
                               f"{self.queue_size} requests waiting); try again\n").encode())

    def handle_error(self, request: Request, client_address: object) -> None:
        return  # library code never prints; every handler fails closed on its own

    def server_close(self) -> None:
        self._stopped.set()
        self._parking.stop()
        super().server_close()
        for waiting, threads in ((self._pending, self.workers), (self._refusals, REFUSERS)):
            while True:  # waiting connections: close them (their callers fail closed)
                try:
                    item = waiting.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    self.shutdown_request(item[0])
            for _ in range(threads):  # then one stop sign per thread
                with contextlib.suppress(queue.Full):
                    waiting.put_nowait(None)


class PooledHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 for a pooled server, with no access log (the decision log is the record).

    A worker serves one connection at a time, so a kept-alive connection must not hold it for long: between
    requests it waits `idle_timeout` at most, and gives the worker up at once when other connections wait for
    one; a reply made while others wait says `Connection: close` (`end_reply_headers`). Within a request,
    reads may take `timeout`."""

    protocol_version = "HTTP/1.1"
    timeout = 30.0
    idle_timeout = 5.0
    request_deadline = 30.0  # seconds to read a whole request; the decision after it is not counted
    server: PooledServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        return

    def handle(self) -> None:
        self.close_connection = True
        self._one_request()
        while not self.close_connection:
            if not self._next_request_arrives():
                self.server.mark_park(self.connection)  # idle: its worker parks it, never closes it under the client
                return
            self._one_request()

    def _one_request(self) -> None:
        self.server.watch(self.connection, self.request_deadline)
        try:
            self.handle_one_request()
        finally:
            self.server.unwatch(self.connection)

    def parse_request(self) -> bool:
        """The request line and headers are read: a request without a body is now wholly read."""
        parsed = super().parse_request()
        if parsed and self.command not in ("POST", "PUT"):
            self.server.unwatch(self.connection)
        return parsed

    def read_body(self, length: int) -> bytes:
        """The body (length bytes, already bounded by the caller), read within the request's deadline."""
        body = self.rfile.read(length)
        self.server.unwatch(self.connection)
        return body

    def _next_request_arrives(self) -> bool:
        """Whether the client sends (or closes) within idle_timeout, while nobody else waits for a worker."""
        if self._buffered():
            return True
        try:
            poller = select.poll()  # not select(): descriptors beyond 1024 are normal here
            poller.register(self.connection, select.POLLIN)
            deadline = time.monotonic() + self.idle_timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if poller.poll(min(left, HANDOVER_CHECK) * 1000):
                    return True  # a request, or the peer closing: handle_one_request reads which
                if self.server.starved():
                    return False  # hand the worker on; the client reconnects
        except (OSError, ValueError):
            return False

    def _buffered(self) -> bool:
        """Whether a next request has already been read from the socket (pipelined, or held by TLS)."""
        conn = self.connection
        if isinstance(conn, ssl.SSLSocket) and conn.pending():
            return True
        try:
            conn.settimeout(0.0)
            return bool(self.rfile.peek(1))  # type: ignore[attr-defined]  # socketserver's rfile is a BufferedReader
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except OSError:
            return False
        finally:
            with contextlib.suppress(OSError):
                conn.settimeout(self.timeout)

    def end_reply_headers(self) -> None:
        """end_headers, closing the connection after this reply when others wait for a worker."""
        if self.server.starved():
            self.send_header("Connection", "close")
        self.end_headers()

    def send_body(self, code: int, body: bytes, headers: Mapping[str, str], *, close: bool = False) -> None:
        """One whole reply (headers name its Content-Type). close: the connection ends after it; otherwise it
        ends when others wait for a worker (end_reply_headers)."""
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.end_headers()
        else:
            self.end_reply_headers()
        self.wfile.write(body)

    def send_metrics(self, metrics: Metrics) -> None:
        """GET /metrics: the Prometheus text exposition (notary.gate.metrics), on the server's own socket."""
        from notary.gate.metrics import CONTENT_TYPE

        self.send_body(200, metrics.render().encode(), {"Content-Type": CONTENT_TYPE})


class BusyHandler(PooledHandler):
    """Reads one request (bounded in size and time) and answers the server's busy reply, then closes."""

    timeout = BUSY_TIMEOUT

    def address_string(self) -> str:
        return str(self.client_address[0]) if isinstance(self.client_address, tuple) else "peer"

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()

    def _busy(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = 0
        body = self.rfile.read(length) if 0 < length <= MAX_BUSY_BODY else b""
        reply = self.server.busy_reply(self.command, self.path.split("?", 1)[0], body)
        self.send_body(reply.status, reply.body, reply.headers, close=True)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _busy  # noqa: N815 - stdlib naming


def tls_handshake(sock: ssl.SSLSocket, seconds: float) -> bool:
    """The server side of a TLS handshake, all of it within seconds (CPython's do_handshake holds the socket's
    timeout as one deadline for the whole handshake, not per read): a client that never sends its
    ClientHello, or trickles it a byte at a time, holds a worker no longer than that. False: no handshake."""
    try:
        sock.settimeout(seconds)
        sock.do_handshake()
        return True
    except (OSError, ValueError):  # ssl.SSLError is an OSError: a bad ClientHello, plain HTTP, a reset, timeout
        return False
