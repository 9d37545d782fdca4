"""Docker Engine authorization plugin: the daemon asks notary before anything of an image's runs or is touched.

dockerd (started with `--authorization-plugin=NAME`) POSTs `Plugin.Activate` once, then `AuthZPlugin.AuthZReq`
before and `AuthZPlugin.AuthZRes` after every API call, to the unix socket `/run/docker/plugins/NAME.sock`.
Which calls are gated, and how the request is read exactly as dockerd routes and decodes it (percent-decoded
path, version prefix, case-insensitive body keys), is `docker_route`. A create is decided on the image its
body names (resolved to image id and repo digests through the Docker API); start, restart, unpause, update,
attach and exec re-check the image of the container they act on, so an image revoked after its container
was created cannot run again. Everything else is allowed: notary gates what runs, not who manages the
daemon. Anything unreadable about a call refuses it, with a decision-log line.

Concurrency: while the plugin decides, it asks the Docker API, and dockerd asks the plugin about *those*
calls before answering. A worker pool in which every worker waits on the API would never get to those
nested calls, so at most `workers - reserve` gated calls are decided at once; a gated call beyond that is
refused as busy (and logged), and the reserved workers always answer the ungated rest.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from notary.digests import SHA256_RE
from notary.errors import (
    EXIT_INTEGRITY,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    InputError,
    NotaryError,
    NotFoundError,
    UsageError,
)
from notary.gate.decision import Gate, GateDecision
from notary.gate.frontends import docker_route
from notary.gate.frontends.docker_api import DockerAPI
from notary.gate.frontends.unix_server import (
    DEFAULT_QUEUE,
    BusyReply,
    PrivateUnixServer,
    QuietUnixHandler,
)
from notary.jsonsafe import parse_object

if TYPE_CHECKING:
    from notary.gate.metrics import Metrics

__all__ = ["AuthZ", "Authorizer", "AuthzServer", "DockerAPI", "make_server", "socket_path"]

PLUGIN_CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
PLUGIN_DIR = "/run/docker/plugins"
MAX_REQUEST = 4 << 20  # an AuthZReq: a body under 1 MiB, base64-encoded, plus headers
DEFAULT_WORKERS = 128  # threads are cheap; 96 gated calls may be decided at once


@dataclass(frozen=True)
class AuthZ:
    allow: bool
    msg: str = ""
    err: str = ""

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"Allow": self.allow}
        if self.msg:
            out["Msg"] = self.msg
        if self.err:
            out["Err"] = self.err
        return out


def max_gated_for(workers: int) -> int:
    """Gated calls decided at once: the other workers (a quarter, at least one) stay free for ungated calls,
    dockerd's nested calls about the plugin's own Docker API lookups among them."""
    if workers < 2:
        raise UsageError("the authorization plugin needs at least 2 workers (one must stay free for the "
                         "daemon's calls about the plugin's own Docker API lookups)")
    return workers - max(1, workers // 4)


class Authorizer:
    def __init__(self, gate: Gate, docker: DockerAPI, *, max_gated: int = 96) -> None:
        self.gate = gate
        self.docker = docker
        self.max_gated = max_gated
        self._slots = threading.BoundedSemaphore(max_gated)

    def request(self, req: Mapping[str, object]) -> AuthZ:
        method, uri = req.get("RequestMethod"), req.get("RequestUri")
        if not isinstance(method, str) or not isinstance(uri, str):
            return self.refuse(None, "request without a method or URI", "unknown")
        try:
            call = docker_route.gated_call(method, uri)
        except InputError as exc:
            return self.refuse(None, f"cannot read the request target {uri[:200]!r}: {exc.one_line()}", "unknown")
        if call is None:
            return AuthZ(True)
        if not self._slots.acquire(blocking=False):
            return self.refuse(None, f"the plugin is busy: {self.max_gated} gated calls are being decided; "
                                "try again", call.action, EXIT_UNAVAILABLE)
        try:
            if call.action == "create":
                return self._create(req)
            if call.action == "exec-start":
                return self._exec_start(call.target)
            return self._existing(call.target, call.action)
        finally:
            self._slots.release()

    def _create(self, req: Mapping[str, object]) -> AuthZ:
        try:
            image = docker_route.create_image(req.get("RequestBody"))
        except InputError as exc:
            return self.refuse(None, f"containers/create body is unreadable: {exc.one_line()}", "create")
        try:
            image_id, digests, _ = self.docker.image(image)
        except NotFoundError:
            # the daemon answers "No such image" itself; `docker run` then pulls and asks again
            return self._absent(image, f"no image {image} in the daemon: dockerd answers 'No such image'", "create")
        except NotaryError as exc:
            return self.refuse(image, f"cannot resolve {image} through the Docker API: {exc.one_line()}", "create",
                               exc.exit_code)
        return self._decide(image, [*digests, image_id], "create")

    def _exec_start(self, exec_id: str) -> AuthZ:
        try:
            container = self.docker.exec_container(exec_id)
        except NotFoundError:
            return self._absent(None, f"no exec instance {exec_id[:80]!r}: dockerd answers 'No such exec'",
                                "exec-start")
        except NotaryError as exc:
            return self.refuse(None, f"cannot resolve exec instance {exec_id[:80]!r}: {exc.one_line()}",
                               "exec-start", exc.exit_code)
        return self._existing(container, "exec-start")

    def _existing(self, container: str, action: str) -> AuthZ:
        try:
            image_id, name, running = self.docker.container(container)
        except NotFoundError:
            return self._absent(None, f"no container {container[:80]!r}: dockerd answers 'No such container'",
                                action)
        except NotaryError as exc:
            return self.refuse(None, f"cannot resolve the image of container {container[:80]!r}: "
                               f"{exc.one_line()}", action, exc.exit_code)
        if action == "attach" and not running:
            return AuthZ(True)  # nothing of the image runs until the start that follows, which is checked
        digests: list[str] = []
        if image_id:
            try:
                _, digests, _ = self.docker.image(image_id)
            except NotFoundError:
                digests = []  # untagged and gone from the image store: the image id alone still identifies it
            except NotaryError as exc:
                return self.refuse(name or image_id, f"cannot resolve image {image_id}: {exc.one_line()}", action,
                                   exc.exit_code)
        return self._decide(name or image_id, [*digests, image_id], action)

    def _decide(self, image: str, digests: list[str], action: str) -> AuthZ:
        found = [d for d in digests if SHA256_RE.match(d)]
        decision = self.gate.check(image, found, front_end="docker-authz", extra={"action": action})
        if decision.allowed:
            return AuthZ(True)
        return AuthZ(False, msg=f"notary refused {image}: {decision.reason}")

    def _absent(self, image: str | None, reason: str, action: str) -> AuthZ:
        """Let dockerd answer "No such ..." (the CLI pulls on that answer), and record that it did."""
        self.gate.log_only(GateDecision(image=image, digest=None, allowed=True, exit_code=EXIT_OK,
                                        reason=reason, via="absent", extra={"action": action}))
        return AuthZ(True)

    def refuse(self, image: str | None, reason: str, action: str, code: int = EXIT_USAGE) -> AuthZ:
        self.gate.log_only(GateDecision(image=image, digest=None, allowed=False, exit_code=code,
                                        reason=reason, via="error", extra={"action": action}))
        return AuthZ(False, msg=f"notary refused: {reason}")


# ---------------------------------------------------------------- the plugin server


class _Handler(QuietUnixHandler):
    server: AuthzServer
    peer = "docker"

    def _reply(self, data: Mapping[str, object], code: int = 200) -> None:
        self.send_body(code, json.dumps(data).encode(), {"Content-Type": PLUGIN_CONTENT_TYPE})

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming; dockerd only POSTs, Prometheus GETs /metrics
        if self.path == "/metrics" and self.server.metrics is not None:
            self.send_metrics(self.server.metrics)
        else:
            self._reply({"Err": "notary: not found"}, 404)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if length < 0 or length > MAX_REQUEST:
            self.close_connection = True
            self._reply(AuthZ(False, msg="notary refused: plugin request too large or unreadable").to_json())
            return
        raw = self.read_body(length) if length else b"{}"
        self._reply(*self.server.answer(self.path.split("?", 1)[0], raw))


class AuthzServer(PrivateUnixServer):
    def __init__(self, path: str, authorizer: Authorizer, *, workers: int = DEFAULT_WORKERS,
                 queue_size: int = DEFAULT_QUEUE, metrics: Metrics | None = None) -> None:
        self.authorizer = authorizer
        self.metrics = metrics  # notary.gate.metrics.Metrics, served at GET /metrics
        super().__init__(path, _Handler, workers=workers, queue_size=queue_size)

    def answer(self, path: str, raw: bytes, *, busy: bool = False) -> tuple[dict[str, object], int]:
        """(JSON answer, HTTP status) for one plugin call; with busy, gated calls are refused undecided."""
        if path == "/Plugin.Activate":
            return {"Implements": ["authz"]}, 200
        if path == "/AuthZPlugin.AuthZRes":
            return {"Allow": True}, 200
        if path != "/AuthZPlugin.AuthZReq":
            return {"Err": f"notary: unknown plugin call {path[:100]}"}, 404
        try:
            req = parse_object(raw, "the plugin request")  # depth, integer size, surrogates, duplicate keys
        except InputError as exc:
            return self.authorizer.refuse(None, f"unreadable plugin request: {exc.one_line()}", "unknown").to_json(), 200
        try:
            if busy:
                return self._busy(req).to_json(), 200
            answer = self.authorizer.request(req)
        except Exception as exc:  # noqa: BLE001 - fail closed, logged like every other refusal
            answer = self.authorizer.refuse(None, f"internal error: {type(exc).__name__}: {str(exc)[:200]}",
                                            "unknown", EXIT_INTEGRITY)
        return answer.to_json(), 200

    def _busy(self, req: Mapping[str, object]) -> AuthZ:
        """Queue full: ungated calls still pass (they decide nothing), gated ones are refused and logged."""
        try:
            call = docker_route.gated_call(str(req.get("RequestMethod")), str(req.get("RequestUri")))
        except InputError:
            call = docker_route.GatedCall("unknown", "", "")
        if call is None:
            return AuthZ(True)
        return self.authorizer.refuse(None, f"the plugin is busy ({self.queue_size} calls waiting); try again",
                                       call.action, EXIT_UNAVAILABLE)

    def busy_reply(self, method: str, path: str, body: bytes) -> BusyReply:
        data, code = self.answer(path, body, busy=True)
        return BusyReply(code, json.dumps(data).encode(), {"Content-Type": PLUGIN_CONTENT_TYPE})


def socket_path(name: str, explicit: str | None = None) -> str:
    if explicit:
        return explicit
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise InputError(f"bad plugin name {name!r}")
    return os.path.join(PLUGIN_DIR, f"{name}.sock")


def make_server(gate: Gate, *, name: str = "notary", socket_file: str | None = None,
                docker_host: str | None = None, workers: int = DEFAULT_WORKERS,
                queue_size: int = DEFAULT_QUEUE, metrics: Metrics | None = None) -> AuthzServer:
    authorizer = Authorizer(gate, DockerAPI(docker_host), max_gated=max_gated_for(workers))
    return AuthzServer(socket_path(name, socket_file), authorizer, workers=workers, queue_size=queue_size,
                       metrics=metrics)
