"""A real OCI registry on loopback: Debian's `docker-registry` (distribution), with optional basic auth.

Fixtures:
- `registry` (session): an anonymous registry. The value is a str "127.0.0.1:PORT" (use it as
  f"registry://{registry}/repo:tag", with SourceOptions(insecure=True)) that also has `.push(layout, tag,
  repo_ref)`, `.url`, `.stop()`.
- `auth_registry` (session): the same behind htpasswd basic auth; `.username`, `.password`, and
  `.write_auth_file(path)` (a docker config.json with its credentials) besides `.push`.
Push with skopeo (`skopeo copy oci:LAYOUT:TAG docker://HOST/REPO:TAG --dest-tls-verify=false`).
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.integration import missing, require_tool


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash (cost 4: tests, not secrets) for htpasswd; distribution accepts only bcrypt."""
    htpasswd = shutil.which("htpasswd")
    if htpasswd:
        out = subprocess.run([htpasswd, "-nBi", "-C", "4", "user"], input=password, capture_output=True, text=True,
                             check=True).stdout
        return out.strip().split(":", 1)[1]
    try:
        import bcrypt  # type: ignore[import-not-found]

        return str(bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode())
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # removed in Python 3.13; present (with libxcrypt bcrypt) on Debian's 3.11

            hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
            if hashed and hashed.startswith("$2"):
                return hashed
    except ImportError:
        pass
    missing("bcrypt", "need apache2-utils (htpasswd), python bcrypt, or the crypt module for htpasswd auth")
    raise AssertionError("unreachable")


class RegistryServer(str):
    """host:port of a running registry; also knows how to push and stop it."""

    proc: subprocess.Popen[bytes]
    workdir: Path
    username: str | None
    password: str | None

    @property
    def url(self) -> str:
        return f"http://{self}"

    def auth_header(self) -> dict[str, str]:
        if not self.username:
            return {}
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def write_auth_file(self, path: Path) -> Path:
        """A docker config.json holding this registry's credentials."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        path.write_text(json.dumps({"auths": {str(self): {"auth": token}}}))
        path.chmod(0o600)
        return path

    def push(self, layout: Path, tag: str, repo_ref: str, *, all_platforms: bool = True) -> str:
        """Copy oci:LAYOUT:TAG to HOST/REPO_REF; returns the pushed manifest digest (Docker-Content-Digest)."""
        skopeo = require_tool("skopeo")
        argv = [skopeo, "copy", "--quiet", "--dest-tls-verify=false"]
        if all_platforms:
            argv.append("--all")
        if self.username:
            argv += ["--dest-authfile", str(self.write_auth_file(self.workdir / "push-auth.json"))]
        argv += [f"oci:{layout}:{tag}", f"docker://{self}/{repo_ref}"]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"skopeo push failed: {proc.stderr.strip()}")
        repo, _, ref = repo_ref.rpartition(":") if "@" not in repo_ref else repo_ref.partition("@")
        accept = ", ".join([
            "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json"])
        resp = requests.head(f"{self.url}/v2/{repo}/manifests/{ref}", headers={"Accept": accept,
                             **self.auth_header()}, timeout=10)
        resp.raise_for_status()
        return str(resp.headers["Docker-Content-Digest"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_registry(*, username: str | None = None, password: str | None = None) -> RegistryServer:
    binary = require_tool("docker-registry")
    workdir = Path(tempfile.mkdtemp(prefix="notary-registry-"))
    port = free_port()
    config = [
        "version: 0.1",
        "log:",
        "  level: error",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {workdir / 'data'}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        f"  secret: {secrets.token_hex(16)}",
    ]
    if username:
        assert password is not None
        (workdir / "htpasswd").write_text(f"{username}:{bcrypt_hash(password)}\n")
        config += ["auth:", "  htpasswd:", "    realm: notary-test", f"    path: {workdir / 'htpasswd'}"]
    (workdir / "config.yml").write_text("\n".join(config) + "\n")
    log = open(workdir / "registry.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([binary, "serve", str(workdir / "config.yml")], stdout=log, stderr=subprocess.STDOUT)
    server = RegistryServer(f"127.0.0.1:{port}")
    server.proc = proc
    server.workdir = workdir
    server.username = username
    server.password = password
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = (workdir / "registry.log").read_text(errors="replace")
            server.stop()
            raise RuntimeError(f"docker-registry exited: {text[-2000:]}")
        try:
            resp = requests.get(f"{server.url}/v2/", timeout=1)
            if resp.status_code in (200, 401):
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError("docker-registry did not answer within 20s")


@pytest.fixture(scope="session")
def registry() -> Iterator[RegistryServer]:
    """An anonymous registry on a free loopback port for the whole session."""
    server = start_registry()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def auth_registry() -> Iterator[RegistryServer]:
    """A registry that requires basic auth (htpasswd); credentials on .username/.password."""
    server = start_registry(username="notary", password=secrets.token_urlsafe(12))
    try:
        yield server
    finally:
        server.stop()
