"""docker save archives: skopeo's and a real dockerd's classic form, the OCI-in-tar form, and hostile tars."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from notary.errors import DigestMismatchError, InputError
from notary.names import normalize_name
from notary.sources import SourceOptions, identify, resolve
from tests.support.dockerd import DockerDaemon
from tests.support.images import (
    layout_to_docker_archive,
    layout_to_oci_archive,
    manifest_of,
    uncompressed_layer_digests,
)


@pytest.fixture
def skopeo_archive(busybox_layout: Path, tmp_path: Path) -> Path:
    return layout_to_docker_archive(busybox_layout, "v1", tmp_path / "skopeo.tar", "notary.test/busybox:v1")


def test_classic_archive_identity_is_the_image_id(busybox_layout: Path, skopeo_archive: Path) -> None:
    _digest, manifest = manifest_of(busybox_layout, "v1")
    [subject] = resolve(f"docker-archive:{skopeo_archive}")
    assert subject.kind == "docker-image"
    assert subject.digest == subject.image_id == manifest["config"]["digest"]
    assert [a.digest for a in subject.artifacts if a.role == "layer"] == uncompressed_layer_digests(
        busybox_layout, "v1")
    assert subject.extra["repoTags"] == ["notary.test/busybox:v1"]
    assert identify(f"docker-archive:{skopeo_archive}")[0].digest == subject.digest


def test_real_docker_save_archive(dockerd: DockerDaemon, skopeo_archive: Path, tmp_path: Path) -> None:
    dockerd.load(skopeo_archive)
    saved = dockerd.save("notary.test/busybox:v1", tmp_path / "saved.tar")
    [subject] = resolve(f"docker-archive:{saved}")
    assert subject.digest == dockerd.image_id("notary.test/busybox:v1")
    assert subject.name == "notary.test/busybox:v1"


def test_compressed_archive_is_streamed_with_the_same_result(skopeo_archive: Path, tmp_path: Path) -> None:
    packed = tmp_path / "image.tar.gz"
    with open(skopeo_archive, "rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    plain = resolve(f"docker-archive:{skopeo_archive}")[0]
    streamed = resolve(f"docker-archive:{packed}")[0]
    assert (streamed.digest, streamed.artifacts) == (plain.digest, plain.artifacts)


def test_oci_in_tar_archive_identity_is_the_manifest_digest(busybox_layout: Path, tmp_path: Path) -> None:
    archive = layout_to_oci_archive(busybox_layout, "v1", tmp_path / "oci.tar", "notary.test/busybox:v1")
    digest, _manifest = manifest_of(busybox_layout, "v1")
    [subject] = resolve(f"docker-archive:{archive}")
    assert subject.digest == digest and subject.kind == "oci-manifest"
    assert subject.name == "notary.test/busybox:v1"
    assert identify(f"docker-archive:{archive}")[0].digest == digest


def test_parallel_and_serial_archive_reads_agree(skopeo_archive: Path) -> None:
    serial = resolve(f"docker-archive:{skopeo_archive}", options=SourceOptions(workers=1))
    parallel = resolve(f"docker-archive:{skopeo_archive}", options=SourceOptions(workers=2))
    assert serial == parallel


def _rebuild(src: Path, dst: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    """Copy a tar member by member, letting edit(info, data) change or drop members; edit may append more."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
        for info in tin:
            data = tin.extractfile(info).read() if info.isreg() else None  # type: ignore[union-attr]
            for new_info, new_data in edit(info, data):
                tout.addfile(new_info, io.BytesIO(new_data) if new_data is not None else None)
    return dst


def test_layer_not_matching_the_configs_diff_id_is_refused(skopeo_archive: Path, tmp_path: Path) -> None:
    def flip(info: tarfile.TarInfo, data: bytes | None):  # type: ignore[no-untyped-def]
        if data is not None and info.size > 100_000:
            data = data[:5000] + bytes([data[5000] ^ 1]) + data[5001:]
        yield info, data

    bad = _rebuild(skopeo_archive, tmp_path / "bad.tar", flip)
    with pytest.raises(DigestMismatchError) as err:
        resolve(f"docker-archive:{bad}")
    assert err.value.exit_code == 3


def test_config_not_matching_its_name_is_refused(skopeo_archive: Path, tmp_path: Path) -> None:
    def edit(info: tarfile.TarInfo, data: bytes | None):  # type: ignore[no-untyped-def]
        if data is not None and info.name.endswith(".json") and info.name != "manifest.json":
            config = json.loads(data)
            config["config"] = {"Cmd": ["/bin/sh", "-c", "evil"]}
            data = json.dumps(config).encode()
            info.size = len(data)
        yield info, data

    bad = _rebuild(skopeo_archive, tmp_path / "bad.tar", edit)
    with pytest.raises(DigestMismatchError):
        identify(f"docker-archive:{bad}")


