"""A gate "world" for tests (ledger, keys, policy, decision log) and real container runtimes around it.

- `GateWorld`: one ledger with a trusted and an untrusted signing key, a notary.toml whose [policy] trusts
  the first key for every image, and a decision log. The gate keeps its own trusted state (gate-state/),
  separate from the notarizing client's, as a real node would. The `world` fixture (registered suite-wide)
  is one per test, with its ledger created.
- runc: `runc_bundle(layout, tag, dest, trace)` unpacks an image with umoci into a runnable bundle whose
  command writes `trace/ran` (the proof a container started); `run_runc(bundle)` runs it.
- podman: `Podman` runs `podman run --rm oci:LAYOUT:TAG` with private storage and a hooks dir (the `podman`
  fixture: one per test module).
- the gate's resident servers as their own processes (`GateServer`): `Webhook`, `AuthzPlugin` and `HookServer`,
  each with extra command-line options as given.
Images are notarized through the library (manifest digest plus config and layers as artifacts), the same
records `notary notarize oci:...` writes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from notary import keys
from notary.gate.oci_hook import HOOK_CODE
from notary.ledger import open_ledger
from notary.notarize import notarize, revoke
from notary.sources.base import Artifact, Subject
from tests.support.cli import flip_envelope_byte
from tests.support.images import manifest_of
from tests.support.integration import missing, require_tool
from tests.support.processes import free_port, stop_process, wait_for_socket, wait_until

HOOK_ARGV = [sys.executable, "-c", HOOK_CODE]


def image_subject(layout: Path, tag: str = "v1", name: str | None = None,
                  names: tuple[str, ...] = ("registry.example/bb",)) -> Subject:
    """The layout's image as notarize records it, bound to the repositories it is published as (names)."""
    from notary.names import repositories

    digest, manifest = manifest_of(layout, tag)
    arts = [Artifact(digest, 0, manifest.get("mediaType", "application/vnd.oci.image.manifest.v1+json"),
                     "manifest")]
    cfg = manifest["config"]
    arts.append(Artifact(cfg["digest"], cfg["size"], cfg["mediaType"], "config"))
    arts += [Artifact(x["digest"], x["size"], x["mediaType"], "layer") for x in manifest["layers"]]
    return Subject(digest, name or f"oci:{layout.name}:{tag}", "oci-manifest", tuple(arts), image_id=cfg["digest"],
                   names=repositories(names))


