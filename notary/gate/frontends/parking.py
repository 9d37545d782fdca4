"""Idle kept-alive connections, parked without a worker until their next request (notary.gate.frontends.pool).

The API server, dockerd and the hook clients keep connections alive between requests, and do not retry a POST
that meets a connection the server closed at the same moment: a server that closes idle connections loses a
review now and then, and the pod it was for is refused. So the gate never closes an idle connection while the
client may still use it: after a short wait in its worker (a busy client's next request comes at once), the
connection is parked here, one thread watching every parked socket with the kernel's poller, and goes back to
the worker queue the moment it is readable (a request, or the client closing). Only after PARK_IDLE, longer
than the clients' own idle timeouts (Go's HTTP transport, which the API server uses: 90 s), is a parked
connection closed, by which time its client has closed it first.

Bounded: at most `capacity` parked connections (a descriptor each, counted in the server's open-file budget);
past it an idle connection is closed as before. Nothing prints.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import cast

PARK_IDLE = 120.0  # seconds a parked connection may stay idle (beyond Go's 90 s IdleConnTimeout)
TICK = 1.0  # how often expiry is looked at when nothing happens


class Parking:
    """Parked connections; `resume(request, address)` is called (from the parking thread) when one is readable,
    `close(request)` when one expires or the parking stops."""

    def __init__(self, capacity: int, resume: Callable[[socket.socket, object], None],
                 close: Callable[[socket.socket], None],
                 idle: float = PARK_IDLE) -> None:
        self.capacity = capacity
        self.idle = idle
        self._resume = resume
        self._close = close
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._incoming: list[tuple[socket.socket, object]] = []
        self._count = 0  # parked and incoming
        self._stopped = False

    def park(self, request: socket.socket, address: object) -> bool:
        """Take request until it is readable; False (the caller closes it) when full or stopped."""
        with self._lock:
            if self._stopped or self._count >= self.capacity:
                return False
            self._incoming.append((request, address))
            self._count += 1
        self._wake()
        return True

    def parked(self) -> int:
        with self._lock:
            return self._count

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # a full wake pipe already wakes the thread
            self._wake_write.send(b"\0")

    def run(self) -> None:
        """The parking thread: the only one touching the selector."""
        while True:
            with self._lock:
                if self._stopped:
                    break
                incoming, self._incoming = self._incoming, []
            now = time.monotonic()
            for request, address in incoming:
                try:
                    self._selector.register(request, selectors.EVENT_READ, (address, now + self.idle))
                except (OSError, ValueError, KeyError):  # closed meanwhile, or a descriptor already watched
                    with self._lock:
                        self._count -= 1
                    self._drop(request)
            for key, _ in self._selector.select(TICK):
                if key.data is None:
                    with contextlib.suppress(OSError):
                        while self._wake_read.recv(4096):
                            pass
                    continue
                conn = cast(socket.socket, key.fileobj)  # only sockets are registered (and the wake pipe)
                self._unpark(conn)
                self._resume(conn, key.data[0])
            now = time.monotonic()
            for key in [k for k in self._selector.get_map().values() if k.data is not None and k.data[1] <= now]:
                conn = cast(socket.socket, key.fileobj)
                self._unpark(conn)
                self._drop(conn)
        self._shut()

    def _unpark(self, request: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(request)
        with self._lock:
            self._count -= 1

    def _drop(self, request: socket.socket) -> None:
        with contextlib.suppress(Exception):
            self._close(request)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        self._wake()

    def _shut(self) -> None:
        with self._lock:
            leftover = [r for r, _ in self._incoming]
            self._incoming = []
        for key in list(self._selector.get_map().values()):
            if key.data is not None:
                leftover.append(cast(socket.socket, key.fileobj))
        for request in leftover:
            self._drop(request)
        self._selector.close()
        self._wake_read.close()
        self._wake_write.close()
