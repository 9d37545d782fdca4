"""The unix-socket server under the Docker authorization plugin and the hook server.

Both are asked by root (dockerd, the container runtime) and act on what they are told with root's trust, so
the socket is created 0600 and nobody else can talk to them. A leftover socket from a crashed server is
replaced; a live one is never stolen.
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import stat
from http.server import BaseHTTPRequestHandler
from typing import Any

from notary.errors import InputError


class PrivateUnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, handler: Any, *, dir_mode: int = 0o755) -> None:
        self.path = path
        remove_stale_socket(path)
        os.makedirs(os.path.dirname(path) or ".", mode=dir_mode, exist_ok=True)
        old = os.umask(0o177)
        try:
            super().__init__(path, handler)
        finally:
            os.umask(old)

    def server_close(self) -> None:
        super().server_close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class QuietUnixHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 over the socket, with no access log (the decision log is the record) and a 30 s idle limit."""

    protocol_version = "HTTP/1.1"
    timeout = 30.0
    peer = "peer"  # unix sockets have no peer address; name who asks

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

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
