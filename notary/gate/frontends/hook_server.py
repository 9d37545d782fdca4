"""The OCI hook's fast path: a resident gate on a unix socket, asked by `curl` from the hook definition.

A Python hook pays interpreter start-up and imports on every container start (most of its ~70 ms). Here the
policy is parsed and the ledger opened once; the hook itself is curl posting the container state:

    curl -sS --fail-with-body --max-time 25 --unix-socket /run/notary/gate.sock \
         --data-binary @- http://notary/oci-hook

200 allows; 403 refuses with notary's reason as the body (curl exits 22, so the runtime refuses and shows
it). If the server is down curl fails too: still fail closed. The decision is the same `Gate.check` as
every other front end, logged with front_end "oci-hook-server". The socket is created 0600: the server
reads any bundle path it is given, so only root (the runtime) may ask.

Bursts (unix_server.PrivateUnixServer): a 1024-deep listen backlog, `workers` threads deciding (ledger reads
are serialized in the Gate anyway; more threads only overlap reading bundles), and up to `queue_size`
accepted hooks waiting. Past that a hook is answered 503 "the gate is busy" at once (curl --fail-with-body
exits 22 and the runtime shows the line), and the refusal is logged like any other.
"""

from __future__ import annotations

import io
from typing import TypedDict

from notary.environment import Environment, given
from notary.errors import EXIT_UNAVAILABLE, InputError
from notary.gate.decision import Gate, GateDecision
from notary.gate.frontends.unix_server import (
    DEFAULT_QUEUE,
    DEFAULT_WORKERS,
    BusyReply,
    PrivateUnixServer,
    QuietUnixHandler,
)
from notary.gate.hook_main import IDENTITY_HEADER
from notary.gate.metrics import Metrics
from notary.gate.oci_hook import MAX_STATE, decide_container
from notary.jsonsafe import parse

CURL = "/usr/bin/curl"


def curl_hook_args(socket_path: str, curl: str = CURL, timeout: int = 25) -> list[str]:
    return [curl, "-sS", "--fail-with-body", "--max-time", str(timeout), "--unix-socket", socket_path,
            "--data-binary", "@-", "http://notary/oci-hook"]


def decide(gate: Gate, body: bytes, storage_root: str | None = None, *, delegated: bool = False,
           env: Environment | None = None) -> GateDecision:
    """The decision for one posted container state (delegated: asked by the Python hook, not by curl)."""
    decision: GateDecision = decide_container(gate, io.BytesIO(body), storage_root=storage_root,
                                              front_end="oci-hook-server",
                                              extra={"delegated": True} if delegated else None, env=env)
    return decision


class _Handler(QuietUnixHandler):
    server: HookServer
    peer = "runtime"

    def _reply(self, code: int, text: str, exit_code: int) -> None:
        self.send_body(code, text.encode(), {"Content-Type": "text/plain; charset=utf-8",
                                             "X-Notary-Exit-Code": str(exit_code)})

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path == "/healthz":
            self._reply(200, "ok\n", 0)
        elif self.path == "/identity":  # what `gate install` compares with the hook it writes
            self._reply(200 if self.server.identity else 404, f"{self.server.identity or ''}\n", 0)
        elif self.path == "/metrics" and self.server.metrics is not None:
            self.send_metrics(self.server.metrics)
        else:
            self._reply(404, "not found\n", 2)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        if self.path.split("?", 1)[0] != "/oci-hook":
            self._reply(404, "notary: refused: POST the container state to /oci-hook\n", 2)
            return
        try:
            length = int(self.headers.get("Content-Length") or "-1")
        except ValueError:
            length = -1
        if length < 0 or length > MAX_STATE:
            self.close_connection = True
            self._reply(413, "notary: refused: container state missing or larger than 1 MiB\n", 2)
            return
        asked_by_hook = self.headers.get(IDENTITY_HEADER)
        if asked_by_hook is not None and asked_by_hook != self.server.identity:
            self.rfile.read(length)
            self._reply(409, "notary: this hook server decides for another notary.toml, ledger or storage root "
                        "(or an older version of the file); the hook decides itself\n", 2)
            return
        decision = decide(self.server.gate, self.read_body(length), self.server.storage_root,
                          delegated=asked_by_hook is not None, env=self.server.env)
        if decision.allowed:
            self._reply(200, f"notary: allowed: {decision.reason}\n", 0)
        else:
            who = decision.image or decision.digest or "container"
            self._reply(403, f"notary: refused {who}: {decision.reason}\n", decision.exit_code or 1)


class HookServer(PrivateUnixServer):
    def __init__(self, path: str, gate: Gate, storage_root: str | None = None, *, workers: int = DEFAULT_WORKERS,
                 queue_size: int = DEFAULT_QUEUE, identity: str | None = None,
                 metrics: Metrics | None = None, env: Environment | None = None) -> None:
        """identity (hook_main.identity of the config, ledger and storage root this server decides with): the
        Python hook delegates to this server only when its own identity is the same; None never decides for it.
        env: the environment the server started with (NOTARY_PODMAN_STORAGE), read once."""
        self.gate = gate
        self.storage_root = storage_root
        self.env = given(env)
        self.identity = identity
        self.metrics = metrics
        super().__init__(path, _Handler, dir_mode=0o700, workers=workers, queue_size=queue_size)

    def busy_reply(self, method: str, path: str, body: bytes) -> BusyReply:
        """A full queue refuses the container at once, with the reason on the line curl shows, and logs it."""
        reason = (f"the gate is busy: {self.workers} hooks being decided and {self.queue_size} waiting; "
                  "refusing rather than letting the runtime time out")
        if method == "POST" and path == "/oci-hook":
            try:
                state = parse(body, "container state")
            except InputError:
                state = None
            container = state.get("id") if isinstance(state, dict) and isinstance(state.get("id"), str) else None
            self.gate.log_only(GateDecision(image=None, digest=None, allowed=False,
                                            exit_code=EXIT_UNAVAILABLE, reason=reason, via="error",
                                            extra={"container": container}))
        return BusyReply(503, f"notary: refused: {reason}\n".encode(),
                         {"Content-Type": "text/plain; charset=utf-8", "X-Notary-Exit-Code": str(EXIT_UNAVAILABLE)})


class Health(TypedDict):
    status: int  # the HTTP status
    body: str


def health(path: str, what: str = "/healthz") -> Health:
    """Ask a running server for /healthz or /identity (used by tests and `gate install`). Raises OSError."""
    from notary.gate.frontends.docker_api import UnixConnection

    conn = UnixConnection(path, 5.0)
    try:
        conn.request("GET", what)
        resp = conn.getresponse()
        return {"status": resp.status, "body": resp.read().decode(errors="replace")}
    finally:
        conn.close()

