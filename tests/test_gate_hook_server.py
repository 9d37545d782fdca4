"""The fast hook path: runc runs curl, curl asks a resident `notary gate hook-server`; same verdicts."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.integration import require_tool
from tests.support.runtimes import GateWorld, HookServerProc, image_subject, run_runc, runc_bundle


@pytest.fixture
def world(tmp_path: Path) -> GateWorld:
    w = GateWorld(tmp_path / "world")
    w.ensure_ledger()
    return w


@pytest.fixture
def server(world: GateWorld) -> Iterator[HookServerProc]:
    require_tool("curl")
    proc = HookServerProc(world)
    try:
        yield proc
    finally:
        proc.stop()


def _run(server: HookServerProc, layout: Path, tmp_path: Path, name: str = "bundle") -> tuple[int, str, Path]:
    trace = tmp_path / f"trace-{name}"
    bundle = runc_bundle(layout, "v1", tmp_path / name, trace, server.hook_spec())
    proc = run_runc(bundle, tmp_path / "runc-state")
    return proc.returncode, proc.stdout + proc.stderr, trace / "ran"


def test_socket_is_private_to_root(server: HookServerProc) -> None:
    mode = os.stat(server.socket).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) & 0o077 == 0


def test_notarized_image_runs_and_revoked_one_never_starts(server: HookServerProc, world: GateWorld,
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


def test_tampered_ledger_is_refused_by_the_server(server: HookServerProc, world: GateWorld,
                                                  busybox_layout: Path, tmp_path: Path) -> None:
    world.notarize(image_subject(busybox_layout))
    world.tamper()
    code, output, ran = _run(server, busybox_layout, tmp_path)
    assert code != 0 and not ran.exists() and "integrity failure" in output


def test_server_down_means_the_container_is_refused(server: HookServerProc, world: GateWorld,
                                                    busybox_layout: Path, tmp_path: Path) -> None:
    world.notarize(image_subject(busybox_layout))
    spec = server.hook_spec()
    server.stop()
    trace = tmp_path / "trace"
    bundle = runc_bundle(busybox_layout, "v1", tmp_path / "bundle", trace, spec)
    proc = run_runc(bundle, tmp_path / "runc-state")
    assert proc.returncode != 0 and not (trace / "ran").exists()


def test_stopped_server_removes_its_socket_and_a_live_one_is_never_stolen(server: HookServerProc,
                                                                          world: GateWorld) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "notary.cli.main", "--config", str(world.config), "gate", "hook-server",
         "--socket", str(server.socket)], env=world.env(), capture_output=True, text=True, timeout=30)
    assert second.returncode == 2 and "already serves" in second.stderr
    server.proc.terminate()  # what systemd or `docker stop` sends
    assert server.proc.wait(timeout=10) == 0
    assert not server.socket.exists()
