"""The fast hook path: runc runs curl, curl asks a resident `notary gate hook-server`; same verdicts.

Bursts are real curl processes (the argv `gate install --server` writes) released at the same moment.
"""

from __future__ import annotations

import http.client
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.burst import hook_burst, state, write_bundle
from notary.sources.base import Subject
from tests.support.gate_servers import raw_request
from tests.support.integration import require_tool
from tests.support.runtimes import GateWorld, HookServer, image_subject, run_runc, runc_bundle

GOOD = "sha256:" + "a7" * 32
UNSIGNED = "sha256:" + "b7" * 32


@pytest.fixture
def server(world: GateWorld) -> Iterator[HookServer]:
    require_tool("curl")
    with HookServer(world) as proc:
        yield proc


def _run(server: HookServer, layout: Path, tmp_path: Path, name: str = "bundle") -> tuple[int, str, Path]:
    trace = tmp_path / f"trace-{name}"
    bundle = runc_bundle(layout, "v1", tmp_path / name, trace, server.hook_spec())
    proc = run_runc(bundle, tmp_path / "runc-state")
    return proc.returncode, proc.stdout + proc.stderr, trace / "ran"


def test_socket_is_private_to_root(server: HookServer) -> None:
    mode = os.stat(server.socket).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) & 0o077 == 0


def test_notarized_image_runs_and_revoked_one_never_starts(server: HookServer, world: GateWorld,
                                                           busybox_layout: Path, tmp_path: Path) -> None:
    subject = image_subject(busybox_layout)
    code, output, ran = _run(server, busybox_layout, tmp_path, "first")
    assert code != 0 and not ran.exists() and "not notarized" in output
    world.notarize(subject)
    code, output, ran = _run(server, busybox_layout, tmp_path, "second")
    assert code == 0, output
    assert ran.exists()
    assert world.decisions()[-1]["front_end"] == "oci-hook-server"
    world.revoke(subject.digest, "CVE-2026-8888")
    code, output, ran = _run(server, busybox_layout, tmp_path, "third")
    assert code != 0 and not ran.exists() and "CVE-2026-8888" in output


def test_tampered_ledger_is_refused_by_the_server(server: HookServer, world: GateWorld,
                                                  busybox_layout: Path, tmp_path: Path) -> None:
    world.notarize(image_subject(busybox_layout))
    world.tamper()
    code, output, ran = _run(server, busybox_layout, tmp_path)
    assert code != 0 and not ran.exists() and "integrity failure" in output


def test_ledger_moved_away_refuses_the_resident_server(server: HookServer, world: GateWorld,
                                                       busybox_layout: Path, tmp_path: Path) -> None:
    """The server keeps its ledger open across requests: moving the file away must not leave it allowing what
    the vanished file said (a one-shot verify says exit 3 then; so does the server)."""
    world.notarize(image_subject(busybox_layout))
    code, output, ran = _run(server, busybox_layout, tmp_path, "before")
    assert code == 0 and ran.exists(), output
    world.ledger_path.rename(world.ledger_path.with_name("moved.db"))
    code, output, ran = _run(server, busybox_layout, tmp_path, "after")
    assert code != 0 and not ran.exists() and "integrity failure" in output and "is gone" in output
    assert world.decisions()[-1]["allowed"] is False


def test_server_down_means_the_container_is_refused(server: HookServer, world: GateWorld,
                                                    busybox_layout: Path, tmp_path: Path) -> None:
    world.notarize(image_subject(busybox_layout))
    spec = server.hook_spec()
    server.stop()
    trace = tmp_path / "trace"
    bundle = runc_bundle(busybox_layout, "v1", tmp_path / "bundle", trace, spec)
    proc = run_runc(bundle, tmp_path / "runc-state")
    assert proc.returncode != 0 and not (trace / "ran").exists()


def test_stopped_server_removes_its_socket_and_a_live_one_is_never_stolen(server: HookServer,
                                                                          world: GateWorld) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "notary.cli.main", "--config", str(world.config), "gate", "hook-server",
         "--socket", str(server.socket)], env=world.env(), capture_output=True, text=True, timeout=30)
    assert second.returncode == 2 and "already serves" in second.stderr
    server.proc.terminate()  # what systemd or `docker stop` sends
    assert server.proc.wait(timeout=10) == 0
    assert not server.socket.exists()


def test_burst_of_100_hooks_all_decided(server: HookServer, world: GateWorld, tmp_path: Path) -> None:
    """100 containers starting at once: every hook connects and gets notary's verdict (a listen backlog of 5
    made curl fail with exit 7 and the runtime refuse containers for lack of a connection)."""
    world.notarize(Subject(GOOD, "registry.example/app", "oci-manifest"))
    bundles = {"good": write_bundle(tmp_path / "good", GOOD, "registry.example/app:1"),
               "unsigned": write_bundle(tmp_path / "unsigned", UNSIGNED, "registry.example/app:2")}
    kinds = {f"c{i:03d}-{'good' if i % 2 else 'unsigned'}": "good" if i % 2 else "unsigned" for i in range(100)}
    before = len(world.decisions())
    results = hook_burst(str(server.socket), {cid: state(cid, bundles[kind]) for cid, kind in kinds.items()})
    for result in results:
        if kinds[result.container] == "good":
            assert result.exit_code == 0, result.output
            assert "notary: allowed" in result.output
        else:
            assert result.exit_code == 22, result.output  # HTTP 403: curl --fail-with-body, the runtime refuses
            assert "not notarized" in result.output
    lines = world.decisions()[before:]
    assert sorted(line["container"] for line in lines) == sorted(kinds)
    assert all(line["allowed"] is (kinds[line["container"]] == "good") for line in lines)
    assert all(line["front_end"] == "oci-hook-server" for line in lines)


def test_full_queue_refuses_the_hook_at_once_with_a_clear_reason(world: GateWorld, tmp_path: Path) -> None:
    """One worker, a queue of one: a third hook is refused with a 503 and a one-line reason (curl exits 22,
    the runtime refuses and shows it), logged; the queued hook is still decided once the worker is free."""
    require_tool("curl")
    world.notarize(Subject(GOOD, "registry.example/app", "oci-manifest"))
    bundle = write_bundle(tmp_path / "bundle", GOOD, "registry.example/app:1")
    server = HookServer(world, "--workers", "1", "--queue", "1")
    held = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        held.settimeout(30)
        waiting.settimeout(30)
        body = state("held", bundle)
        held.connect(str(server.socket))
        held.sendall(f"POST /oci-hook HTTP/1.1\r\nHost: notary\r\nContent-Length: {len(body)}\r\n"
                     "Expect: 100-continue\r\n\r\n".encode())
        assert held.recv(64).startswith(b"HTTP/1.1 100")  # the only worker now waits for this body
        waiting.connect(str(server.socket))
        waiting.sendall(raw_request("POST", "/oci-hook", state("waiting", bundle)))  # fills the queue
        [refused] = hook_burst(str(server.socket), {"refused": state("refused", bundle)})
        assert refused.exit_code == 22, refused.output
        assert refused.body.startswith("notary: refused: the gate is busy")
        assert refused.body.count("\n") == 1 and refused.seconds < 5
        line = world.decisions()[-1]
        assert (line["container"], line["allowed"], line["exit_code"]) == ("refused", False, 4)
        held.sendall(body)
        for sock, name in ((held, "held"), (waiting, "waiting")):
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            assert resp.status == 200, resp.read()
            assert any(x["container"] == name and x["allowed"] for x in world.decisions())
    finally:
        held.close()
        waiting.close()
        server.stop()
