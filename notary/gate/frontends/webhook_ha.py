"""Readiness and graceful drain for `notary gate webhook`: what makes several replicas and a rolling update safe
with `failurePolicy: Fail` (docs/gate.md, "High availability").

Readiness (`GET /readyz`) answers 200 only while the server can decide: its policy is loaded (the process
does not start otherwise), the ledger opens and its current head verifies against the gate's trusted state
(signature, consistency, no rollback: `Gate.verified_head`, the first step of every decision's reads), and it
is not draining. The answer is cached for `READY_TTL` seconds and computed by one probe at a time, so any
number of probes costs the ledger at most one head read per second. Liveness (`/healthz`) stays trivial: a
broken ledger must take a replica out of the Service, not restart it in a loop.

Drain, on SIGTERM (Kubernetes deleting the pod, systemd stopping the unit): /readyz says 503 at once; reviews
in flight and new ones are served as before for `drain` seconds (while the endpoint removal reaches the API
server and every kube-proxy), every reply meanwhile saying `Connection: close` so kept-alive clients reconnect
to a ready replica; then the listener stops accepting, connections already in its backlog are still taken
and answered, the listening socket is closed, and reviews in flight get `FINISH_BOUND` seconds more to be
answered. Then the process exits 0. A second SIGTERM ends the drain period early; Ctrl-C stops at once. The
whole is bounded by drain + FINISH_BOUND (+1 s): a drain never waits forever.
"""

from __future__ import annotations

import select
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from notary.errors import NotaryError, UsageError

if TYPE_CHECKING:
    from notary.gate.decision import Gate
    from notary.gate.frontends.pool import Request
    from notary.gate.metrics import ServerLog

DEFAULT_DRAIN = 5.0  # deployment.yaml: terminationGracePeriodSeconds 30 > drain + FINISH_BOUND
MAX_DRAIN = 600.0
READY_TTL = 1.0  # seconds a readiness answer is reused
CLOSE_BOUND = 2.0  # seconds the exit waits for a ledger read still running (then exits without it)
STALE_AFTER = 3  # TTLs after which a probe still running makes the answer "not ready"
ACCEPT_BOUND = 1.0  # seconds the exit spends taking connections the backlog still holds
FINISH_BOUND = 15.0  # after the drain: the handler's socket timeout (the API server gives up after 10 s anyway)
CONFIG_KEY = "webhook_drain_seconds"  # [gate] in notary.toml


class Readiness:
    """Whether the server can decide now, from probe() (raises why not), cached for ttl seconds."""

    def __init__(self, probe: Callable[[], str], *, ttl: float = READY_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.probe = probe
        self.ttl = ttl
        self.clock = clock
        self.draining = threading.Event()
        self._lock = threading.Lock()
        self._at: float | None = None
        self._answer: tuple[bool, str] = (False, "not probed yet")

    def state(self) -> tuple[bool, str]:
        """(ready, why): never ready while draining; else the cached probe answer, probed again when stale."""
        if self.draining.is_set():
            return False, "draining: shutting down, new reviews go to the other replicas"
        # one probe at a time, and never waited for: a probe arriving while one runs gets the last answer,
        # or "not ready" once that is stale, so a ledger read that hangs cannot pile probes onto the workers
        if not self._lock.acquire(blocking=False):
            if self._at is not None and self.clock() - self._at < STALE_AFTER * self.ttl:
                return self._answer
            return False, "cannot decide: the last readiness probe has not returned"
        try:
            now = self.clock()
            if self._at is None or now - self._at >= self.ttl:
                self._answer = self._probe()
                self._at = self.clock()
            return self._answer
        finally:
            self._lock.release()

    def _probe(self) -> tuple[bool, str]:
        try:
            return True, self.probe()
        except NotaryError as exc:
            return False, f"cannot decide: {exc.kind}: {exc.one_line()}"
        except Exception as exc:  # noqa: BLE001 - anything unforeseen: not ready, and say what
            return False, f"cannot decide: {type(exc).__name__}: {exc}"


class Drainable(socketserver.BaseServer):
    """Mixin (first, before the pooled server) counting accepted connections until they are closed, so a
    drain knows when every one is answered; and the server's Readiness."""

    readiness: Readiness

    def init_drain(self, readiness: Readiness) -> None:
        self.readiness = readiness
        self._open_count = 0
        self._open_lock = threading.Lock()

    def process_request(self, request: Request, client_address: object) -> None:
        with self._open_lock:  # every accepted connection is closed by shutdown_request, exactly once
            self._open_count += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Request) -> None:
        try:
            super().shutdown_request(request)
        finally:
            with self._open_lock:
                self._open_count -= 1

    def accept_one(self) -> None:
        """Accept one connection from the listen backlog and queue it, as serve_forever's loop would."""
        self._handle_request_noblock()  # type: ignore[attr-defined]  # socketserver's step, untyped in typeshed

    def in_flight(self) -> int:
        """Connections accepted and not yet closed: waiting for a worker, in their handshake, or served."""
        return self._open_count


