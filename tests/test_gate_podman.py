"""The OCI hook under real podman (--hooks-dir, file written by `notary gate install podman`).

Podman puts no digest into the bundle: the hook finds the image through podman's storage (container id ->
image id -> manifest digests). A refused image never starts: its command leaves no trace.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.runtimes import GateWorld, Podman, image_subject


def _podman_name(layout: Path) -> str:
    """What podman calls an image it runs from an `oci:` layout path (the gate sees this name)."""
    return f"localhost{layout}"


@pytest.fixture
def world(tmp_path: Path, podman: Podman) -> GateWorld:
    w = GateWorld(tmp_path / "world")
    w.ensure_ledger()
    proc = subprocess.run([sys.executable, "-m", "notary.cli.main", "--config", str(w.config), "gate", "install",
                           "podman", "--hooks-dir", str(podman.hooks_dir)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return w


def _run(podman: Podman, layout: Path, tmp_path: Path) -> tuple[int, str, Path]:
    trace = tmp_path / "trace"
    trace.mkdir()
    proc = podman.run("run", "--rm", "--network", "none", "-v", f"{trace}:/trace", f"oci:{layout}:v1",
                      "/bin/sh", "-c", "echo ran > /trace/ran; cat /marker.txt")
    return proc.returncode, proc.stdout + proc.stderr, trace / "ran"


def test_notarized_image_runs_under_podman(world: GateWorld, podman: Podman, busybox_layout_template: Path,
                                           tmp_path: Path) -> None:
    world.notarize(image_subject(busybox_layout_template, names=(_podman_name(busybox_layout_template),)))
    code, output, ran = _run(podman, busybox_layout_template, tmp_path)
    assert code == 0, output
    assert ran.exists() and "hello" in output
    line = world.decisions()[-1]
    assert line["identified_by"] == "podman" and line["decision"] == "allow"


def test_never_notarized_image_never_starts_under_podman(world: GateWorld, podman: Podman,
                                                         busybox_layout_template: Path, tmp_path: Path) -> None:
    code, output, ran = _run(podman, busybox_layout_template, tmp_path)
    assert code != 0 and not ran.exists()
    assert "notary: refused" in output and "not notarized" in output


def test_revoked_image_never_starts_under_podman(world: GateWorld, podman: Podman, busybox_layout_template: Path,
                                                 tmp_path: Path) -> None:
    subject = image_subject(busybox_layout_template, names=(_podman_name(busybox_layout_template),))
    world.notarize(subject)
    world.revoke(subject.digest, "CVE-2026-2222")
    code, output, ran = _run(podman, busybox_layout_template, tmp_path)
    assert code != 0 and not ran.exists()
    assert "CVE-2026-2222" in output


def test_untrusted_signer_never_starts_under_podman(world: GateWorld, podman: Podman,
                                                    busybox_layout_template: Path, tmp_path: Path) -> None:
    world.notarize(image_subject(busybox_layout_template, names=(_podman_name(busybox_layout_template),)), trusted=False)
    code, output, ran = _run(podman, busybox_layout_template, tmp_path)
    assert code != 0 and not ran.exists()
    assert "not notarized by any trusted key" in output


def test_tampered_ledger_never_starts_under_podman(world: GateWorld, podman: Podman,
                                                   busybox_layout_template: Path, tmp_path: Path) -> None:
    world.notarize(image_subject(busybox_layout_template, names=(_podman_name(busybox_layout_template),)))
    world.tamper()
    code, output, ran = _run(podman, busybox_layout_template, tmp_path)
    assert code != 0 and not ran.exists()
    assert "integrity failure" in output


def test_podman_with_the_curl_hook_and_the_hook_server(world: GateWorld, podman: Podman,
                                                       busybox_layout_template: Path, tmp_path: Path) -> None:
    """`gate install podman --server SOCKET`: the hook is curl; podman storage is read by the server."""
    from tests.support.integration import require_tool
    from tests.support.runtimes import HookServer

    require_tool("curl")
    with HookServer(world) as server:
        proc = subprocess.run([sys.executable, "-m", "notary.cli.main", "--config", str(world.config), "gate",
                               "install", "podman", "--hooks-dir", str(podman.hooks_dir), "--server",
                               str(server.socket)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        code, output, ran = _run(podman, busybox_layout_template, tmp_path)
        assert code != 0 and not ran.exists() and "not notarized" in output
        world.notarize(image_subject(busybox_layout_template, names=(_podman_name(busybox_layout_template),)))
        (tmp_path / "trace").rename(tmp_path / "trace-refused")
        code, output, ran = _run(podman, busybox_layout_template, tmp_path)
        assert code == 0, output
        assert ran.exists()
        line = world.decisions()[-1]
        assert line["front_end"] == "oci-hook-server" and line["identified_by"] == "podman"
