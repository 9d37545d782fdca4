"""notary inside a real containerd 2.x: its image verifier refuses pulls, its OCI hook refuses starts.

containerd (built by scripts/containerd-build.sh) runs with its own root, state and socket and a
`version = 3` config whose `io.containerd.image-verifier.v1.bindir` points at the directory `notary gate
install containerd` wrote. Images come from the real loopback registry (`ctr image pull --plain-http
--hosts-dir`). For starts, `ctr run --runc-binary` names the runc wrapper `notary gate install docker` writes,
which puts notary's OCI hook into every bundle containerd's runc shim creates: the runtime configuration
injects the hook, the container's own spec does not have to carry it.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.containerd import Containerd
from tests.support.images import build_busybox_layout
from tests.support.pushed_images import REPO_PATH, PushedImage, gate_world, pushed_images  # noqa: F401 - fixture
from tests.support.registry import RegistryServer, registry  # noqa: F401 - fixture
from tests.support.runtimes import GateWorld, image_subject

BLOCKED = "image verifier bindir blocked pull"


@pytest.fixture(scope="module")
def images(pushed_images: dict[str, PushedImage]) -> dict[str, PushedImage]:  # noqa: F811 - fixture
    return pushed_images


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, images: dict[str, PushedImage]) -> GateWorld:
    return gate_world(tmp_path_factory.mktemp("containerd-gate") / "world", images, "CVE-2026-5151")


def notary_install(world: GateWorld, target: str, directory: Path) -> Path:
    """`notary gate install TARGET --hooks-dir DIR`, the real CLI; returns the file it wrote."""
    proc = subprocess.run([sys.executable, "-m", "notary.cli.main", "--config", str(world.config), "gate", "install",
                           target, "--hooks-dir", str(directory)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    written = directory / ("notary" if target == "containerd" else "notary-runc")
    assert written.is_file()
    return written


@pytest.fixture(scope="module")
def containerd(world: GateWorld, registry: RegistryServer) -> Iterator[Containerd]:  # noqa: F811 - fixture
    verifier_dir = world.root / "image-verifier" / "bin"
    notary_install(world, "containerd", verifier_dir)
    daemon = Containerd(world.root / "containerd", verifier_dir, str(registry))
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def runc_wrapper(world: GateWorld) -> Path:
    return notary_install(world, "docker", world.root / "wrapper")


def ctr_run(containerd: Containerd, wrapper: Path, image: PushedImage | str, digest: str,
            trace: Path) -> subprocess.CompletedProcess[str]:
    """`ctr run --rm` of image with notary's hook injected by the runc wrapper; the command leaves trace/ran."""
    ref = image.tag_ref if isinstance(image, PushedImage) else image
    trace.mkdir(parents=True, exist_ok=True)
    return containerd.ctr(
        "run", "--rm", "--runc-binary", str(wrapper),
        "--annotation", f"dev.notary.image.digest={digest}", "--annotation", f"dev.notary.image.name={ref}",
        "--mount", f"type=bind,src={trace},dst=/trace,options=rbind:rw",
        ref, "notary-" + uuid.uuid4().hex[:10], "/bin/sh", "-c", "echo ran > /trace/ran; cat /marker.txt")


# ---------------------------------------------------------------- pulls: the image verifier


def test_pull_of_a_notarized_image_succeeds(containerd: Containerd, images: dict[str, PushedImage],
                                            world: GateWorld) -> None:
    proc = containerd.pull(images["good"].tag_ref)
    assert proc.returncode == 0, proc.stdout + proc.stderr + containerd.log_tail()
    assert images["good"].tag_ref in containerd.images()
    line = world.decisions()[-1]
    assert line["front_end"] == "containerd-verifier" and line["decision"] == "allow"
    assert line["digest"] == images["good"].digest