class GateWorld:
    def __init__(self, root: Path, *, fail: str = "closed", extra_policy: str = "",
                 ledger_url: str | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.ledger_path = root / "ledger.db"
        self.ledger_url = ledger_url or self.ledger_path.as_uri()
        self.client_state = root / "client-state"
        self.gate_state = root / "gate-state"
        self.log = root / "decisions.jsonl"
        self.trusted = keys.generate_private_key()
        self.untrusted = keys.generate_private_key()
        keys.write_key_pair(root / "trusted.key", self.trusted)
        keys.write_key_pair(root / "untrusted.key", self.untrusted)
        self.config = root / "notary.toml"
        self.write_policy(fail=fail, extra=extra_policy)

    def write_policy(self, *, fail: str = "closed", extra: str = "", ledger_url: str | None = None) -> Path:
        self.config.write_text(
            f'ledger = "{ledger_url or self.ledger_url}"\n'
            f'state_dir = "{self.gate_state}"\n'
            "[policy]\n"
            f'fail = "{fail}"\n'
            f'decision_log = "{self.log}"\n'
            "[[policy.trust]]\n"
            'images = ["*"]\n'
            'keys = ["trusted.key.pub"]\n' + extra
        )
        return self.config

    # ------------------------------------------------------------ ledger writes (the CI side)

    def _ledger(self) -> Any:
        return open_ledger(self.ledger_url, state_dir=self.client_state, create=True)

    def notarize(self, subject: Subject, *, trusted: bool = True) -> None:
        ledger = self._ledger()
        try:
            notarize(ledger, [subject], self.trusted if trusted else self.untrusted,
                     {"system": "local", "jobId": uuid.uuid4().hex[:12]})
        finally:
            ledger.close()

    def revoke(self, digest: str, reason: str = "CVE-2026-0001") -> None:
        ledger = self._ledger()
        try:
            revoke(ledger, digest, self.trusted, reason)
        finally:
            ledger.close()

    def tamper(self) -> None:
        assert flip_envelope_byte(self.ledger_path) >= 1

    def ensure_ledger(self) -> None:
        self._ledger().close()

    # ------------------------------------------------------------ the gate side

    def env(self) -> dict[str, str]:
        keep = ("NOTARY_IMMUDB_PASSWORD", "NOTARY_IMMUDB_PASSWORD_FILE")
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTARY_") or k in keep}
        env["NOTARY_CONFIG"] = str(self.config)
        return env

    def decisions(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def gate_check(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "notary.cli.main", "gate", "check", "--log", *args],
                              env={**self.env(), **(env or {})}, capture_output=True, text=True, timeout=120)

    def hook_spec(self) -> dict[str, Any]:
        return {"path": HOOK_ARGV[0], "args": HOOK_ARGV, "env": [f"NOTARY_CONFIG={self.config}",
                                                                  "PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                "timeout": 30}


@pytest.fixture
def world(tmp_path: Path) -> GateWorld:
    """A GateWorld of the test's own, its (empty) ledger created: what a gate on a fresh node finds. Modules
    that need another world (notarized images, a module-wide one) define their own `world`."""
    w = GateWorld(tmp_path / "world")
    w.ensure_ledger()
    return w


# ---------------------------------------------------------------- runc


def runc_bundle(layout: Path, tag: str, dest: Path, trace: Path, hook: dict[str, Any] | None,
                *, stage: str = "createRuntime", annotations: dict[str, str] | None = None) -> Path:
    """umoci-unpacked bundle whose command leaves trace/ran behind when (and only when) it runs."""
    umoci = require_tool("umoci")
    proc = subprocess.run([umoci, "unpack", "--image", f"{layout}:{tag}", str(dest)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"umoci unpack failed: {proc.stderr}")
    trace.mkdir(parents=True, exist_ok=True)
    path = dest / "config.json"
    config = json.loads(path.read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/sh", "-c", "echo ran > /trace/ran; cat /marker.txt"]
    config["mounts"].append({"destination": "/trace", "type": "bind", "source": str(trace),
                             "options": ["rbind", "rw"]})
    config["root"]["readonly"] = False
    if hook is not None:
        config.setdefault("hooks", {})[stage] = [hook]
    if annotations:
        config.setdefault("annotations", {}).update(annotations)
    path.write_text(json.dumps(config))
    return dest


def run_runc(bundle: Path, state_root: Path, *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    runc = require_tool("runc")
    if os.geteuid() != 0:
        missing("runc", "needs root here")
    cid = "notary-" + uuid.uuid4().hex[:12]
    try:
        return subprocess.run([runc, "--root", str(state_root), "run", "--bundle", str(bundle), cid],
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    finally:
        subprocess.run([runc, "--root", str(state_root), "delete", "--force", cid], capture_output=True,
                       check=False)


# ---------------------------------------------------------------- podman


class Podman:
    """podman with private storage, cgroupfs, runc, and the containers.conf this sandbox needs (written below)."""

    def __init__(self, root: Path) -> None:
        self.binary = require_tool("podman")
        require_tool("runc")
        if os.geteuid() != 0:
            missing("podman", "needs root here")
        self.root = root
        self.storage = root / "storage"
        self.runroot = Path("/tmp") / f"npr-{uuid.uuid4().hex[:8]}"  # short: socket path limits
        self.hooks_dir = root / "hooks.d"
        self.hooks_dir.mkdir(parents=True, exist_ok=True)
        self.conf = root / "containers.conf"
        self.conf.write_text("[containers]\ndefault_ulimits = []\n")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTARY_")}
        env["CONTAINERS_CONF"] = str(self.conf)
        return env

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.storage), "--runroot", str(self.runroot),
                "--cgroup-manager=cgroupfs", "--runtime", "runc", "--hooks-dir", str(self.hooks_dir), *args]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), env=self.env(), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def cleanup(self) -> None:
        subprocess.run(self.argv("rm", "--all", "--force"), env=self.env(), capture_output=True, check=False)
        subprocess.run([self.binary, "--root", str(self.storage), "--runroot", str(self.runroot),
                        "system", "reset", "--force"], env=self.env(), capture_output=True, check=False)
        subprocess.run(["umount", "-R", str(self.storage / "overlay")], capture_output=True, check=False)
        shutil.rmtree(self.runroot, ignore_errors=True)


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """One Podman (private storage) per test module, its containers and storage removed afterwards."""
    runtime = Podman(tmp_path_factory.mktemp("podman"))
    try:
        yield runtime
    finally:
        runtime.cleanup()


# ---------------------------------------------------------------- TLS and the webhook


def self_signed_cert(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throwaway certificate for host (IP SAN), as a cluster's cert-manager would issue for the service."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "notary-gate-test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


_Server = TypeVar("_Server", bound="GateServer")


class GateServer:
    """`notary gate ARGS...` under a world's notary.toml and environment, as its own process; its output is
    appended to log_path (a restarted server keeps one log). start() returns once it serves (by default: once
    self.socket exists), stop() sends SIGTERM as a service manager would; `with` stops it at the end."""

    what = "gate server"
    socket: Path

    def __init__(self, world: GateWorld, log_path: Path, *args: str) -> None:
        self.world = world
        self.log_path = log_path
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "notary.cli.main", "--config", str(self.world.config), "gate", *self.args],
                env=self.world.env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            self.wait_until_serving(self.proc)
        except RuntimeError:
            self.stop()
            raise

    def wait_until_serving(self, proc: subprocess.Popen[bytes]) -> None:
        wait_for_socket(proc, self.socket, self.log_path, self.what)

    def stop(self) -> None:
        stop_process(self.proc)

    def __enter__(self: _Server) -> _Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Webhook(GateServer):
    """`notary gate webhook [OPTIONS]` on a loopback port, over real TLS with a throwaway certificate (cert), or
    with tls=False over plain HTTP (--insecure-plain-http). url is its base (the API server posts to
    url + "/validate"); stop() and start() again serve on the same port and certificate. Replicas of one
    webhook share a certificate: tls_files=(cert, key). Without --drain-seconds among the options it stops
    at once on SIGTERM (--drain-seconds 0: no endpoint propagation to wait for here)."""

    what = "notary gate webhook"

    def __init__(self, world: GateWorld, *options: str, tls: bool = True,
                 tls_files: tuple[Path, Path] | None = None) -> None:
        self.port = free_port()
        self.cert: Path | None = None
        if "--drain-seconds" not in options:
            options = (*options, "--drain-seconds", "0")
        if tls:
            self.cert, self.key = tls_files or self_signed_cert(world.root / "webhook-tls")
            listen: tuple[str, ...] = ("--cert", str(self.cert), "--key", str(self.key))
        else:
            listen = ("--insecure-plain-http",)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        super().__init__(world, world.root / f"webhook-{self.port}.log", "webhook", *listen, "--host", "127.0.0.1",
                         "--port", str(self.port), *options)
        self.start()

    def wait_until_serving(self, proc: subprocess.Popen[bytes]) -> None:
        import requests

        verify = str(self.cert) if self.cert else False
        wait_until(self.what, proc, self.log_path,
                   lambda: requests.get(self.url + "/healthz", verify=verify, timeout=2).status_code == 200,
                   timeout=30)


class AuthzPlugin(GateServer):
    """`notary gate docker-authz [OPTIONS]` as its own process on /run/docker/plugins/NAME.sock.

    The Docker API address is a symlink the test points at the daemon once it is up: dockerd needs the plugin
    answering before it is usable, and the plugin needs the daemon only for gated calls.
    """

    what = "authz plugin"

    def __init__(self, world: GateWorld, *options: str) -> None:
        if os.geteuid() != 0:
            missing("docker authz plugin", "needs root to listen under /run/docker/plugins")
        self.name = "notary-test-" + uuid.uuid4().hex[:8]
        self.socket = Path("/run/docker/plugins") / f"{self.name}.sock"
        self.link_dir = Path("/tmp") / f"nda-{uuid.uuid4().hex[:8]}"
        self.link_dir.mkdir()
        self.docker_link = self.link_dir / "docker.sock"
        super().__init__(world, world.root / f"authz-{self.name}.log", "docker-authz", "--name", self.name,
                         "--docker-host", f"unix://{self.docker_link}", *options)
        self.start()

    def point_at(self, docker_socket: str) -> None:
        if self.docker_link.is_symlink():
            self.docker_link.unlink()
        self.docker_link.symlink_to(docker_socket)

    def stop(self) -> None:
        super().stop()
        self.socket.unlink(missing_ok=True)
        shutil.rmtree(self.link_dir, ignore_errors=True)


class HookServer(GateServer):
    """`notary gate hook-server [OPTIONS]` as its own process on a private unix socket."""

    what = "hook server"

    def __init__(self, world: GateWorld, *options: str) -> None:
        self.socket = Path("/tmp") / f"nhs-{uuid.uuid4().hex[:8]}" / "gate.sock"
        super().__init__(world, world.root / f"hook-server-{self.socket.parent.name}.log", "hook-server",
                         "--socket", str(self.socket), *options)
        self.start()

    def hook_spec(self) -> dict[str, Any]:
        """The OCI hook `gate install --server` writes: curl asking this server."""
        from notary.gate.install import hook_definition

        return dict(hook_definition("unused", server=str(self.socket))["hook"])

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.socket.parent, ignore_errors=True)
