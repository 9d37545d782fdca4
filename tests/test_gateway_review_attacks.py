"""Review attacks on the immudb HTTP gateway transport (gateway.py, _http.py, _wire.py, _verify.py).

Every test asserts the SAFE behaviour: a NotaryError subclass (ProofError, RollbackError, LedgerUnavailableError,
InputError) or a correct value. The review found eleven holes (a write sent twice on a cut connection, an
older tx claimed for a write, listings that repeat, tokens with non-ASCII or for another database, oversized
metadata, impossible timestamps, quadratic reads); each is fixed and its test now guards it. Two tests
document behaviour that is by design (a forged next transaction without the server key is seen as a fork at
the next honest answer; a cached token serves without the password until removed).

Two men in the middle sit in front of the real immudb gateway: tests.support.http_proxy.HttpProxy (rewrites JSON
replies) and RawProxy below (decides per request whether to forward at all, and writes raw bytes back: drips,
cut connections, malformed HTTP).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest

from notary.errors import LedgerUnavailableError, NotaryError, ProofError, RollbackError
from notary.ledger.immudb import _wire as wire
from notary.ledger.immudb._replay import (
    PLAIN_VALUE_PREFIX,
    entries_root,
    entry_digest,
    inner_hash,
    value_hash,
)
from tests.support.gateway import (
    b64,
    json_rewrite,
    notarized_then_revoked,
    open_gateway,
)
from tests.support.http_proxy import HttpProxy, Reply
from tests.support.immudb import ImmudbServer, fresh_immudb_url
from tests.support.immudb_fixtures import fresh_database, gateway_man_in_the_middle  # noqa: F401 - fixtures "url", "proxy"

UUID_HEADER = "grpc-metadata-immudb-uuid"
NOTARY_ERRORS = (ProofError, RollbackError, LedgerUnavailableError, NotaryError)


# -- harness --------------------------------------------------------------------------------------------------------


class Request(NamedTuple):
    method: str
    path: str
    body: bytes


Forward = Callable[..., Reply]
Respond = Callable[[Request, Forward, socket.socket], bool]  # True: keep the connection, False: close it


def serialize(reply: Reply, *, extra: bytes = b"", length: bool = True) -> bytes:
    out = f"HTTP/1.1 {reply.status} X\r\n".encode()
    for name, value in reply.headers:
        out += f"{name}: {value}\r\n".encode("latin-1")
    if length:
        out += f"Content-Length: {len(reply.body)}\r\n".encode()
    return out + extra + b"\r\n" + reply.body


def head_of(reply: Reply) -> bytes:
    """The status line and headers of reply (uuid included), without framing and without a final CRLF."""
    lines = [f"HTTP/1.1 {reply.status} X".encode()] + [f"{k}: {v}".encode("latin-1") for k, v in reply.headers]
    return b"\r\n".join(lines)


class RawProxy:
    """A man in the middle on raw sockets: `respond(request, forward, conn)` forwards (or not) and writes bytes."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.respond: Respond | None = None
        self.requests: list[Request] = []
        self.stopped = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def stop(self) -> None:
        self.stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def forward(self, request: Request, headers: dict[str, str]) -> Reply:
        c = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            sent = {k: v for k, v in headers.items() if k in ("authorization", "content-type")}
            c.request(request.method, request.path, body=request.body or None, headers=sent)
            answer = c.getresponse()
            drop = ("content-length", "transfer-encoding", "connection")
            return Reply(answer.status, [(k, v) for k, v in answer.getheaders() if k.lower() not in drop],
                         answer.read())
        finally:
            c.close()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(1 << 16)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                n = int(headers.get("content-length") or 0)
                while len(buf) < n:
                    buf += conn.recv(1 << 16)
                request = Request(method, path, buf[:n])
                buf = buf[n:]
                self.requests.append(request)

                def forward(method: str = method, path: str = path, body: bytes | None = None,
                            request: Request = request, headers: dict[str, str] = headers) -> Reply:
                    sent = Request(method, path, request.body if body is None else body)
                    return self.forward(sent, headers)

                if self.respond is None:
                    conn.sendall(serialize(forward()))
                elif not self.respond(request, forward, conn):
                    return
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def count(self, part: str) -> int:
        return sum(part in r.path for r in self.requests)


@pytest.fixture
def raw(immudb_server: ImmudbServer) -> Iterator[RawProxy]:
    p = RawProxy(immudb_server.gateway_url)
    yield p
    p.stop()


def _crash_free(call: Callable[[], Any]) -> BaseException | None:
    """Run call; a NotaryError is returned (safe), any other exception propagates (the test fails on it)."""
    try:
        call()
    except NotaryError as exc:
        return exc
    return None


# -- HTTP framing: raw bytes from the "gateway" ------------------------------------------------------------------


