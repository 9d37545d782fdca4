"""The Python OCI hook asks a running `notary gate hook-server` first (fast), and decides itself otherwise.

What must hold: a delegated decision is the server's Gate.check (logged by the server, `delegated: true`);
a hook never borrows a server started with another policy (an edited notary.toml, another ledger); a socket
anyone else could have planted is never asked; and with no server, a busy one, or a broken answer, the hook
decides in process, failing closed exactly as before. Real runc, real hook processes, a real ledger.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.burst import state, write_bundle
from notary.gate import hook_main, oci_hook
from notary.sources.base import Subject
from tests.support.runtimes import HOOK_ARGV, GateWorld, HookServer, image_subject, run_runc, runc_bundle

GOOD = "sha256:" + "c7" * 32
UNSIGNED = "sha256:" + "d7" * 32


@pytest.fixture
def server(world: GateWorld) -> Iterator[HookServer]:
    with HookServer(world) as proc:
        yield proc


def _hook(world: GateWorld, body: bytes, socket_path: Path | str,
          extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """The hook process exactly as a runtime starts it (HOOK_ARGV, the definition's environment)."""
    env = {"NOTARY_CONFIG": str(world.config), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
           hook_main.SOCKET_ENV: str(socket_path), **(extra_env or {})}
    return subprocess.run(HOOK_ARGV, input=body, env=env, capture_output=True, timeout=60, check=False)


def _runc(world: GateWorld, layout: Path, tmp_path: Path, socket_path: Path, name: str) -> tuple[int, str, Path]:
    spec = world.hook_spec()
    spec["env"] = [*spec["env"], f"{hook_main.SOCKET_ENV}={socket_path}"]
    trace = tmp_path / f"trace-{name}"
    bundle = runc_bundle(layout, "v1", tmp_path / name, trace, spec)
    proc = run_runc(bundle, tmp_path / "runc-state")
    return proc.returncode, proc.stdout + proc.stderr, trace / "ran"


def test_python_hook_delegates_to_the_running_hook_server(server: HookServer, world: GateWorld,
                                                          busybox_layout: Path, tmp_path: Path) -> None:
    subject = image_subject(busybox_layout)
    world.notarize(subject)
    code, output, ran = _runc(world, busybox_layout, tmp_path, server.socket, "allowed")
    assert code == 0, output
    assert ran.exists()
    line = world.decisions()[-1]
    assert (line["front_end"], line.get("delegated"), line["allowed"]) == ("oci-hook-server", True, True)
    world.revoke(subject.digest, "CVE-2026-7777")
    code, output, ran = _runc(world, busybox_layout, tmp_path, server.socket, "revoked")
    assert code != 0 and not ran.exists() and "CVE-2026-7777" in output
    line = world.decisions()[-1]
    assert (line["front_end"], line.get("delegated"), line["allowed"]) == ("oci-hook-server", True, False)


def test_hook_never_borrows_a_server_with_an_older_policy(server: HookServer, world: GateWorld,
                                                          tmp_path: Path) -> None:
    """The server loaded a policy trusting the key; notary.toml then changed to trust another one. The server
    would still allow: the hook must see the edit and decide itself, with the new policy."""
    world.notarize(Subject(GOOD, "registry.example/app", "oci-manifest"))
    bundle = write_bundle(tmp_path / "bundle", GOOD, "registry.example/app:1")
    assert _hook(world, state("before", bundle), server.socket).returncode == 0
    assert world.decisions()[-1].get("delegated") is True
    world.config.write_text(world.config.read_text().replace("trusted.key.pub", "untrusted.key.pub"))
    proc = _hook(world, state("after", bundle), server.socket)
    assert proc.returncode == 1, proc.stderr
    assert b"not notarized" in proc.stderr
    line = world.decisions()[-1]
    assert (line["container"], line["front_end"], line["allowed"]) == ("after", "oci-hook", False)


def test_hook_with_another_ledger_is_not_decided_by_the_server(server: HookServer, world: GateWorld,
                                                               tmp_path: Path) -> None:
    """Same notary.toml, but the hook's definition names another ledger (NOTARY_LEDGER): the server's answer
    is about the wrong ledger, so the hook decides itself (a missing ledger: unreachable, refused)."""
    world.notarize(Subject(GOOD, "registry.example/app", "oci-manifest"))
    bundle = write_bundle(tmp_path / "bundle", GOOD, "registry.example/app:1")
    other = {"NOTARY_LEDGER": (tmp_path / "nowhere.db").as_uri()}
    proc = _hook(world, state("other-ledger", bundle), server.socket, other)
    assert proc.returncode == 4, proc.stderr
    assert world.decisions()[-1]["front_end"] == "oci-hook"


class _AllowEverything:
    """A planted "hook server" that allows whatever it is asked (what an attacker would run)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.asked = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.asked += 1
                conn.recv(1 << 20)
                body = b"notary: allowed: trust me\n"
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Notary-Exit-Code: 0\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.mark.parametrize("planted", ["world-writable-directory", "socket-owned-by-another-user"])
def test_planted_allow_everything_socket_is_never_asked(planted: str, world: GateWorld, tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "bundle", UNSIGNED, "registry.example/app:2")
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    fake = _AllowEverything(directory / "gate.sock")
    try:
        if planted == "world-writable-directory":
            directory.chmod(0o777)
        else:
            os.chown(fake.path, 65534, 65534)
        proc = _hook(world, state("planted", bundle), fake.path)
        assert proc.returncode == 1, proc.stderr
        assert b"not notarized" in proc.stderr
        assert fake.asked == 0
        assert world.decisions()[-1]["front_end"] == "oci-hook"
    finally:
        fake.close()


def test_trusted_socket_is_asked_and_its_allow_is_final(world: GateWorld, tmp_path: Path) -> None:
    """The other side of the test above: the same fake in a private directory *is* asked (so the test above
    refuses for the right reason, the socket's place and owner)."""
    bundle = write_bundle(tmp_path / "bundle", UNSIGNED, "registry.example/app:2")
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    fake = _AllowEverything(directory / "gate.sock")
    try:
        proc = _hook(world, state("private", bundle), fake.path)
        assert proc.returncode == 0 and fake.asked == 1
    finally:
        fake.close()


def test_no_server_means_the_hook_decides_itself_and_fails_closed(world: GateWorld, tmp_path: Path) -> None:
    world.notarize(Subject(GOOD, "registry.example/app", "oci-manifest"))
    good = write_bundle(tmp_path / "good", GOOD, "registry.example/app:1")
    missing = tmp_path / "no-server" / "gate.sock"
    assert _hook(world, state("alone", good), missing).returncode == 0
    assert world.decisions()[-1]["front_end"] == "oci-hook"
    world.tamper()
    proc = _hook(world, state("tampered", good), missing)
    assert proc.returncode == 3 and b"integrity failure" in proc.stderr


@pytest.mark.parametrize("reply", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\ncut short",  # an answer cut off mid-body
    b"HTTP/1.1 503 Service Unavailable\r\nX-Notary-Exit-Code: 4\r\nContent-Length: 5\r\n\r\nbusy\n",
    b"garbage",
], ids=["truncated-allow", "busy", "garbage"])
def test_unusable_server_answer_falls_back_to_deciding_here(reply: bytes, world: GateWorld, tmp_path: Path) -> None:
    bundle = write_bundle(tmp_path / "bundle", UNSIGNED, "registry.example/app:2")
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    path = directory / "gate.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(1 << 20)
            conn.sendall(reply)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        proc = _hook(world, state("unusable", bundle), path)
    finally:
        listener.close()
    thread.join(timeout=5)
    assert proc.returncode == 1 and b"not notarized" in proc.stderr
    assert world.decisions()[-1]["front_end"] == "oci-hook"


def test_hook_entry_and_in_process_hook_share_the_state_limit() -> None:
    assert hook_main.MAX_STATE == oci_hook.MAX_STATE
    assert "hook_main" in oci_hook.HOOK_CODE
