"""A small HTTP/1.1 client for immudb's gateway: one kept-alive connection, bounded replies, no imports to speak of.

http.client costs ~28 ms to import (email, parsers) and grpc ~140 ms; a hook process on the gateway path has
150 ms in all. This speaks just what the gateway answers: a status line, headers, and a body by Content-Length
or chunked (Go switches to chunked for bodies over 2 KiB). Every size is bounded, every failure is one
LedgerUnavailableError; the bytes are then parsed by jsonsafe and proven by _verify, so a lying server gains
nothing here but a refusal.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from notary.errors import LedgerUnavailableError, UsageError
from notary.ledger.immudb._conn import host_port

if TYPE_CHECKING:
    import ssl

MAX_HEAD = 64 << 10
MAX_BODY = 64 << 20  # a page of a history holds up to 1000 values; the gRPC path's limit is far lower (4 MiB)
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})[^\r\n]*\Z")
_HINT = "is the immudb web server on (immudb --web-server) and NOTARY_IMMUDB_GATEWAY its address?"


class Reply(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


class Gateway(NamedTuple):
    scheme: str
    host: str
    port: int

    @property
    def netloc(self) -> str:
        return host_port(self.host, self.port)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}"


def read_ca(path: str, gateway: Gateway) -> ssl.SSLContext:
    """A TLS context trusting the PEM CA bundle NOTARY_IMMUDB_GATEWAY_CA / [immudb] gateway_ca names (bounded,
    regular file only), built once here so a bad file is a usage error at open."""
    import ssl

    from notary.fsio import read_regular

    if gateway.scheme != "https":
        raise UsageError("NOTARY_IMMUDB_GATEWAY_CA applies to an https:// gateway only",
                         hint=f"the gateway is {gateway.url}")
    pem = read_regular(path, 1 << 20, "immudb gateway CA file", error=UsageError)
    try:
        return ssl.create_default_context(cadata=pem.decode("ascii"))
    except (ValueError, UnicodeDecodeError, ssl.SSLError) as exc:
        raise UsageError(f"immudb gateway CA file {path} holds no usable PEM certificate ({exc})") from None


def parse_gateway(url: str) -> Gateway:
    """http(s)://HOST[:PORT], nothing else: the gateway's API lives under /api on that address."""
    form = "use http://HOST:PORT (immudb's web server, default port 8080), or https:// when it serves TLS"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"malformed immudb gateway URL: {exc}", hint=form) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"immudb gateway URL {url!r} is not http(s)://HOST:PORT", hint=form)
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise UsageError(f"immudb gateway URL {url!r} must be only scheme, host and port", hint=form)
    if port == 0:
        raise UsageError(f"immudb gateway URL {url!r} has port 0", hint=form)
    return Gateway(parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80))


