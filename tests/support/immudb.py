"""A real immudb server on loopback for tests: binaries from scripts/immudb-build.sh, own data dir, free port.

`immudb_server` is session-scoped (one server for the whole run); `fresh_immudb_url(server)` gives each test
its own empty database on it, so tests never share ledger state. Tests that must stop, roll back or replace a
server start their own `ImmudbServer`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.components import script_dir
from tests.support.integration import missing
from tests.support.processes import free_port, stop_process

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "immudb-build.sh"
ADMIN_USER = "immudb"
ADMIN_PASSWORD = "immudb"  # immudb's default superadmin password; test servers only listen on loopback

_binaries: Path | None = None

if TYPE_CHECKING:
    from tests.support.cli import Notary


def require_immudb_py() -> None:
    """immudb-py (the `immudb` extra) is needed by the backend and by these helpers: skip/fail without it."""
    try:
        import immudb  # noqa: F401
    except ImportError as exc:
        missing("immudb", f"immudb-py is not installed ({exc}); pip install -e '.[immudb]'")


def immudb_binaries() -> Path:
    """Directory holding immudb and immuclient (IMMUDB_DIR, else scripts/immudb-build.sh); skip/fail if none."""
    global _binaries
    require_immudb_py()
    if _binaries is not None:
        return _binaries
    env_dir = os.environ.get("IMMUDB_DIR")
    if env_dir and (Path(env_dir) / "immudb").is_file() and (Path(env_dir) / "immuclient").is_file():
        _binaries = Path(env_dir)
        return _binaries
    _binaries = script_dir("immudb", BUILD_SCRIPT.name, need=("immudb", "immuclient"), timeout=1800, build=True)
    return _binaries


def write_signing_key(directory: Path) -> tuple[Path, Path]:
    """An ECDSA P-256 key pair for immudb's --signingKey (private PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private = directory / "server-signing.key"
    public = directory / "server-signing.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


class ImmudbServer:
    """One immudb process on 127.0.0.1 with its own data dir; start()/stop() may be repeated."""

    def __init__(self, data_dir: Path, port: int | None = None, *, signing_key: Path | None = None,
                 public_key: Path | None = None, binaries: Path | None = None,
                 tls: tuple[Path, Path] | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.data_dir = Path(data_dir)
        self.extra_args = extra_args  # e.g. immudb's --replication-* flags for a replica
        self.port = port or free_port()
        self.web_port = free_port()  # immudb's web server, serving the HTTP/JSON gateway under /api
        self.tls = tls  # (certificate, private key) PEM files: immudb serves gRPC and the gateway over TLS
        self.signing_key = signing_key
        self.public_key = public_key
        self.binaries = binaries or immudb_binaries()
        self.user = ADMIN_USER
        self.password = ADMIN_PASSWORD
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.url_for("defaultdb")

    @property
    def gateway_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.web_port}"

    def url_for(self, database: str) -> str:
        return f"immudb://{self.user}@{self.address}/{database}"

    def start(self, timeout: float = 30.0) -> ImmudbServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(self.binaries / "immudb"),
            "--dir", str(self.data_dir),
            "--address", "127.0.0.1",
            "--port", str(self.port),
            "--pgsql-server=false",
            "--metrics-server=false",
            "--web-server=true",
            "--web-server-port", str(self.web_port),
            "--grpc-reflection=false",
            "--swaggerui=false",
        ]
        cmd += list(self.extra_args)
        if self.signing_key is not None:
            cmd += ["--signingKey", str(self.signing_key)]
        if self.tls is not None:  # both ports serve TLS; --auto-cert makes the gateway trust this certificate
            cmd += ["--auto-cert", "--certificate", str(self.tls[0]), "--pkey", str(self.tls[1])]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir.parent)
        finally:
            log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        import grpc
        from google.protobuf import empty_pb2
        from immudb.grpc import schema_pb2_grpc

        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"immudb exited with {self.proc.returncode}; log: {self.log_tail()}")
            with grpc.insecure_channel(self.address) as channel:
                try:
                    if self.tls is None:  # with TLS, the ports accepting connections is all that is checked
                        schema_pb2_grpc.ImmuServiceStub(channel).Health(empty_pb2.Empty(), timeout=1)
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        pass
                    with socket.create_connection(("127.0.0.1", self.web_port), timeout=1):
                        return
                except (grpc.RpcError, OSError):
                    pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"immudb did not answer on {self.address} within {timeout}s: {self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc, grace=15)

    def admin_client(self):  # noqa: ANN201 - immudb-py's client, imported lazily
        from immudb import ImmudbClient

        client = ImmudbClient(self.address, timeout=10)
        client.login(self.user, self.password)
        return client

    def create_database(self, name: str | None = None) -> str:
        name = name or "t" + uuid.uuid4().hex[:16]
        client = self.admin_client()
        try:
            client.createDatabase(name.encode())
        finally:
            client.shutdown()
        return name

    def immuclient(self, *args: str, cwd: Path, database: str = "defaultdb",
                   check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run the official immuclient against this server; its own state files land in cwd."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(cwd),
            "IMMUCLIENT_IMMUDB_ADDRESS": "127.0.0.1",
            "IMMUCLIENT_IMMUDB_PORT": str(self.port),
            "IMMUCLIENT_USERNAME": self.user,
            "IMMUCLIENT_PASSWORD": self.password,
            "IMMUCLIENT_DATABASE": database,
        }
        # immuclient 1.9 keeps its login token as `token` in the passwd home directory (ignoring $HOME and
        # --tokenfile) and fails with "invalid token" when it is stale: set any such file aside and restore it.
        token = Path(pwd.getpwuid(os.getuid()).pw_dir) / "token"
        saved = token.read_bytes() if token.is_file() else None
        token.unlink(missing_ok=True)
        try:
            return subprocess.run(
                [str(self.binaries / "immuclient"), *args], cwd=cwd, env=env, capture_output=True, timeout=60,
                check=check,
            )
        finally:
            token.unlink(missing_ok=True)
            if saved is not None:
                token.write_bytes(saved)


def fresh_immudb_url(server: ImmudbServer) -> str:
    """A new, empty database on server and its ledger URL; also makes its password visible to notary.

    The password goes into os.environ (NOTARY_IMMUDB_PASSWORD) because ledger code reads it from there; the
    suite's autouse fixture removes NOTARY_* variables before every test, so it never leaks into another test.
    """
    name = server.create_database()
    os.environ["NOTARY_IMMUDB_PASSWORD"] = server.password
    return server.url_for(name)


def immudb_user(root: Path, url: str) -> Notary:
    """A user of the immudb ledger at url (a fresh_immudb_url), its password handed to the processes it runs."""
    from tests.support.cli import Notary

    root.mkdir(parents=True, exist_ok=True)
    user = Notary(root, ledger_url=url)
    user.env["NOTARY_IMMUDB_PASSWORD"] = os.environ["NOTARY_IMMUDB_PASSWORD"]
    return user


@pytest.fixture(scope="session")
def immudb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImmudbServer]:
    """One real immudb (the pinned version, state signing on) for the whole session."""
    binaries = immudb_binaries()
    base = tmp_path_factory.mktemp("immudb")
    private, public = write_signing_key(base)
    server = ImmudbServer(base / "data", signing_key=private, public_key=public, binaries=binaries)
    try:
        server.start()
    except RuntimeError as exc:
        missing("immudb", str(exc))
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)