def test_pull_by_digest_of_a_notarized_image_succeeds(containerd: Containerd,
                                                      images: dict[str, PushedImage]) -> None:
    proc = containerd.pull(images["good"].digest_ref)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pull_of_a_never_notarized_image_is_blocked_with_notarys_reason(containerd: Containerd,
                                                                        images: dict[str, PushedImage],
                                                                        world: GateWorld) -> None:
    proc = containerd.pull(images["unsigned"].tag_ref)
    assert proc.returncode != 0
    assert BLOCKED in proc.stderr and "notary refused" in proc.stderr and "not notarized" in proc.stderr, proc.stderr
    assert images["unsigned"].tag_ref not in containerd.images()
    line = world.decisions()[-1]
    assert line["decision"] == "refuse" and line["digest"] == images["unsigned"].digest


def test_pull_of_a_revoked_image_is_blocked_with_the_revocation_reason(containerd: Containerd,
                                                                       images: dict[str, PushedImage]) -> None:
    proc = containerd.pull(images["revoked"].tag_ref)
    assert proc.returncode != 0
    assert BLOCKED in proc.stderr and "revoked" in proc.stderr and "CVE-2026-5151" in proc.stderr, proc.stderr
    assert images["revoked"].tag_ref not in containerd.images()


# ---------------------------------------------------------------- starts: the OCI hook


def test_ctr_run_of_a_notarized_image_goes_through_the_hook(containerd: Containerd, runc_wrapper: Path,
                                                            images: dict[str, PushedImage], world: GateWorld,
                                                            tmp_path: Path) -> None:
    assert containerd.pull(images["good"].tag_ref).returncode == 0
    proc = ctr_run(containerd, runc_wrapper, images["good"], images["good"].digest, tmp_path / "trace")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "good-image" in proc.stdout and (tmp_path / "trace" / "ran").exists()
    line = world.decisions()[-1]
    assert line["front_end"] == "oci-hook" and line["decision"] == "allow" and line["identified_by"] == "annotation"


def test_image_revoked_after_its_pull_never_starts(containerd: Containerd, runc_wrapper: Path, world: GateWorld,
                                                   registry: RegistryServer, tmp_path: Path) -> None:  # noqa: F811
    """The verifier let the pull through (notarized then); the revocation that came later stops the start."""
    layout = build_busybox_layout(tmp_path / "layout", tag="late", marker="late-image")
    digest = registry.push(layout, "late", f"{REPO_PATH}:late", all_platforms=False)
    ref = f"{registry}/{REPO_PATH}:late"
    world.notarize(image_subject(layout, "late", name=ref, names=(f"{registry}/{REPO_PATH}",)))
    assert containerd.pull(ref).returncode == 0
    world.revoke(digest, "CVE-2026-5252")
    proc = ctr_run(containerd, runc_wrapper, ref, digest, tmp_path / "trace")
    assert proc.returncode != 0 and not (tmp_path / "trace" / "ran").exists()
    assert "notary: refused" in proc.stderr and "CVE-2026-5252" in proc.stderr, proc.stderr


def test_image_pulled_around_the_verifier_is_still_stopped_by_the_hook(containerd: Containerd, runc_wrapper: Path,
                                                                       images: dict[str, PushedImage],
                                                                       tmp_path: Path) -> None:
    """`ctr image pull --local` fetches in the client, where containerd runs no image verifier: the pull of an
    unnotarized image succeeds. The hook at start is the layer that still refuses it."""
    unsigned = images["unsigned"]
    proc = containerd.pull(unsigned.tag_ref, "--local")
    assert proc.returncode == 0, "containerd now verifies --local pulls too: revise docs/gate.md\n" + proc.stderr
    assert unsigned.tag_ref in containerd.images()
    proc = ctr_run(containerd, runc_wrapper, unsigned, unsigned.digest, tmp_path / "trace")
    assert proc.returncode != 0 and not (tmp_path / "trace" / "ran").exists()
    assert "notary: refused" in proc.stderr and "not notarized" in proc.stderr, proc.stderr