class HttpClient:
    """One connection to the gateway, reused across requests, opened again when the server closed it."""

    def __init__(self, gateway: Gateway, timeout: float, tls: ssl.SSLContext | None = None) -> None:
        self.gateway = gateway
        self.timeout = timeout
        self.tls = tls  # https: this context (read_ca) instead of one trusting the system's CA store
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._deadline = 0.0
        self._answered = False

    def request(self, method: str, path: str, body: bytes | None = None, token: str | None = None, *,
                idempotent: bool = True) -> Reply:
        """One exchange. A kept-alive connection the server had closed is retried once on a fresh one, but
        only for an idempotent request that got no byte of reply (a write is never sent twice)."""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.gateway.netloc}\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        raw = head.encode("ascii") + b"\r\n" + (body or b"")
        reused = self._sock is not None
        for attempt in (1, 2):  # a kept-alive connection the server had closed: once more on a fresh one
            try:
                return self._exchange(raw)
            except _Closed as exc:
                answered = self._answered
                self.close()
                if not reused or attempt == 2 or not idempotent or answered:
                    raise self._unavailable(str(exc)) from None
            except OSError as exc:
                self.close()
                raise self._unavailable(exc.strerror or str(exc) or type(exc).__name__) from None
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")

    def _unavailable(self, why: str) -> LedgerUnavailableError:
        lowered = why.lower()
        short = "connection refused" if "refused" in lowered else "timed out" if "timed out" in lowered else why
        return LedgerUnavailableError(f"immudb gateway at {self.gateway.url} is unreachable ({short})", hint=_HINT)

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.gateway.host, self.gateway.port), timeout=self.timeout)
        if self.gateway.scheme == "https":
            import ssl

            context = self.tls or ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=self.gateway.host)
        return sock

    def _exchange(self, raw: bytes) -> Reply:
        self._deadline = time.monotonic() + self.timeout  # for the whole reply: a trickling server ends too
        self._answered = False
        if self._sock is None:
            self._sock = self._connect()
            self._buf = bytearray()
        self._sock.settimeout(self.timeout)
        self._sock.sendall(raw)
        head = self._read_until(b"\r\n\r\n", MAX_HEAD, "reply headers")
        lines = head.split(b"\r\n")
        match = _STATUS.match(lines[0])
        if not match:
            raise ProtocolError(f"immudb gateway at {self.gateway.url} did not answer HTTP/1.1")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                raise ProtocolError(f"immudb gateway at {self.gateway.url} sent a malformed header")
            key = name.strip().lower().decode("latin-1")
            if key in headers and key in ("content-length", "transfer-encoding"):
                raise ProtocolError(f"immudb gateway at {self.gateway.url} sent {key} twice")
            headers[key] = value.strip().decode("latin-1")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = self._read_chunked()
        elif "transfer-encoding" in headers:
            raise ProtocolError(f"immudb gateway at {self.gateway.url} sent an unknown transfer encoding")
        else:
            length = headers.get("content-length", "")
            if not (length.isascii() and length.isdigit()) or len(length) > 12 or int(length) > MAX_BODY:
                raise ProtocolError(f"immudb gateway at {self.gateway.url} sent no usable Content-Length")
            body = self._read_exact(int(length))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Reply(int(match.group(1)), headers, body)

    def _fill(self) -> None:
        assert self._sock is not None
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        self._sock.settimeout(left)
        chunk = self._sock.recv(1 << 16)
        if not chunk:
            raise _Closed("the server closed the connection")
        self._answered = True
        self._buf += chunk  # a bytearray: appending is linear, a 64 MiB body too

    def _read_until(self, marker: bytes, limit: int, what: str) -> bytes:
        while True:
            at = self._buf.find(marker)
            if at >= 0:
                found = bytes(self._buf[:at])
                del self._buf[: at + len(marker)]
                return found
            if len(self._buf) > limit:
                raise ProtocolError(f"immudb gateway at {self.gateway.url}: {what} over {limit} bytes")
            self._fill()

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_line = self._read_until(b"\r\n", 64, "a chunk size").split(b";", 1)[0].strip()
            if not size_line or len(size_line) > 8 or not re.fullmatch(rb"[0-9A-Fa-f]+", size_line):
                raise ProtocolError(f"immudb gateway at {self.gateway.url} sent a malformed chunk")
            size = int(size_line, 16)
            total += size
            if total > MAX_BODY:
                raise ProtocolError(f"immudb gateway at {self.gateway.url}: reply over {MAX_BODY} bytes")
            if size == 0:
                while self._read_until(b"\r\n", MAX_HEAD, "trailers"):
                    pass  # trailer lines, up to the empty line that ends the reply
                return b"".join(parts)
            parts.append(self._read_exact(size))
            if self._read_exact(2) != b"\r\n":
                raise ProtocolError(f"immudb gateway at {self.gateway.url} sent a malformed chunk")

    def close(self) -> None:
        sock, self._sock = self._sock, None
        self._buf = bytearray()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


class _Closed(Exception):
    """The connection ended before a whole reply."""


class ProtocolError(LedgerUnavailableError):
    """The gateway's bytes are not HTTP as this client reads it: unavailable, never a decision."""