def _extra_member(skopeo_archive: Path, tmp_path: Path, info: tarfile.TarInfo, data: bytes | None) -> Path:
    def edit(orig: tarfile.TarInfo, orig_data: bytes | None):  # type: ignore[no-untyped-def]
        yield orig, orig_data
        if orig.name == "manifest.json":
            yield info, data

    return _rebuild(skopeo_archive, tmp_path / "hostile.tar", edit)


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", data: bytes = b"x") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    ("info", "message"),
    [
        (_member("../escape.tar"), "'..'"),
        (_member("a/../../escape.tar"), "'..'"),
        (_member("/etc/cron.d/evil"), "absolute"),
        (_member("innocent/layer.tar", tarfile.SYMTYPE, "../../../etc/shadow"), "outside"),
        (_member("abs-link", tarfile.SYMTYPE, "/etc/shadow"), "outside"),
        (_member("hard", tarfile.LNKTYPE, "../outside"), "outside"),
        (_member("dev", tarfile.CHRTYPE), "unexpected member type"),
        (_member("manifest.json"), "duplicate"),
    ],
)
def test_hostile_tar_members_are_refused(skopeo_archive: Path, tmp_path: Path, info: tarfile.TarInfo,
                                         message: str) -> None:
    data = b"x" if info.type == tarfile.REGTYPE else None
    hostile = _extra_member(skopeo_archive, tmp_path, info, data)
    with pytest.raises(InputError, match=message) as err:
        resolve(f"docker-archive:{hostile}")
    assert err.value.exit_code == 2


def test_layer_reached_through_a_link_inside_the_archive_is_accepted(skopeo_archive: Path) -> None:
    # skopeo's own archives point <v1 id>/layer.tar at <diff id>.tar with a relative symlink
    with tarfile.open(skopeo_archive) as tar:
        assert any(m.issym() for m in tar)
    assert resolve(f"docker-archive:{skopeo_archive}")[0].kind == "docker-image"


def test_not_a_docker_archive(tmp_path: Path) -> None:
    bogus = tmp_path / "x.tar"
    with tarfile.open(bogus, "w") as tar:
        tar.addfile(_member("hello.txt"), io.BytesIO(b"x"))
    with pytest.raises(InputError, match="not a docker save archive"):
        resolve(f"docker-archive:{bogus}")
    (tmp_path / "junk.tar").write_bytes(b"\0garbage" * 100)
    with pytest.raises(InputError):
        resolve(f"docker-archive:{tmp_path / 'junk.tar'}")


def test_gzip_layer_is_checked_against_its_uncompressed_diff_id(skopeo_archive: Path, tmp_path: Path) -> None:
    def compress(info: tarfile.TarInfo, data: bytes | None):  # type: ignore[no-untyped-def]
        if data is not None and info.size > 100_000:
            data = gzip.compress(data, mtime=0)
            info.size = len(data)
        yield info, data

    packed_layers = _rebuild(skopeo_archive, tmp_path / "gz-layers.tar", compress)
    expected = resolve(f"docker-archive:{skopeo_archive}")[0].digest
    assert resolve(f"docker-archive:{packed_layers}")[0].digest == expected
    streamed = tmp_path / "gz-layers.tar.gz"
    streamed.write_bytes(gzip.compress(packed_layers.read_bytes()))
    assert resolve(f"docker-archive:{streamed}")[0].digest == expected

    def corrupt(info: tarfile.TarInfo, data: bytes | None):  # type: ignore[no-untyped-def]
        for new_info, new_data in compress(info, data):
            if new_data is not None and new_info.size > 100_000:
                raw = gzip.decompress(new_data)
                new_data = gzip.compress(raw[:7000] + bytes([raw[7000] ^ 1]) + raw[7001:], mtime=0)
                new_info.size = len(new_data)
            yield new_info, new_data

    bad = _rebuild(skopeo_archive, tmp_path / "gz-bad.tar", corrupt)
    with pytest.raises(DigestMismatchError):
        resolve(f"docker-archive:{bad}")


def test_skopeo_oci_archive_is_read_as_an_oci_layout_in_a_tar(busybox_layout: Path, tmp_path: Path) -> None:
    import subprocess

    from tests.support.integration import require_tool

    archive = tmp_path / "image.oci.tar"
    subprocess.run([require_tool("skopeo"), "copy", "--quiet", f"oci:{busybox_layout}:v1",
                    f"oci-archive:{archive}:v1"], check=True, capture_output=True)
    digest = manifest_of(busybox_layout, "v1")[0]
    [subject] = resolve(f"docker-archive:{archive}")
    assert subject.digest == digest
    [tagged] = resolve(f"oci-archive:{archive}:v1")
    assert (tagged.digest, tagged.name) == (digest, f"oci-archive:{archive.name}:v1")  # no local path
    assert identify(f"oci-archive:{archive}")[0].digest == digest
    with pytest.raises(InputError, match="not found"):
        identify(f"oci-archive:{archive}:v2")


def test_classic_archive_is_not_an_oci_archive(skopeo_archive: Path) -> None:
    with pytest.raises(InputError, match="not an OCI archive"):
        identify(f"oci-archive:{skopeo_archive}")


@pytest.mark.parametrize("stored, asked", [
    ("registry.example:5000/team/bb:v1", "registry.example:5000/team/bb:v1"),  # a NAME with '/' and ':'
    ("docker.io/library/bb:v1", "bb:v1"),  # a short name, as docker reads it
    ("docker.io/library/bb:latest", "bb"),  # no tag: latest
])
def test_image_selected_by_name_in_an_archive(busybox_layout: Path, tmp_path: Path, stored: str, asked: str) -> None:
    archive = layout_to_docker_archive(busybox_layout, "v1", tmp_path / "img.tar", stored)
    [subject] = identify(f"docker-archive:{archive}:{asked}")
    assert subject.kind == "docker-image"
    [full] = resolve(f"docker-archive:{archive}:{asked}")
    assert full.digest == subject.digest and normalize_name(stored) in full.names
    with pytest.raises(InputError, match="not found"):
        identify(f"docker-archive:{archive}:registry.example:5000/team/other:v1")
