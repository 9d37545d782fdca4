"""Gate servers started with options (worker pool and queue sizes), and raw HTTP over unix sockets.

- `HookServer(world, "--workers", "1", ...)`: `notary gate hook-server` as its own process on a private socket.
- `AuthzPluginWith(world, "--workers", "4")`: `notary gate docker-authz` like runtimes.AuthzPlugin, with options.
- `raw_http(socket, request_bytes)`: send bytes exactly as given and parse the answer (status, body): for
  request targets and bodies no well-behaved client library would send.
"""

from __future__ import annotations

import contextlib
import http.client
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from tests.support.processes import stop_process, wait_for_socket
from tests.support.runtimes import AuthzPlugin, GateWorld


class HookServer:
    """`notary gate hook-server [OPTIONS]` on a private unix socket."""

    def __init__(self, world: GateWorld, *options: str) -> None:
        self.socket = Path("/tmp") / f"nhs-{uuid.uuid4().hex[:8]}" / "gate.sock"
        self.log_path = world.root / f"hook-server-{uuid.uuid4().hex[:6]}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "notary.cli.main", "--config", str(world.config), "gate", "hook-server",
             "--socket", str(self.socket), *options], env=world.env(), stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for_socket(self.proc, self.socket, self.log_path, "hook server")
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()
        shutil.rmtree(self.socket.parent, ignore_errors=True)


class AuthzPluginWith(AuthzPlugin):
    """runtimes.AuthzPlugin, with extra `gate docker-authz` options (the parent takes none)."""

    def __init__(self, world: GateWorld, *options: str) -> None:
        self.name = "notary-test-" + uuid.uuid4().hex[:8]
        self.socket = Path("/run/docker/plugins") / f"{self.name}.sock"
        self.link_dir = Path("/tmp") / f"nda-{uuid.uuid4().hex[:8]}"
        self.link_dir.mkdir()
        self.docker_link = self.link_dir / "docker.sock"
        self.log_path = world.root / f"authz-{self.name}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the plugin
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "notary.cli.main", "--config", str(world.config), "gate", "docker-authz",
             "--name", self.name, "--docker-host", f"unix://{self.docker_link}", *options],
            env=world.env(), stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_for_socket(self.proc, self.socket, self.log_path, "authz plugin")
        except RuntimeError:
            self.stop()
            raise


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