def head_probe(gate: Gate) -> Callable[[], str]:
    """The readiness probe of a gate: its ledger head, verified as a decision verifies it."""

    def probe() -> str:
        head = gate.verified_head()
        return f"ledger head verified at tree size {head.tree_size} (tx {head.tx})"

    return probe


def drain_seconds(flag: float | None, gate_section: Mapping[str, object] | None) -> float:
    """--drain-seconds, else [gate] webhook_drain_seconds, else DEFAULT_DRAIN; 0 to MAX_DRAIN."""
    if flag is not None:
        return float(flag)
    value = gate_section.get(CONFIG_KEY) if gate_section is not None else None
    if value is None:
        return DEFAULT_DRAIN
    if not isinstance(value, (int, float)) or not 0 <= value <= MAX_DRAIN:  # an int (notary.config checks)
        raise UsageError(f"[gate] {CONFIG_KEY} must be 0 to {MAX_DRAIN:.0f} seconds, not {value}")
    return float(value)


class DrainableServer(Protocol):
    """What a drain and finish ask of a server (the webhook's: a Drainable pooled TCP server)."""

    readiness: Readiness
    socket: socket.socket
    request_queue_size: int

    def serve_forever(self, poll_interval: float = ...) -> None: ...

    def shutdown(self) -> None: ...

    def server_close(self) -> None: ...

    def accept_one(self) -> None: ...

    def close_parked(self) -> None: ...

    def in_flight(self) -> int: ...


class Drain:
    """SIGTERM -> not ready, serve on for `seconds`, then stop accepting (server.shutdown)."""

    def __init__(self, server: DrainableServer, seconds: float, log: ServerLog) -> None:
        self.server = server
        self.seconds = seconds
        self.log = log
        self.started: float | None = None
        self._cut = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._signalled)

    def _signalled(self, *_: object) -> None:
        if self.started is not None:
            self._cut.set()  # a second SIGTERM: the drain period ends now (reviews in flight still finish)
            return
        self.begin()

    def begin(self) -> None:
        self.started = time.monotonic()
        self.server.readiness.draining.set()
        self.log.info(f"draining: /readyz says 503; serving {self.seconds:g} s more, then closing")
        threading.Thread(target=self._run, name="notary-webhook-drain", daemon=True).start()

    def _run(self) -> None:
        self._cut.wait(self.seconds)
        self.server.shutdown()  # serve_forever returns in the main thread, which finishes the drain


def finish(server: DrainableServer, bound: float = FINISH_BOUND) -> int:
    """After serve_forever: take what the listen backlog still holds, close the listener, and wait (at most
    bound seconds) for every accepted connection to be answered. Returns how many were still open."""
    # what the backlog held when the drain ended, not what a client keeps connecting: a flood of connects
    # must not hold the exit open (at most one backlog's worth of accepts, for at most ACCEPT_BOUND seconds)
    until, taken = time.monotonic() + ACCEPT_BOUND, 0
    try:
        while (taken < server.request_queue_size and time.monotonic() < until
               and select.select([server.socket], [], [], 0)[0]):
            server.accept_one()
            taken += 1
    except (OSError, ValueError):
        pass
    server.socket.close()
    server.close_parked()  # idle kept-alive connections: nothing to answer, closed now, not at the bound
    deadline = time.monotonic() + bound
    while server.in_flight() and time.monotonic() < deadline:
        time.sleep(0.02)
    return int(server.in_flight())


def serve(server: DrainableServer, the_gate: Gate, banner: str, log: ServerLog, seconds: float) -> None:
    """Serve until SIGTERM, drain, and return (exit 0); Ctrl-C stops without the drain period."""
    drain = Drain(server, seconds, log)
    drain.install()
    log.info(banner)
    left = 0
    try:
        server.serve_forever()
        left = finish(server)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if not the_gate.close(timeout=CLOSE_BOUND):
            log.warning(f"a ledger read still runs after {CLOSE_BOUND:.0f} s: exiting without closing the ledger")
        if left:
            log.warning(f"drain bound reached: {left} connection(s) still open were closed")
        took = f" after a {time.monotonic() - drain.started:.1f} s drain" if drain.started is not None else ""
        log.info("stopped" + took)
