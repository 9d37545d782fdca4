"""A small loopback TCP load balancer that plays a Kubernetes Service in front of webhook replicas.

Each backend (a port on 127.0.0.1) has its own health checker that asks its `GET /readyz` over TLS every
`interval` seconds (0.15 by default, the role of the kubelet's readinessProbe and of the endpoint controller
together, only faster): one 200 makes it ready, anything else (503, a refused connection, a timeout) makes it
not ready. A new connection goes to the next ready backend, round robin, and is then relayed byte for byte
in both directions (TLS stays end to end, as through kube-proxy); a backend that closes its side has that
close passed on at once, so a client never writes into a connection nobody will read. With no ready
backend, or a backend that refuses the connect, the client's connection is closed: there is no retry, as
with kube-proxy, so a test through it sees every failure a real Service would cause.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

READYZ = b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


@dataclass
class Backend:
    port: int
    ready: bool = False
    connections: int = 0  # client connections sent to it
    stop: threading.Event = field(default_factory=threading.Event)


class LoadBalancer:
    """`LoadBalancer(ca)`: listens on 127.0.0.1:port; `add(port)`, `remove(port)`, `close()` (also `with`)."""

    def __init__(self, ca: Path, *, interval: float = 0.15) -> None:
        self.interval = interval
        self.context = ssl.create_default_context(cafile=str(ca))
        self.backends: dict[int, Backend] = {}
        self.events: list[tuple[float, int, bool]] = []  # (monotonic time, port, ready) at each change
        self.refused = 0  # client connections closed for want of a ready backend, or a refused connect
        self._lock = threading.Lock()
        self._next = 0
        self._open: set[socket.socket] = set()
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"https://127.0.0.1:{self.port}"
        self._threads = [threading.Thread(target=self._accept, name="lb-accept", daemon=True)]
        self._threads[0].start()

    # ------------------------------------------------------------ backends and their health checks

    def add(self, port: int) -> Backend:
        backend = Backend(port)
        with self._lock:
            self.backends[port] = backend
        thread = threading.Thread(target=self._check, args=(backend,), name=f"lb-check-{port}", daemon=True)
        thread.start()
        self._threads.append(thread)
        return backend

    def remove(self, port: int) -> None:
        with self._lock:
            backend = self.backends.pop(port, None)
        if backend is not None:
            backend.stop.set()

    def ready_ports(self) -> list[int]:
        with self._lock:
            return [b.port for b in self.backends.values() if b.ready]

    def wait(self, port: int, ready: bool, timeout: float = 30) -> float:
        """Wait until the backend's readiness is `ready`; returns the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            with self._lock:
                backend = self.backends.get(port)
            if backend is not None and backend.ready == ready:
                return time.monotonic() - started
            time.sleep(0.02)
        raise AssertionError(f"backend {port} not {'ready' if ready else 'unready'} within {timeout} s")

    def _check(self, backend: Backend) -> None:
        while not backend.stop.is_set() and not self._closed.is_set():
            ready = self.probe(backend.port)
            with self._lock:
                if ready != backend.ready:
                    self.events.append((time.monotonic(), backend.port, ready))
                backend.ready = ready
            backend.stop.wait(self.interval)

    def probe(self, port: int, timeout: float = 1.0) -> bool:
        """One readiness probe: GET /readyz over TLS, verified against the CA; True only for HTTP 200."""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw, \
                    self.context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(READYZ)
                head = tls.recv(64)
            return head.startswith((b"HTTP/1.1 200 ", b"HTTP/1.0 200 "))
        except (OSError, ValueError):
            return False

    # ------------------------------------------------------------ relaying connections

    def _pick(self) -> Backend | None:
        with self._lock:
            ready = [b for b in self.backends.values() if b.ready]
            if not ready:
                return None
            self._next += 1
            chosen = ready[self._next % len(ready)]
            chosen.connections += 1
            return chosen

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            backend = self._pick()
            upstream = None
            if backend is not None:
                try:
                    upstream = socket.create_connection(("127.0.0.1", backend.port), timeout=2)
                    upstream.settimeout(None)
                except OSError:
                    upstream = None
            if upstream is None:
                with self._lock:
                    self.refused += 1
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            pumps_left = [2]  # the second pump to finish closes both sockets
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, pumps_left), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, pumps_left: list[int]) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)  # pass the close on at once
            with self._lock:
                pumps_left[0] -= 1
                last = pumps_left[0] == 0
                if last:
                    self._open.discard(src)
                    self._open.discard(dst)
            if last:
                src.close()
                dst.close()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            for backend in self.backends.values():
                backend.stop.set()
            sockets = list(self._open)
            self._open.clear()
        self._listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> LoadBalancer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