def _answer_health_with(raw_bytes: Callable[[Reply, socket.socket], bool]) -> Respond:
    """A responder that sends raw bytes for /api/health (built from the real reply), forwards the rest."""

    def respond(request: Request, forward: Forward, conn: socket.socket) -> bool:
        reply = forward()
        if request.path == "/api/health":
            return raw_bytes(reply, conn)
        conn.sendall(serialize(reply))
        return True

    return respond


def _drip(conn: socket.socket, data: bytes, every: float, stop: threading.Event, until: float) -> bool:
    for i in range(len(data)):
        if stop.is_set() or time.monotonic() > until:
            return False
        conn.sendall(data[i:i + 1])
        time.sleep(every)
    return True


def test_slow_loris_reply_is_bounded_by_the_timeout(url: str, raw: RawProxy, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTARY_IMMUDB_TIMEOUT", "1")

    def drip(reply: Reply, conn: socket.socket) -> bool:
        _drip(conn, serialize(reply), 0.4, raw.stopped, time.monotonic() + 6)
        return False  # cut after 6 s: the client sees the end, whatever it did

    raw.respond = _answer_health_with(drip)
    start = time.monotonic()
    with pytest.raises(LedgerUnavailableError):
        open_gateway(url, raw.url, tmp_path / "state")
    assert time.monotonic() - start < 3.5, "a 1 s timeout held the client for the whole drip"


def test_endless_chunked_trailers_terminate(url: str, raw: RawProxy, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTARY_IMMUDB_TIMEOUT", "1")  # the trailer loop itself has no bound: the deadline ends it
    def trailers(reply: Reply, conn: socket.socket) -> bool:
        conn.sendall(head_of(reply) + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + f"{len(reply.body):x}\r\n".encode() + reply.body + b"\r\n0\r\n")
        until = time.monotonic() + 5
        while time.monotonic() < until and not raw.stopped.is_set():
            conn.sendall(b"X-Pad: " + b"a" * 1000 + b"\r\n" * 1)
        return False

    raw.respond = _answer_health_with(trailers)
    start = time.monotonic()
    with pytest.raises(LedgerUnavailableError):
        open_gateway(url, raw.url, tmp_path / "state")
    assert time.monotonic() - start < 2.5, "endless trailers were read for as long as they came"


def test_content_length_with_a_latin1_superscript_digit_is_refused(url: str, raw: RawProxy, tmp_path: Path) -> None:
    raw.respond = _answer_health_with(lambda reply, conn: conn.sendall(
        head_of(reply) + b"\r\nContent-Length: \xb2\r\n\r\n" + reply.body) or False)
    with pytest.raises(LedgerUnavailableError):
        open_gateway(url, raw.url, tmp_path / "state")


@pytest.mark.parametrize("framing", [
    b"Content-Length: 99999999999\r\n",  # 93 GiB announced
    b"Content-Length: 67108865\r\n",  # MAX_BODY + 1
    b"Content-Length: -1\r\n",
    b"Content-Length: 1e3\r\n",
    b"Content-Length: 0x10\r\n",
    b"Content-Length: 5\r\nContent-Length: 5\r\n",
    b"Transfer-Encoding: gzip, chunked\r\n",
    b"",  # no framing at all (read to EOF is not supported)
    b"no colon here\r\n",
])
def test_bad_framing_is_one_unavailable_error(url: str, raw: RawProxy, tmp_path: Path, framing: bytes) -> None:
    raw.respond = _answer_health_with(lambda reply, conn: conn.sendall(
        head_of(reply) + b"\r\n" + framing + b"\r\n" + reply.body) or False)
    start = time.monotonic()
    with pytest.raises(LedgerUnavailableError):
        open_gateway(url, raw.url, tmp_path / "state")
    assert time.monotonic() - start < 3


@pytest.mark.parametrize("chunks", [
    b"ffffffff\r\n",  # 4 GiB chunk
    b"3ffffff\r\n" + b"a" * 16 + b"\r\n",  # 64 MiB - 1 announced, then a second chunk would pass the bound
    b"123456789\r\n",  # 9 hex digits
    b"zz\r\n",
    b"5\r\nabcdeXX0\r\n\r\n",  # no CRLF after the data
    b"-5\r\n",
])
def test_malformed_or_oversized_chunks_are_refused(url: str, raw: RawProxy, tmp_path: Path, chunks: bytes) -> None:
    raw.respond = _answer_health_with(lambda reply, conn: conn.sendall(
        head_of(reply) + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks) or False)
    start = time.monotonic()
    with pytest.raises(LedgerUnavailableError):
        open_gateway(url, raw.url, tmp_path / "state")
    assert time.monotonic() - start < 3


def test_slow_tls_handshake_is_bounded_by_the_timeout(url: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTARY_IMMUDB_TIMEOUT", "1")
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.recv(1 << 16)  # the ClientHello
                conn.sendall(b"\x16\x03\x03\x40\x00")  # a handshake record of 16 KiB ...
                _drip(conn, bytes(200), 0.4, stop, time.monotonic() + 6)  # ... that trickles in

    threading.Thread(target=serve, daemon=True).start()
    start = time.monotonic()
    try:
        with pytest.raises(LedgerUnavailableError):
            open_gateway(url, f"https://127.0.0.1:{listener.getsockname()[1]}", tmp_path / "state")
    finally:
        stop.set()
        listener.close()
    assert time.monotonic() - start < 3.5, "a 1 s timeout held the client for the whole handshake drip"


def test_chunked_together_with_content_length_is_not_a_crash(url: str, raw: RawProxy, tmp_path: Path) -> None:
    """RFC 9112: Transfer-Encoding wins; either reading it chunked or refusing it is safe."""

    def both(reply: Reply, conn: socket.socket) -> bool:
        conn.sendall(head_of(reply) + b"\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
                     + f"{len(reply.body):x}\r\n".encode() + reply.body + b"\r\n0\r\n\r\n")
        return True

    raw.respond = _answer_health_with(both)
    err = _crash_free(lambda: open_gateway(url, raw.url, tmp_path / "state").close())
    assert err is None or isinstance(err, LedgerUnavailableError)


def test_connection_reset_mid_body_is_unavailable(url: str, raw: RawProxy, tmp_path: Path) -> None:
    def reset(reply: Reply, conn: socket.socket) -> bool:
        data = serialize(reply)
        conn.sendall(data[: len(data) - 5])
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
        return False

    raw.respond = _answer_health_with(reset)
    with pytest.raises(LedgerUnavailableError):
        open_gateway(url, raw.url, tmp_path / "state")


def test_oversized_header_section_is_refused(url: str, raw: RawProxy, tmp_path: Path) -> None:
    raw.respond = _answer_health_with(lambda reply, conn: conn.sendall(
        head_of(reply) + b"\r\n" + b"X-Pad: " + b"a" * (80 << 10) + b"\r\n\r\n") or False)
    with pytest.raises(LedgerUnavailableError):
        open_gateway(url, raw.url, tmp_path / "state")


def test_a_large_reply_is_read_in_linear_time(url: str, raw: RawProxy, tmp_path: Path) -> None:
    size = 32 << 20

    def big(reply: Reply, conn: socket.socket) -> bool:
        body = b'{"pad":"' + b"a" * (size - 10) + b'"}'
        conn.sendall(serialize(reply._replace(body=body)))
        return True

    raw.respond = _answer_health_with(big)
    start = time.monotonic()
    open_gateway(url, raw.url, tmp_path / "state").close()
    assert time.monotonic() - start < 2.0, "a 32 MiB reply took seconds of CPU"


def test_write_cut_after_the_server_committed_is_not_sent_twice(url: str, raw: RawProxy, tmp_path: Path) -> None:
    gw = open_gateway(url, raw.url, tmp_path / "state")

    def cut_set(request: Request, forward: Forward, conn: socket.socket) -> bool:
        reply = forward()
        if request.path == "/api/db/set":
            data = serialize(reply)
            conn.sendall(data[: len(data) // 2])
            return False  # a clean FIN in the middle of the reply, after the server wrote
        conn.sendall(serialize(reply))
        return True

    raw.respond = cut_set
    err = _crash_free(lambda: gw.write({"subject/once": b"x"}))
    raw.respond = None
    writes = raw.count("/api/db/set")
    history = open_gateway(url, raw.url, tmp_path / "state").history("subject/once")
    assert writes == 1 and len(history) <= 1, f"{writes} writes sent, history {len(history)} long ({err})"


def test_uuid_header_repeated_in_other_case_is_refused_mid_session(url: str, raw: RawProxy, tmp_path: Path) -> None:
    gw = open_gateway(url, raw.url, tmp_path / "state")
    gw.write({"subject/u": b"x"})

    def doubled(request: Request, forward: Forward, conn: socket.socket) -> bool:
        reply = forward()
        conn.sendall(serialize(reply, extra=b"GRPC-METADATA-IMMUDB-UUID: someotherserver\r\n"))
        return True

    raw.respond = doubled
    with pytest.raises(RollbackError, match="replaced"):
        gw.get("subject/u")


@pytest.mark.parametrize("status,uuid", [(200, None), (200, "bad uuid"), (200, "a" * 65), (502, None)])
def test_reply_without_a_usable_uuid_is_refused(url: str, raw: RawProxy, tmp_path: Path, status: int,
                                                uuid: str | None) -> None:
    def strip(request: Request, forward: Forward, conn: socket.socket) -> bool:
        reply = forward()
        headers = [(k, v) for k, v in reply.headers if k.lower() != UUID_HEADER]
        if uuid is not None:
            headers.append((UUID_HEADER, uuid))
        conn.sendall(serialize(Reply(status, headers, reply.body)))
        return True

    raw.respond = strip
    with pytest.raises((ProofError, LedgerUnavailableError)):
        open_gateway(url, raw.url, tmp_path / "state")


# -- JSON: hostile values in the gateway's answers -----------------------------------------------------------------


def test_tx_id_with_a_superscript_digit_is_a_proof_error(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                         tmp_path: Path) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    proxy.rewrite = json_rewrite("/db/state", lambda doc: doc.update(txId="\u00b2"))
    with pytest.raises(ProofError):
        open_gateway(url, proxy.url, state)


@pytest.mark.parametrize("value", ["-1", "1e3", 1e3, 3.0, str(1 << 64), 1 << 64, True, None, "", " 3", "3 ",
                                   "0x3", [3], {"v": 3}])
def test_malformed_integers_are_proof_errors(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                             tmp_path: Path, value: Any) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    proxy.rewrite = json_rewrite("/db/state", lambda doc: doc.update(txId=value))
    assert isinstance(_crash_free(lambda: open_gateway(url, proxy.url, state)), ProofError)


@pytest.mark.parametrize("mangle", ["newline", "space", "urlsafe", "unpadded", "number", "list"])
def test_base64_that_is_not_strict_is_refused(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                              tmp_path: Path, mangle: str) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)

    def change(doc: dict[str, Any]) -> None:
        v = doc["entry"]["value"]
        doc["entry"]["value"] = {"newline": v[:4] + "\n" + v[4:], "space": " " + v, "urlsafe": v.replace("+", "-")
                                 .replace("/", "_") + "-_", "unpadded": v.rstrip("=") + "A", "number": 5,
                                 "list": [v]}[mangle]

    proxy.rewrite = json_rewrite("/verifiable/get", change)
    gw = open_gateway(url, proxy.url, state)
    with pytest.raises(ProofError):
        gw.get("subject/m")


def test_json_list_and_scalar_bodies_are_refused(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                 tmp_path: Path) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    for body in (b"[]", b"[{}]", b"5", b'"x"', b"null", b"{}"):
        proxy.rewrite = lambda path, reply, body=body: reply._replace(body=body) if "/verifiable/get" in path \
            else reply
        gw = open_gateway(url, proxy.url, state)
        with pytest.raises(ProofError):
            gw.get("subject/m")
        gw.close()


def test_tx_metadata_extra_over_64k_is_a_proof_error(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                     tmp_path: Path) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    proxy.rewrite = json_rewrite("/verifiable/get", lambda doc: doc["verifiableTx"]["dualProof"]["sourceTxHeader"]
                                  .update(metadata={"extra": b64(bytes(70_000))}))
    gw = open_gateway(url, proxy.url, state)
    with pytest.raises(ProofError):
        gw.get("subject/m")


@pytest.mark.parametrize("attack", ["leaf-beyond-width", "leaf-equals-width", "width-zero", "no-terms",
                                    "5000-terms", "term-not-32-bytes", "leaf-negative", "width-huge"])
def test_entry_inclusion_proof_tampering_is_refused(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                    tmp_path: Path, attack: str) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)

    def change(doc: dict[str, Any]) -> None:
        p = doc["inclusionProof"]
        width = int(p.get("width", 0))
        p.update({"leaf-beyond-width": {"leaf": str(width + 2)}, "leaf-equals-width": {"leaf": str(width)},
                  "width-zero": {"width": "0", "leaf": "0"}, "no-terms": {"terms": []},
                  "5000-terms": {"terms": [b64(bytes(32))] * 5000}, "term-not-32-bytes": {"terms": [b64(b"x")]},
                  "leaf-negative": {"leaf": "-1"}, "width-huge": {"width": str(1 << 40)}}[attack])

    proxy.rewrite = json_rewrite("/verifiable/get", change)
    gw = open_gateway(url, proxy.url, state)
    with pytest.raises(ProofError):
        gw.get("subject/m")


@pytest.mark.parametrize("attack", ["linear-source-mismatch", "linear-target-mismatch", "linear-no-terms",
                                    "linear-extra-term", "source-header-other-id", "source-id-zero",
                                    "target-bl-beyond-id", "bl-alh-short", "consistency-junk",
                                    "inclusion-junk", "last-inclusion-junk", "target-bl-alh-other"])
def test_dual_proof_tampering_on_an_older_tx_is_refused(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                        tmp_path: Path, attack: str) -> None:
    """A read of an older version (source = that tx, target = trusted state): the part of the proof that binds it."""
    state = tmp_path / "state"
    gw0 = open_gateway(url, immudb_server.gateway_url, state)
    for i in range(6):
        gw0.write({"subject/old": f"v{i}".encode(), "pad": b"p"})
    first = gw0.history("subject/old")[2].tx  # its binary-linking tree is not empty: consistency is checked
    gw0.close()

    def change(doc: dict[str, Any]) -> None:
        dp = doc["verifiableTx"]["dualProof"]
        lp, src, tgt = dp.setdefault("linearProof", {}), dp["sourceTxHeader"], dp["targetTxHeader"]
        if attack == "linear-source-mismatch":
            lp["sourceTxId"] = str(int(lp.get("sourceTxId", 0)) + 1)
        elif attack == "linear-target-mismatch":
            lp["TargetTxId"] = str(int(lp.get("TargetTxId", 0)) + 1)
        elif attack == "linear-no-terms":
            lp["terms"] = []
        elif attack == "linear-extra-term":
            lp["terms"] = lp.get("terms", []) + [b64(bytes(32))]
        elif attack == "source-header-other-id":
            src["id"] = str(int(src["id"]) + 1)
        elif attack == "source-id-zero":
            src["id"] = "0"
        elif attack == "target-bl-beyond-id":
            tgt["blTxId"] = str(int(tgt["id"]) + 5)
        elif attack == "bl-alh-short":
            dp["targetBlTxAlh"] = b64(bytes(31))
        elif attack == "target-bl-alh-other":
            dp["targetBlTxAlh"] = b64(bytes(32))
        elif attack == "inclusion-junk":
            dp["inclusionProof"] = [b64(bytes(32))] * len(dp.get("inclusionProof", [1]))
        elif attack == "last-inclusion-junk":
            dp["lastInclusionProof"] = [b64(bytes(32))] * len(dp.get("lastInclusionProof", [1]))
        else:
            dp["consistencyProof"] = [b64(bytes(32))] * len(dp.get("consistencyProof", [1]))

    proxy.rewrite = json_rewrite("/verifiable/get", change)
    gw = open_gateway(url, proxy.url, state)
    with pytest.raises(ProofError):
        gw.get("subject/old", at_tx=first)


def test_verifiable_get_answered_at_a_newer_tx_than_requested_is_refused(url: str, raw: RawProxy,
                                                                        tmp_path: Path) -> None:
    """The man in the middle rewrites the request's atTx to the newest version: a valid proof of the wrong tx."""
    gw = open_gateway(url, raw.url, tmp_path / "state")
    old = gw.write({"subject/n": b"old"}).tx
    new = gw.write({"subject/n": b"new"}).tx

    def newer(request: Request, forward: Forward, conn: socket.socket) -> bool:
        body = request.body
        if request.path == "/api/db/verifiable/get":
            doc = json.loads(body)
            doc["keyRequest"]["atTx"] = str(new)
            body = json.dumps(doc).encode()
        conn.sendall(serialize(forward(body=body)))
        return True

    raw.respond = newer
    with pytest.raises(ProofError, match=f"at tx {old} with tx {new}"):
        gw.get("subject/n", at_tx=old)


def test_stripped_signatures_are_refused_when_the_server_key_is_set(url: str, immudb_server: ImmudbServer,
                                                                   proxy: HttpProxy, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTARY_IMMUDB_SERVER_KEY", str(immudb_server.public_key))
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    proxy.rewrite = json_rewrite("/db/state", lambda doc: doc.pop("signature", None))
    with pytest.raises(ProofError, match="not signed"):
        open_gateway(url, proxy.url, state)
    proxy.rewrite = json_rewrite("/verifiable/", lambda doc: (doc.get("verifiableTx") or doc).pop("signature"))
    gw = open_gateway(url, proxy.url, state)
    with pytest.raises(ProofError, match="not signed"):
        gw.get("subject/m")
    with pytest.raises(ProofError, match="not signed"):
        gw.write({"subject/m": b"again"})
    gw.close()
    monkeypatch.delenv("NOTARY_IMMUDB_SERVER_KEY")  # the key is pinned in the trusted state: still checked
    gw = open_gateway(url, proxy.url, state)
    with pytest.raises(ProofError, match="not signed"):
        gw.get("subject/m")


# -- forged transactions extending the trusted state --------------------------------------------------------------


def _forge_future_tx(doc: dict[str, Any], key: bytes, value: bytes, *, ts: int | None = None,
                     bl_tx: int | None = None) -> None:
    """Turn a real verifiable get of key at the trusted tx S (proof S -> S) into one of a forged tx S+1 that holds
    key = value: header S+1 chained on S's Alh, its own entries tree, a linear proof S -> S+1 with its inner hash."""
    vtx = doc["verifiableTx"]
    dp = vtx["dualProof"]
    source = wire.header(dp["sourceTxHeader"])
    spec = (PLAIN_VALUE_PREFIX + key, b"", value_hash(value), len(value) + 1)
    h = dict(dp["targetTxHeader"])
    h.update(id=str(source.id + 1), nentries=1, eH=b64(entries_root(1, [spec])), prevAlh=b64(source.alh))
    if ts is not None:
        h["ts"] = str(ts)
    if bl_tx is not None:
        h["blTxId"] = str(bl_tx)
    target = wire.header(h)
    assert entry_digest(1, spec)
    dp["targetTxHeader"] = h
    dp["linearProof"] = {"sourceTxId": str(source.id), "TargetTxId": str(target.id),
                         "terms": [b64(source.alh), b64(inner_hash(target))]}
    doc["entry"].update(tx=str(target.id), value=b64(value), revision="3")
    doc["inclusionProof"] = {"leaf": "0", "width": "1", "terms": []}


def test_forged_future_tx_without_server_key_is_seen_as_a_fork_next(url: str, immudb_server: ImmudbServer,
                                                                   proxy: HttpProxy, tmp_path: Path) -> None:
    """Inherent to immudb's proofs (the same on gRPC; docs/immudb.md, "Pin the server key off loopback"):
    without the server key a man in the middle can append a transaction of his own to the trusted chain. The
    next honest answer is then a fork, never silently accepted."""
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    proxy.rewrite = json_rewrite("/verifiable/get", lambda doc: _forge_future_tx(doc, b"other", b"forged"))
    gw = open_gateway(url, proxy.url, state)
    _crash_free(lambda: gw.get("other"))
    gw.close()
    proxy.rewrite = None
    later = _crash_free(lambda: open_gateway(url, immudb_server.gateway_url, state))  # the honest server, next process
    assert isinstance(later, RollbackError), later


def test_forged_future_tx_with_server_key_is_refused(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTARY_IMMUDB_SERVER_KEY", str(immudb_server.public_key))
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    proxy.rewrite = json_rewrite("/verifiable/get", lambda doc: _forge_future_tx(doc, b"other", b"forged"))
    gw = open_gateway(url, proxy.url, state)
    with pytest.raises(ProofError, match="not signed by the pinned server key"):
        gw.get("other")
    proxy.rewrite = None
    assert gw.get("other").value == b"x"  # type: ignore[union-attr]  # trust did not move to the forgery


@pytest.mark.parametrize("bl_tx", ["beyond-id", "zero"])
def test_forged_future_tx_with_a_broken_binary_link_is_refused(url: str, immudb_server: ImmudbServer,
                                                               proxy: HttpProxy, tmp_path: Path, bl_tx: str) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)

    def change(doc: dict[str, Any]) -> None:
        s = int(doc["verifiableTx"]["dualProof"]["sourceTxHeader"]["id"])
        _forge_future_tx(doc, b"other", b"forged", bl_tx=s + 7 if bl_tx == "beyond-id" else 0)

    proxy.rewrite = json_rewrite("/verifiable/get", change)
    gw = open_gateway(url, proxy.url, state)
    with pytest.raises(ProofError):
        gw.get("other")


def test_header_with_a_huge_timestamp_is_not_a_crash(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                     tmp_path: Path) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    proxy.rewrite = json_rewrite("/verifiable/get",
                                  lambda doc: _forge_future_tx(doc, b"other", b"forged", ts=(1 << 63) + 5))
    gw = open_gateway(url, proxy.url, state)
    _crash_free(lambda: gw.get("other"))


# -- listings: history and scan --------------------------------------------------------------------------------


def test_scan_page_that_does_not_advance_terminates(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                    tmp_path: Path) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    calls = []

    def loop(path: str, reply: Reply) -> Reply:
        if "/db/scan" not in path:
            return reply
        calls.append(path)
        if len(calls) > 25:  # give up, so the test ends either way
            return reply._replace(status=500, body=b'{"message":"stop"}')
        entry = {"key": b64(b"subject/m"), "value": b64(b"x"), "tx": "2"}
        return reply._replace(body=json.dumps({"entries": [entry] * 1000}).encode())

    proxy.rewrite = loop
    gw = open_gateway(url, proxy.url, state)
    err = _crash_free(lambda: gw.keys("subject/"))
    assert len(calls) <= 2, f"{len(calls)} scan pages requested for one key ({err})"


def _repeating_history(calls: list[str]) -> Callable[[str, Reply], Reply]:
    """Every history page is 1000 copies of the key's first version; after 25 pages an error ends the test."""
    first: list[Any] = []

    def loop(path: str, reply: Reply) -> Reply:
        if "/db/history" not in path:
            return reply
        calls.append(path)
        if not first:
            first.append(json.loads(reply.body)["entries"][0])
        if len(calls) > 25:
            return reply._replace(status=500, body=b'{"message":"stop"}')
        return reply._replace(status=200, body=json.dumps({"entries": first * 1000}).encode())

    return loop


def test_history_page_that_repeats_is_refused_at_once(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                      tmp_path: Path) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    calls: list[str] = []
    proxy.rewrite = _repeating_history(calls)
    gw = open_gateway(url, proxy.url, state)
    err = _crash_free(lambda: gw.history("subject/m"))
    assert isinstance(err, ProofError) and len(calls) <= 2, f"{len(calls)} history pages requested ({err!r})"


def test_history_page_that_repeats_is_refused_by_an_as_of_read(url: str, immudb_server: ImmudbServer,
                                                               proxy: HttpProxy, tmp_path: Path) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    calls: list[str] = []
    proxy.rewrite = _repeating_history(calls)
    gw = open_gateway(url, proxy.url, state)
    head = gw.info().head.tx
    err = _crash_free(lambda: gw.get("subject/m", at_tx=head))
    assert isinstance(err, ProofError) and len(calls) <= 2, f"{len(calls)} history pages requested ({err!r})"


def test_reversed_history_is_refused_by_an_as_of_read(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                      tmp_path: Path) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    proxy.rewrite = json_rewrite("/db/history", lambda doc: doc.update(entries=doc["entries"][::-1]))
    gw = open_gateway(url, proxy.url, state)
    head = gw.info().head.tx
    err = _crash_free(lambda: gw.get("subject/m", at_tx=head))
    if err is None:
        entry = gw.get("subject/m", at_tx=head)
        assert entry is not None and entry.value == b"revoked", f"as of the head: {entry}"
    else:
        assert isinstance(err, ProofError)


@pytest.mark.parametrize("attack", ["reversed", "duplicated"])
def test_history_out_of_order_or_duplicated_is_refused(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                       tmp_path: Path, attack: str) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)

    def change(doc: dict[str, Any]) -> None:
        doc["entries"] = doc["entries"][::-1] if attack == "reversed" else doc["entries"][:1] + doc["entries"]

    proxy.rewrite = json_rewrite("/db/history", change)
    gw = open_gateway(url, proxy.url, state)
    err = _crash_free(lambda: gw.history("subject/m"))
    if err is None:
        txs = [e.tx for e in gw.history("subject/m")]
        assert txs == sorted(set(txs)), f"history in the server's order: txs {txs}"
    else:
        assert isinstance(err, ProofError)


def test_history_naming_a_version_that_does_not_verify_is_refused(url: str, immudb_server: ImmudbServer,
                                                                  proxy: HttpProxy, tmp_path: Path) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    proxy.rewrite = json_rewrite("/db/history", lambda doc: doc["entries"][0].update(value=b64(b"forged")))
    gw = open_gateway(url, proxy.url, state)
    with pytest.raises(ProofError, match="does not verify"):
        gw.history("subject/m")


def test_listings_that_are_not_lists_are_refused(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                 tmp_path: Path) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    for entries in ({"a": 1}, [1, 2], "x", [[]]):
        proxy.rewrite = json_rewrite("/db/", lambda doc, e=entries: doc.update(entries=e) if "entries" in doc
                                      else None)
        gw = open_gateway(url, proxy.url, state)
        with pytest.raises(ProofError):
            gw.keys("subject/")
        with pytest.raises(ProofError):
            gw.history("subject/m")
        gw.close()


# -- writes -------------------------------------------------------------------------------------------------------


def test_write_answered_with_an_older_tx_holding_the_same_values_is_refused(url: str, raw: RawProxy,
                                                                            tmp_path: Path) -> None:
    gw = open_gateway(url, raw.url, tmp_path / "state")
    first = gw.write({"subject/w": b"same"}).tx
    gw.write({"subject/w": b"newer"})

    def drop_set(request: Request, forward: Forward, conn: socket.socket) -> bool:
        if request.path == "/api/db/set":  # never reaches immudb
            reply = forward(method="GET", path="/api/db/state", body=b"")
            conn.sendall(serialize(reply._replace(body=json.dumps({"id": str(first)}).encode())))
        else:
            conn.sendall(serialize(forward()))
        return True

    raw.respond = drop_set
    err = _crash_free(lambda: gw.write({"subject/w": b"same"}))
    raw.respond = None
    current = gw.get("subject/w")
    assert isinstance(err, ProofError), f"write reported done; the ledger's value is {current.value!r}"  # type: ignore[union-attr]


def test_write_answered_with_a_tx_beyond_the_head_is_refused(url: str, raw: RawProxy, tmp_path: Path) -> None:
    gw = open_gateway(url, raw.url, tmp_path / "state")
    gw.write({"subject/w": b"one"})

    def far(request: Request, forward: Forward, conn: socket.socket) -> bool:
        reply = forward()
        if request.path == "/api/db/set":
            reply = reply._replace(body=json.dumps({"id": str((1 << 64) - 1)}).encode())
        conn.sendall(serialize(reply))
        return True

    raw.respond = far
    err = _crash_free(lambda: gw.write({"subject/w": b"two"}))
    assert isinstance(err, NotaryError)


# -- the login token cache ----------------------------------------------------------------------------------------


def test_login_token_with_non_ascii_is_refused(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                               tmp_path: Path) -> None:
    proxy.rewrite = json_rewrite("/api/login", lambda doc: doc.update(token="t\u00f6k\u00e9n"))
    err = _crash_free(lambda: open_gateway(url, proxy.url, tmp_path / "state"))
    assert isinstance(err, LedgerUnavailableError)


def test_database_token_with_non_ascii_is_refused(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                  tmp_path: Path) -> None:
    proxy.rewrite = json_rewrite("/api/db/use/", lambda doc: doc.update(token="t\u00f6k\u00e9n"))
    err = _crash_free(lambda: open_gateway(url, proxy.url, tmp_path / "state"))
    assert isinstance(err, LedgerUnavailableError)


def _deep_token() -> str:
    payload = base64.urlsafe_b64encode(b"[" * 2900 + bytes(64)).decode().rstrip("=")
    return f"v2.public.{payload}"


def test_cached_token_with_a_deeply_nested_payload_is_not_a_crash(url: str, immudb_server: ImmudbServer,
                                                                  proxy: HttpProxy, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert len(_deep_token()) <= 4096
    proxy.rewrite = json_rewrite("/api/db/use/", lambda doc: doc.update(token=_deep_token()))
    _crash_free(lambda: open_gateway(url, proxy.url, state))  # refused by the server: unavailable
    assert list(state.glob("immudb-token-*")), "the hostile token was not cached"
    proxy.rewrite = None
    open_gateway(url, proxy.url, state).close()  # the man in the middle is gone


def test_a_cached_token_serves_without_the_password_until_removed(url: str, immudb_server: ImmudbServer,
                                                                  tmp_path: Path) -> None:
    """Documented behaviour (docs/immudb.md): the token, not the password, is what a cached process shows."""
    state = tmp_path / "state"
    open_gateway(url, immudb_server.gateway_url, state).close()
    open_gateway(url, immudb_server.gateway_url, state, password="wrong").close()
    for token in state.glob("immudb-token-*"):
        token.unlink()
    with pytest.raises(LedgerUnavailableError, match="refused user"):
        open_gateway(url, immudb_server.gateway_url, state, password="wrong").close()


def test_cached_token_for_another_database_is_replaced(immudb_server: ImmudbServer, tmp_path: Path) -> None:
    state = tmp_path / "state"
    url_a, url_b = fresh_immudb_url(immudb_server), fresh_immudb_url(immudb_server)
    gw_a = open_gateway(url_a, immudb_server.gateway_url, state)
    gw_a.write({"subject/a": b"a"})
    path_a = gw_a.session.transport.token_path()  # type: ignore[attr-defined]  # the gateway transport's
    gw_a.close()
    gw_b = open_gateway(url_b, immudb_server.gateway_url, state)
    path_b = gw_b.session.transport.token_path()  # type: ignore[attr-defined]
    gw_b.close()
    assert path_a != path_b
    path_b.write_bytes(path_a.read_bytes())
    gw_b = open_gateway(url_b, immudb_server.gateway_url, state)
    assert gw_b.info().head.tx <= 1 and gw_b.get("subject/a") is None


def test_token_cache_is_private_and_bound_to_server_user_database(immudb_server: ImmudbServer,
                                                                 tmp_path: Path) -> None:
    state = tmp_path / "state"
    url_a, url_b = fresh_immudb_url(immudb_server), fresh_immudb_url(immudb_server)
    for u in (url_a, url_b):
        open_gateway(u, immudb_server.gateway_url, state).close()
    tokens = sorted(state.glob("immudb-token-*"))
    assert len(tokens) == 2 and all(t.stat().st_mode & 0o777 == 0o600 for t in tokens)
    assert tokens[0].read_bytes() != tokens[1].read_bytes()
    p = HttpProxy(immudb_server.gateway_url).start()  # another gateway URL: its own token
    try:
        open_gateway(url_a, p.url, state).close()
        assert len(list(state.glob("immudb-token-*"))) == 3
    finally:
        p.stop()


def test_token_file_replaced_by_a_symlink_or_fifo_is_ignored(url: str, immudb_server: ImmudbServer,
                                                             tmp_path: Path) -> None:
    import os

    state = tmp_path / "state"
    open_gateway(url, immudb_server.gateway_url, state).close()
    [token] = state.glob("immudb-token-*")
    token.unlink()
    os.mkfifo(token)
    start = time.monotonic()
    gw = open_gateway(url, immudb_server.gateway_url, state)
    gw.write({"subject/f": b"x"})
    gw.close()
    assert time.monotonic() - start < 5
    assert token.is_file() and not token.is_symlink() and token.stat().st_mode & 0o777 == 0o600
