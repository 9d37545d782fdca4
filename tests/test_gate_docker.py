"""A real dockerd with `--authorization-plugin` pointing at `notary gate docker-authz`.

`docker run` of a notarized image (loaded with `docker load`, or pulled from the loopback registry) runs; the
refused cases fail with notary's reason and their command never runs. The tampering test runs last: it
ruins the module's ledger on purpose.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from notary.sources import resolve
from notary.sources.base import Subject
from tests.support.dockerd import DockerDaemon, start_dockerd
from tests.support.images import build_busybox_layout, layout_to_docker_archive
from tests.support.registry import registry  # noqa: F401 - fixture
from tests.support.runtimes import AuthzPlugin, GateWorld, image_subject


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> GateWorld:
    w = GateWorld(tmp_path_factory.mktemp("docker") / "world")
    w.ensure_ledger()
    return w


@pytest.fixture(scope="module")
def gated(world: GateWorld) -> Iterator[tuple[DockerDaemon, AuthzPlugin]]:
    plugin = AuthzPlugin(world)
    daemon = None
    try:
        daemon = start_dockerd([f"--authorization-plugin={plugin.name}"])
        plugin.point_at(str(daemon))
        yield daemon, plugin
    finally:
        if daemon is not None:
            daemon.stop()
        plugin.stop()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Docker archives of distinct busybox images (distinct markers, so distinct image ids)."""
    root = tmp_path_factory.mktemp("docker-images")
    out = {}
    for name in ("good", "unsigned", "revoked", "untrusted", "viaoci", "wrapped"):
        layout = build_busybox_layout(root / name, tag="v1", marker=f"marker-{name}")
        out[name] = layout_to_docker_archive(layout, "v1", root / f"{name}.tar", name=f"notary.test/{name}:v1")
        out[name + "-layout"] = layout
    return out


def _load(daemon: DockerDaemon, archive: Path) -> None:
    daemon.load(archive)


def _notarize_archive(world: GateWorld, archive: Path, *, trusted: bool = True) -> Subject:
    [subject] = resolve(f"docker-archive:{archive}")
    world.notarize(subject, trusted=trusted)
    return subject


