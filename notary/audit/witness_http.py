"""The witness over HTTP: POST <prefix>/add-checkpoint (c2sp.org/tlog-witness), on the gate's bounded pool.

Bodies are bounded: one Content-Length is required (411 without), and it is a plain ASCII decimal (else 400:
int() reads "1_0" and "\u0661", and a proxy in front may read another length, or none); no Transfer-Encoding
beside it; at most MAX_REQUEST. Reads time out, and a full queue is answered 503 rather than left to time out,
like every resident notary server. GET /healthz for probes.
"""

from __future__ import annotations

import socket
import threading
from http.server import HTTPServer

from notary.audit import note as notes
from notary.audit.witness import MAX_REQUEST, Reply, Witness, WitnessStateError
from notary.gate.frontends.pool import DEFAULT_QUEUE, DEFAULT_WORKERS, BusyReply, PooledHandler, PooledServer


class _Handler(PooledHandler):
    server: WitnessServer
    timeout = 10.0
    server_version = "notary-witness"

    def _reply(self, reply: Reply, *, close: bool = False) -> None:
        self.send_body(reply.status, reply.body, {"Content-Type": reply.content_type}, close=close)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path.split("?", 1)[0] == "/healthz":
            self._reply(Reply(200, b"ok\n"))
        else:
            self._reply(Reply(404, b"not found; POST checkpoints to /add-checkpoint\n"))

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        if self.path.split("?", 1)[0] != self.server.prefix + "/add-checkpoint":
            self._reply(Reply(404, b"not found; POST checkpoints to /add-checkpoint\n"), close=True)
            return
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            self._reply(Reply(411, b"Content-Length required\n"), close=True)
            return
        try:
            if len(lengths) > 1 or "Transfer-Encoding" in self.headers:
                raise ValueError("one Content-Length and no Transfer-Encoding, or the body's end is unclear")
            length = notes.parse_uint(lengths[0].strip(" \t"), "Content-Length", error=ValueError)  # OWS only
        except ValueError as exc:
            self._reply(Reply(400, f"{exc}\n".encode()), close=True)
            return
        if length > MAX_REQUEST:
            self._reply(Reply(413, f"request over {MAX_REQUEST} bytes\n".encode()), close=True)
            return
        body = self.rfile.read(length)
        if len(body) != length:
            self._reply(Reply(400, b"request body shorter than Content-Length\n"), close=True)
            return
        try:
            reply = self.server.witness.add_checkpoint(body)
        except WitnessStateError as exc:
            reply = Reply(500, f"{exc.message}\n".encode())
        except OSError as exc:  # the state could not be persisted: no cosignature
            reply = Reply(500, f"cannot persist the checkpoint: {exc.strerror}\n".encode())
        self._reply(reply)


class WitnessServer(PooledServer, HTTPServer):
    def __init__(self, address: tuple[str, int], witness: Witness, *, prefix: str = "",
                 workers: int = DEFAULT_WORKERS, queue_size: int = DEFAULT_QUEUE) -> None:
        self.witness = witness
        self.prefix = prefix.rstrip("/")
        self.init_pool(workers, queue_size)
        super().__init__(address, _Handler)
        self.start_pool()

    def open_connection(self, request: socket.socket, seconds: float) -> bool:
        return True

    def busy_reply(self, method: str, path: str, body: bytes) -> BusyReply:
        return BusyReply(503, b"the witness is busy; retry\n")


def serve_in_thread(server: WitnessServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="notary-witness", daemon=True)
    thread.start()
    return thread
