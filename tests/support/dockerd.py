"""A private Docker Engine for tests: Debian's dockerd with its own data root, exec root and unix socket.

Fixtures:
- `dockerd` (session): a running daemon; the value is a str, the socket path, that also has `.host`
  ("unix:///.../docker.sock", for DOCKER_HOST / SourceOptions.docker_host), `.docker(*args)` (runs the
  docker CLI against it), `.load(archive)`, `.save(image, out)`.
`start_dockerd(extra_args=[...])` starts another one (e.g. with --authorization-plugin=NAME); call .stop().
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.support.integration import missing, require_tool


class DockerDaemon(str):
    """The socket path of a running dockerd."""

    proc: subprocess.Popen[bytes]
    workdir: Path

    @property
    def host(self) -> str:
        return f"unix://{self}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.host
        env.pop("DOCKER_CONTEXT", None)
        return env

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        docker = require_tool("docker")
        proc = subprocess.run([docker, *args], env=self.env(), capture_output=True, text=True, check=False,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def load(self, archive: Path) -> str:
        """`docker load -i archive`; returns docker's "Loaded image..." line."""
        return self.docker("load", "-i", str(archive)).stdout.strip()

    def save(self, image: str, out: Path) -> Path:
        self.docker("save", "-o", str(out), image)
        return out

    def image_id(self, image: str) -> str:
        return self.docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()

    def log_tail(self, nbytes: int = 3000) -> str:
        try:
            return (self.workdir / "dockerd.log").read_text(errors="replace")[-nbytes:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM and wait: dockerd then stops the containerd it started."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        subprocess.run(["umount", "-R", str(self.workdir / "data")], capture_output=True, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_dockerd(extra_args: Sequence[str] = (), *, timeout: float = 60) -> DockerDaemon:
    binary = require_tool("dockerd")
    require_tool("docker")
    if os.geteuid() != 0:
        missing("dockerd", "needs root here")
    # short path: unix socket paths are limited to 108 bytes
    workdir = Path(tempfile.mkdtemp(prefix="ndk-", dir="/tmp"))
    sock = workdir / "docker.sock"
    argv = [binary, "--data-root", str(workdir / "data"), "--exec-root", str(workdir / "exec"),
            "--pidfile", str(workdir / "docker.pid"), "-H", f"unix://{sock}", "--iptables=false",
            "--ip6tables=false", "--bridge=none", *extra_args]
    log = open(workdir / "dockerd.log", "wb")  # noqa: SIM115 - lives as long as the daemon
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    daemon = DockerDaemon(str(sock))
    daemon.proc = proc
    daemon.workdir = workdir
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = daemon.log_tail()
            daemon.stop()
            raise RuntimeError(f"dockerd exited early: {text}")
        if sock.exists() and daemon.docker("version", check=False, timeout=10).returncode == 0:
            return daemon
        time.sleep(0.2)
    text = daemon.log_tail()
    daemon.stop()
    raise RuntimeError(f"dockerd did not answer within {timeout}s: {text}")


@pytest.fixture(scope="session")
def dockerd() -> Iterator[DockerDaemon]:
    """One private Docker Engine for the session (images loaded by one test are visible to others)."""
    daemon = start_dockerd()
    try:
        yield daemon
    finally:
        daemon.stop()
