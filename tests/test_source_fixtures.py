"""The shared image fixtures produce what they promise, checked with the real tools' own views."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support.dockerd import DockerDaemon
from tests.support.images import index_entry, layout_to_docker_archive, manifest_of, sha256_file
from tests.support.integration import require_tool
from tests.support.registry import RegistryServer


def test_busybox_layout_is_a_valid_oci_layout_skopeo_agrees_with(busybox_layout: Path) -> None:
    skopeo = require_tool("skopeo")
    raw = subprocess.run([skopeo, "inspect", "--raw", f"oci:{busybox_layout}:v1"], capture_output=True,
                         check=True).stdout
    digest, manifest = manifest_of(busybox_layout, "v1")
    assert json.loads(raw) == manifest
    assert index_entry(busybox_layout, "v1")["size"] == len(raw)
    for layer in manifest["layers"]:
        assert sha256_file(busybox_layout / "blobs" / "sha256" / layer["digest"][7:]) == layer["digest"]


def test_multiarch_layout_tag_names_an_index_of_two_platforms(multiarch_layout: Path) -> None:
    desc = index_entry(multiarch_layout, "multi")
    assert desc["mediaType"] == "application/vnd.oci.image.index.v1+json"
    index = json.loads((multiarch_layout / "blobs" / "sha256" / desc["digest"][7:]).read_bytes())
    platforms = sorted(f"{m['platform']['os']}/{m['platform']['architecture']}" for m in index["manifests"])
    assert platforms == ["linux/amd64", "linux/arm64"]


def test_registry_fixture_serves_what_skopeo_pushed(registry: RegistryServer, busybox_layout: Path) -> None:
    digest = registry.push(busybox_layout, "v1", "fixture/busybox:v1")
    assert digest == manifest_of(busybox_layout, "v1")[0]


def test_dockerd_fixture_loads_and_runs_the_busybox_image(
    dockerd: DockerDaemon, busybox_layout: Path, tmp_path: Path
) -> None:
    archive = layout_to_docker_archive(busybox_layout, "v1", tmp_path / "bb.tar", "fixture/busybox:v1")
    dockerd.load(archive)
    out = dockerd.docker("run", "--rm", "--network", "none", "fixture/busybox:v1").stdout
    assert out.strip() == "hello"
