"""Raw HTTP over unix sockets, for the gate's servers (tests.support.runtimes starts them, with any options).

- `raw_request(method, target, body)`: an HTTP/1.1 request with the target byte for byte as given.
- `raw_http(socket, request_bytes)`: send bytes exactly as given and parse the answer (status, body): for
  request targets and bodies no well-behaved client library would send.
"""

from __future__ import annotations

import contextlib
import http.client
import socket


def raw_request(method: str, target: str, body: bytes | None = None, *, content_type: str = "application/json",
                headers: dict[str, str] | None = None) -> bytes:
    """An HTTP/1.1 request with the target byte for byte as given (no client-side normalization)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: docker", "Connection: close"]
    if body is not None:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def raw_http(socket_path: str, request: bytes, timeout: float = 60) -> tuple[int, bytes]:
    """Send request bytes over a unix socket; (status, body) of the answer (chunked or not)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(socket_path)
        # the server may answer (and close) before reading all of it: its answer is still there to read
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return resp.status, resp.read()
    finally:
        sock.close()
