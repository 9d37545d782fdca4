"""The unix-socket server under the Docker authorization plugin and the hook server.

Both are asked by root (dockerd, the container runtime) and act on what they are told with root's trust, so
the socket is created 0600 and nobody else can talk to them. A leftover socket from a crashed server is
replaced; a live one is never stolen.

Bursts are the shared bounded model of `pool` (the webhook's too): a 1024-deep listen backlog, an acceptor
that only hands connections on, a bounded pool of workers, a bounded queue of waiting connections, and past
it a small refusal path answering the server's `busy_reply` (a 503 with a one-line reason), so the caller
fails closed with a message instead of a timeout.
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import stat

from notary.errors import InputError
from notary.gate.frontends.pool import (
    DEFAULT_QUEUE,
    DEFAULT_WORKERS,
    BusyReply,
    PooledHandler,
    PooledServer,
)

__all__ = ["DEFAULT_QUEUE", "DEFAULT_WORKERS", "BusyReply", "PrivateUnixServer", "QuietUnixHandler",
           "remove_stale_socket"]


class PrivateUnixServer(PooledServer, socketserver.UnixStreamServer):
    """A 0600 unix-socket HTTP server with a bounded worker pool and a bounded queue of waiting connections."""

    def __init__(self, path: str, handler: type[PooledHandler], *, dir_mode: int = 0o755, workers: int = DEFAULT_WORKERS,
                 queue_size: int = DEFAULT_QUEUE) -> None:
        self.path = path
        self.init_pool(workers, queue_size)
        remove_stale_socket(path)
        os.makedirs(os.path.dirname(path) or ".", mode=dir_mode, exist_ok=True)
        old = os.umask(0o177)
        try:
            super().__init__(path, handler)
        finally:
            os.umask(old)
        self.start_pool()

    def server_close(self) -> None:
        super().server_close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class QuietUnixHandler(PooledHandler):
    """HTTP/1.1 over the socket, with no access log (the decision log is the record); see PooledHandler for
    how a kept-alive connection hands its worker on."""

    peer = "peer"  # unix sockets have no peer address; name who asks
    server: PrivateUnixServer

    def address_string(self) -> str:
        return self.peer


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
