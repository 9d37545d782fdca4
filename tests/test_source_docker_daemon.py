"""docker-daemon subjects against a private dockerd: identity = image id, export checked against diff ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from notary.errors import NotFoundError, SourceUnavailableError
from notary.sources import SourceOptions, identify, resolve
from tests.support.dockerd import DockerDaemon
from tests.support.images import layout_to_docker_archive, manifest_of, uncompressed_layer_digests


def test_local_image_identity_is_the_image_id(dockerd: DockerDaemon, busybox_layout: Path,
                                              tmp_path: Path) -> None:
    archive = layout_to_docker_archive(busybox_layout, "v1", tmp_path / "bb.tar", "notary.test/daemon:v1")
    dockerd.load(archive)
    options = SourceOptions(docker_host=dockerd.host)
    [subject] = resolve("docker-daemon:notary.test/daemon:v1", options=options)
    image_id = dockerd.image_id("notary.test/daemon:v1")
    assert subject.digest == subject.image_id == image_id == manifest_of(busybox_layout, "v1")[1]["config"]["digest"]
    assert subject.kind == "docker-image" and subject.name == "notary.test/daemon:v1"
    assert [a.digest for a in subject.artifacts if a.role == "layer"] == uncompressed_layer_digests(
        busybox_layout, "v1")
    assert "notary.test/daemon:v1" in subject.extra["repoTags"]
    assert identify("docker-daemon:notary.test/daemon:v1", options=options)[0].digest == image_id


def test_docker_host_from_the_environment(dockerd: DockerDaemon, busybox_layout: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    dockerd.load(layout_to_docker_archive(busybox_layout, "v1", tmp_path / "bb.tar", "notary.test/env:v1"))
    monkeypatch.setenv("DOCKER_HOST", dockerd.host)
    assert identify("docker-daemon:notary.test/env:v1")[0].digest == dockerd.image_id("notary.test/env:v1")


def test_unknown_image_is_not_found(dockerd: DockerDaemon) -> None:
    with pytest.raises(NotFoundError) as err:
        identify("docker-daemon:notary.test/absent:v9", options=SourceOptions(docker_host=dockerd.host))
    assert err.value.exit_code == 2


def test_unreachable_engine_is_exit_4(tmp_path: Path) -> None:
    options = SourceOptions(docker_host=f"unix://{tmp_path}/no.sock")
    with pytest.raises(SourceUnavailableError) as err:
        identify("docker-daemon:busybox:v1", options=options)
    assert err.value.exit_code == 4