def _run(daemon: DockerDaemon, image: str) -> tuple[int, str]:
    proc = daemon.docker("run", "--rm", "--network", "none", image, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_loaded_notarized_image_runs(gated: tuple[DockerDaemon, AuthzPlugin], world: GateWorld,
                                     images: dict[str, Path]) -> None:
    daemon, _ = gated
    subject = _notarize_archive(world, images["good"])
    _load(daemon, images["good"])
    assert daemon.image_id("notary.test/good:v1") in (subject.digest, subject.image_id)
    code, output = _run(daemon, "notary.test/good:v1")
    assert code == 0, output
    assert "marker-good" in output
    lines = world.decisions()[-2:]
    assert [(x["front_end"], x["action"], x["decision"]) for x in lines] == [
        ("docker-authz", "create", "allow"), ("docker-authz", "start", "allow")]


def test_pulled_notarized_image_runs(gated: tuple[DockerDaemon, AuthzPlugin], world: GateWorld,
                                     registry: str, images: dict[str, Path]) -> None:  # noqa: F811
    daemon, _ = gated
    digest = registry.push(images["good-layout"], "v1", "gate/pulled:v1")  # type: ignore[attr-defined]
    world.notarize(Subject(digest, f"{registry}/gate/pulled:v1", "oci-manifest"))
    daemon.docker("pull", f"{registry}/gate/pulled:v1")
    code, output = _run(daemon, f"{registry}/gate/pulled:v1")
    assert code == 0, output
    assert "marker-good" in output
    assert digest in world.decisions()[-1]["digests"]


def test_loaded_image_notarized_by_manifest_digest_is_matched_by_its_image_id(
        gated: tuple[DockerDaemon, AuthzPlugin], world: GateWorld, images: dict[str, Path]) -> None:
    """`docker load` knows no manifest digest; the image id is the config the signed record names."""
    daemon, _ = gated
    subject = image_subject(images["viaoci-layout"])
    world.notarize(subject)
    _load(daemon, images["viaoci"])
    assert daemon.image_id("notary.test/viaoci:v1") == subject.image_id
    code, output = _run(daemon, "notary.test/viaoci:v1")
    assert code == 0, output
    assert world.decisions()[-1]["digest"] == subject.digest


def test_never_notarized_image_is_refused_with_notarys_reason(gated: tuple[DockerDaemon, AuthzPlugin],
                                                             images: dict[str, Path]) -> None:
    daemon, plugin = gated
    _load(daemon, images["unsigned"])
    code, output = _run(daemon, "notary.test/unsigned:v1")
    assert code != 0
    assert f"authorization denied by plugin {plugin.name}" in output
    assert "not notarized" in output and "marker-unsigned" not in output


def test_revoked_image_is_refused_and_an_existing_container_cannot_start(
        gated: tuple[DockerDaemon, AuthzPlugin], world: GateWorld, images: dict[str, Path]) -> None:
    daemon, _ = gated
    subject = _notarize_archive(world, images["revoked"])
    _load(daemon, images["revoked"])
    created = daemon.docker("create", "--network", "none", "notary.test/revoked:v1").stdout.strip()
    running = daemon.docker("run", "-d", "--network", "none", "notary.test/revoked:v1", "/bin/sleep", "60").stdout.strip()
    world.revoke(subject.digest, "CVE-2026-5555")
    exec_ = daemon.docker("exec", running, "/bin/echo", "exec-ran", check=False)
    assert exec_.returncode != 0 and "CVE-2026-5555" in exec_.stderr and "exec-ran" not in exec_.stdout
    assert world.decisions()[-1]["action"] == "exec"
    daemon.docker("rm", "--force", running, check=False)
    code, output = _run(daemon, "notary.test/revoked:v1")
    assert code != 0 and "CVE-2026-5555" in output and "marker-revoked" not in output
    start = daemon.docker("start", "--attach", created, check=False)
    assert start.returncode != 0 and "CVE-2026-5555" in start.stderr
    assert "marker-revoked" not in start.stdout
    assert world.decisions()[-1]["action"] == "start"
    daemon.docker("rm", "--force", created, check=False)


def test_image_signed_by_an_untrusted_key_is_refused(gated: tuple[DockerDaemon, AuthzPlugin], world: GateWorld,
                                                     images: dict[str, Path]) -> None:
    daemon, _ = gated
    _notarize_archive(world, images["untrusted"], trusted=False)
    _load(daemon, images["untrusted"])
    code, output = _run(daemon, "notary.test/untrusted:v1")
    assert code != 0 and "not notarized by any trusted key" in output


def test_other_api_calls_are_not_gated(gated: tuple[DockerDaemon, AuthzPlugin]) -> None:
    daemon, _ = gated
    assert daemon.docker("images", check=False).returncode == 0
    assert daemon.docker("ps", "-a", check=False).returncode == 0


# ---------------------------------------------------------------- the runtime wrapper (daemon.json "runtimes")


@pytest.fixture(scope="module")
def wrapped(world: GateWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerDaemon]:
    """A second dockerd whose default runtime is the wrapper `notary gate install docker` writes."""
    bin_dir = tmp_path_factory.mktemp("wrapper-bin")
    proc = subprocess.run([sys.executable, "-m", "notary.cli.main", "--config", str(world.config), "gate",
                           "install", "docker", "--hooks-dir", str(bin_dir)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    daemon = start_dockerd(["--add-runtime", f"notary={bin_dir / 'notary-runc'}", "--default-runtime", "notary"])
    try:
        yield daemon
    finally:
        daemon.stop()


def test_runtime_wrapper_runs_a_notarized_image(wrapped: DockerDaemon, world: GateWorld,
                                                images: dict[str, Path]) -> None:
    subject = image_subject(images["wrapped-layout"])
    world.notarize(subject)
    wrapped.load(images["wrapped"])
    proc = wrapped.docker("run", "--rm", "--network", "none", "notary.test/wrapped:v1", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "marker-wrapped" in proc.stdout
    line = world.decisions()[-1]
    assert line["front_end"] == "oci-hook" and line["identified_by"] == "docker"
    assert line["image"] == "notary.test/wrapped:v1" and line["digest"] == subject.digest


def test_runtime_wrapper_refuses_a_never_notarized_image(wrapped: DockerDaemon, images: dict[str, Path]) -> None:
    wrapped.load(images["unsigned"])
    proc = wrapped.docker("run", "--rm", "--network", "none", "notary.test/unsigned:v1", check=False)
    assert proc.returncode != 0
    assert "notary: refused" in proc.stderr and "not notarized" in proc.stderr
    assert "marker-unsigned" not in proc.stdout


def test_zz_tampered_ledger_refuses_even_the_notarized_image(gated: tuple[DockerDaemon, AuthzPlugin],
                                                            world: GateWorld) -> None:
    daemon, _ = gated
    world.tamper()
    code, output = _run(daemon, "notary.test/good:v1")
    assert code != 0 and "integrity failure" in output and "marker-good" not in output


