"""Docker Engine authorization plugin: the daemon asks notary before it creates, starts or execs a container.

dockerd (started with `--authorization-plugin=NAME`) POSTs `Plugin.Activate` once, then `AuthZPlugin.AuthZReq`
before and `AuthZPlugin.AuthZRes` after every API call, to the unix socket `/run/docker/plugins/NAME.sock`.
notary refuses `containers/create` for an image that fails the gate (the image name is resolved to its image
id and repo digests through the Docker API), and re-checks at `start`, `restart` and `exec` so that an image
revoked after its container was created cannot be started again. Every other call is allowed: notary gates
what runs, not who manages the daemon. Anything unreadable about a gated call refuses it.

stdlib only: a threaded HTTP server on a unix socket (the daemon calls the plugin again for the plugin's own
API requests, so it must answer concurrently), and http.client over AF_UNIX for the Docker API.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from notary.errors import InputError, NotaryError, NotFoundError, SourceUnavailableError
from notary.gate.decide import EXIT_INTEGRITY, Gate, GateDecision
from notary.gate.unix_server import PrivateUnixServer, QuietUnixHandler

PLUGIN_CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
PLUGIN_DIR = "/run/docker/plugins"
MAX_BODY = 4 << 20
_VERSIONED = re.compile(r"^/v[0-9.]+(/.*)$")
_CREATE = re.compile(r"^/containers/create$")
_BY_ID = re.compile(r"^/containers/([^/]+)/(start|restart|exec)$")
_SHA = re.compile(r"sha256:[0-9a-f]{64}")


# ---------------------------------------------------------------- the Docker API


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


class DockerAPI:
    """Just enough of the Engine API to learn what image a name or a container stands for."""

    def __init__(self, host: str | None = None, timeout: float = 10.0) -> None:
        self.host = host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        url = urlsplit(self.host)
        if url.scheme == "unix":
            return _UnixConnection(url.path, self.timeout)
        if url.scheme in ("tcp", "http"):
            return http.client.HTTPConnection(url.hostname or "localhost", url.port or 2375, timeout=self.timeout)
        raise InputError(f"unsupported Docker host {self.host!r}", hint="use unix:///path/docker.sock")

    def get(self, path: str) -> Any:
        conn = self._connection()
        try:
            conn.request("GET", path, headers={"Host": "docker"})
            resp = conn.getresponse()
            body = resp.read(MAX_BODY + 1)
        except OSError as exc:
            raise SourceUnavailableError(f"cannot reach the Docker API at {self.host}: {exc}") from exc
        finally:
            conn.close()
        if resp.status == 404:
            raise NotFoundError(f"Docker has no {path.split('/')[1][:-1]} {path.split('/')[2]}")
        if resp.status != 200 or len(body) > MAX_BODY:
            raise InputError(f"Docker API GET {path} answered {resp.status}")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise InputError(f"Docker API GET {path} answered non-JSON") from exc

    def image(self, name: str) -> tuple[str, list[str], list[str]]:
        """(image id, repo digests, repo tags) of a local image name, id or name@digest."""
        data = self.get(f"/images/{quote(name, safe='/:@')}/json")
        image_id = str(data.get("Id") or "")
        digests = [d.split("@", 1)[1] for d in data.get("RepoDigests") or [] if isinstance(d, str) and "@" in d]
        tags = [t for t in data.get("RepoTags") or [] if isinstance(t, str)]
        return image_id, digests, tags

    def container_image(self, container: str) -> tuple[str, str]:
        """(image id, the image name it was created with) of a container."""
        data = self.get(f"/containers/{quote(container, safe='')}/json")
        config = data.get("Config") if isinstance(data.get("Config"), Mapping) else {}
        return str(data.get("Image") or ""), str(config.get("Image") or "")


# ---------------------------------------------------------------- decisions


@dataclass(frozen=True)
class AuthZ:
    allow: bool
    msg: str = ""
    err: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Allow": self.allow}
        if self.msg:
            out["Msg"] = self.msg
        if self.err:
            out["Err"] = self.err
        return out


class Authorizer:
    def __init__(self, gate: Gate, docker: DockerAPI) -> None:
        self.gate = gate
        self.docker = docker

    def request(self, req: Mapping[str, Any]) -> AuthZ:
        method = str(req.get("RequestMethod") or "")
        uri = str(req.get("RequestUri") or "")
        path = urlsplit(uri).path
        match = _VERSIONED.match(path)
        if match:
            path = match.group(1)
        if method != "POST":
            return AuthZ(True)
        if _CREATE.match(path):
            return self._create(req)
        by_id = _BY_ID.match(path)
        if by_id:
            return self._existing(by_id.group(1), by_id.group(2))
        return AuthZ(True)

    def _create(self, req: Mapping[str, Any]) -> AuthZ:
        raw = req.get("RequestBody")
        if not raw:
            return self._refuse(None, "containers/create without a readable body: cannot tell the image")
        try:
            body = json.loads(base64.b64decode(raw, validate=True))
            image = body["Image"]
            if not isinstance(image, str) or not image:
                raise ValueError("no Image")
        except (ValueError, KeyError, TypeError) as exc:
            return self._refuse(None, f"containers/create body is unreadable: {exc}")
        try:
            image_id, digests, _ = self.docker.image(image)
        except NotFoundError:
            # the daemon will answer "No such image" itself; `docker run` then pulls and asks again
            return AuthZ(True)
        except NotaryError as exc:
            return self._refuse(image, f"cannot resolve {image} through the Docker API: {exc.one_line()}")
        return self._decide(image, [*digests, image_id], "create")

    def _existing(self, container: str, action: str) -> AuthZ:
        try:
            image_id, name = self.docker.container_image(container)
            digests: list[str] = []
            if image_id:
                _, digests, _ = self.docker.image(image_id)
        except NotFoundError:
            return AuthZ(True)  # no such container: the daemon refuses on its own
        except NotaryError as exc:
            return self._refuse(None, f"cannot resolve the image of container {container}: {exc.one_line()}")
        return self._decide(name or image_id, [*digests, image_id], action)

    def _decide(self, image: str, digests: list[str], action: str) -> AuthZ:
        found = [d for d in digests if _SHA.fullmatch(d)]
        decision = self.gate.check(image, found, front_end="docker-authz", extra={"action": action})
        if decision.allowed:
            return AuthZ(True)
        return AuthZ(False, msg=f"notary refused {image}: {decision.reason}")

    def _refuse(self, image: str | None, reason: str) -> AuthZ:
        decision = GateDecision(image, None, False, EXIT_INTEGRITY, reason, "error",
                                extra={"front_end_detail": "docker-authz"})
        self.gate.log_only(decision)
        return AuthZ(False, msg=f"notary refused: {reason}")


# ---------------------------------------------------------------- the plugin server


class _Handler(QuietUnixHandler):
    server: AuthzServer
    peer = "docker"

    def _reply(self, data: Mapping[str, Any], code: int = 200) -> None:
        body = json.dumps(data).encode()
        self.send_response(code)
        self.send_header("Content-Type", PLUGIN_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._reply(AuthZ(False, err="notary: request too large or unreadable").to_json())
            return
        raw = self.rfile.read(length) if length else b"{}"
        path = self.path.split("?", 1)[0]
        if path == "/Plugin.Activate":
            self._reply({"Implements": ["authz"]})
            return
        if path == "/AuthZPlugin.AuthZRes":
            self._reply({"Allow": True})
            return
        if path != "/AuthZPlugin.AuthZReq":
            self._reply({"Err": f"notary: unknown plugin call {path}"}, 404)
            return
        try:
            req = json.loads(raw)
            if not isinstance(req, dict):
                raise ValueError("not an object")
            answer = self.server.authorizer.request(req)
        except Exception as exc:  # noqa: BLE001 - fail closed
            answer = AuthZ(False, msg=f"notary refused: internal error: {type(exc).__name__}: {exc}")
        self._reply(answer.to_json())


class AuthzServer(PrivateUnixServer):
    def __init__(self, path: str, authorizer: Authorizer) -> None:
        self.authorizer = authorizer
        super().__init__(path, _Handler)


def socket_path(name: str, explicit: str | None = None) -> str:
    if explicit:
        return explicit
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise InputError(f"bad plugin name {name!r}")
    return os.path.join(PLUGIN_DIR, f"{name}.sock")


def make_server(gate: Gate, *, name: str = "notary", socket_file: str | None = None,
                docker_host: str | None = None) -> AuthzServer:
    return AuthzServer(socket_path(name, socket_file), Authorizer(gate, DockerAPI(docker_host)))
