"""OCI layouts built by umoci: identities agree with skopeo and sha256sum; every tampering is caught."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from notary.errors import DigestMismatchError, InputError, NotFoundError
from notary.sources import identify, resolve
from tests.support.images import (
    blob_path,
    build_busybox_layout,
    index_entry,
    manifest_of,
    read_json_blob,
    tamper_layer,
    write_blob,
)
from tests.support.integration import require_tool


def skopeo_raw_digest(ref: str) -> str:
    skopeo = require_tool("skopeo")
    raw = subprocess.run([skopeo, "inspect", "--raw", ref], capture_output=True, check=True).stdout
    out = subprocess.run(["sha256sum"], input=raw, capture_output=True, check=True).stdout
    return "sha256:" + out.split()[0].decode()


def test_single_image_identity_is_the_manifest_digest_skopeo_sees(busybox_layout: Path) -> None:
    [subject] = resolve(f"oci:{busybox_layout}:v1")
    assert subject.digest == skopeo_raw_digest(f"oci:{busybox_layout}:v1")
    assert subject.kind == "oci-manifest" and subject.platform == "linux/amd64"
    assert subject.name == f"oci:{busybox_layout.name}:v1"  # the layout's base name, never its path
    _digest, manifest = manifest_of(busybox_layout, "v1")
    roles = [(a.role, a.digest, a.size) for a in subject.artifacts]
    assert roles[1] == ("config", manifest["config"]["digest"], manifest["config"]["size"])
    assert roles[2:] == [("layer", layer["digest"], layer["size"]) for layer in manifest["layers"]]
    assert subject.image_id == manifest["config"]["digest"]


def test_no_tag_selects_the_only_image_and_digest_selects_by_digest(busybox_layout: Path) -> None:
    digest = index_entry(busybox_layout, "v1")["digest"]
    assert resolve(f"oci:{busybox_layout}")[0].digest == digest
    assert identify(f"oci:{busybox_layout}@{digest}")[0].digest == digest


def test_several_images_without_a_tag_is_an_error_listing_tags(busybox_layout: Path) -> None:
    build_busybox_layout(busybox_layout, tag="v2", marker="second")
    with pytest.raises(InputError, match="name one with") as err:
        resolve(f"oci:{busybox_layout}")
    assert "v1" in str(err.value) and "v2" in str(err.value)
    with pytest.raises(InputError, match="not found"):
        identify(f"oci:{busybox_layout}:v3")
    assert resolve(f"oci:{busybox_layout}:v2")[0].digest != resolve(f"oci:{busybox_layout}:v1")[0].digest


def test_multiarch_index_gives_one_subject_per_platform_and_one_for_the_index(multiarch_layout: Path) -> None:
    subjects = resolve(f"oci:{multiarch_layout}:multi")
    index = [s for s in subjects if s.kind == "oci-index"]
    platforms = {s.platform: s for s in subjects if s.kind == "oci-manifest"}
    assert len(index) == 1 and index[0].digest == skopeo_raw_digest(f"oci:{multiarch_layout}:multi")
    assert set(platforms) == {"linux/amd64", "linux/arm64/v8"}
    listed = read_json_blob(multiarch_layout, index[0].digest)["manifests"]
    assert {m["digest"] for m in listed} == {s.digest for s in platforms.values()}
    assert [s.digest for s in identify(f"oci:{multiarch_layout}:multi")] == [s.digest for s in subjects]


def test_layer_bytes_not_matching_their_digest_are_refused(busybox_layout: Path) -> None:
    tamper_layer(busybox_layout)
    with pytest.raises(DigestMismatchError) as err:
        resolve(f"oci:{busybox_layout}:v1")
    assert err.value.exit_code == 3


def test_identify_reads_no_layers(busybox_layout: Path) -> None:
    digest = index_entry(busybox_layout, "v1")["digest"]
    tamper_layer(busybox_layout)
    assert identify(f"oci:{busybox_layout}:v1")[0].digest == digest


def test_tampered_manifest_is_refused_even_for_identify(busybox_layout: Path) -> None:
    digest, manifest = manifest_of(busybox_layout, "v1")
    manifest["annotations"] = {"evil": "yes"}
    path = blob_path(busybox_layout, digest)
    path.chmod(0o644)
    path.write_text(json.dumps(manifest))
    with pytest.raises(DigestMismatchError):
        identify(f"oci:{busybox_layout}:v1")


def _rewrite_index(layout: Path, mutate) -> None:  # type: ignore[no-untyped-def]
    index = json.loads((layout / "index.json").read_text())
    mutate(index["manifests"][0])
    (layout / "index.json").write_text(json.dumps(index))


def test_malformed_index_json_is_bad_input_naming_the_file(busybox_layout: Path) -> None:
    (busybox_layout / "index.json").write_text('{"schemaVersion": 2, "manifests": [')
    with pytest.raises(InputError, match="index.json") as err:
        resolve(f"oci:{busybox_layout}:v1")
    assert err.value.exit_code == 2


def test_malformed_manifest_json_is_bad_input(busybox_layout: Path) -> None:
    digest, size = write_blob(busybox_layout, b'{"schemaVersion": 2, "config": ')

    def point(desc: dict) -> None:
        desc.update(digest=digest, size=size)

    _rewrite_index(busybox_layout, point)
    with pytest.raises(InputError, match="malformed JSON in manifest"):
        resolve(f"oci:{busybox_layout}:v1")


def test_missing_blob_is_bad_input(busybox_layout: Path) -> None:
    _digest, manifest = manifest_of(busybox_layout, "v1")
    blob_path(busybox_layout, manifest["layers"][0]["digest"]).unlink()
    with pytest.raises(NotFoundError, match="missing") as err:
        resolve(f"oci:{busybox_layout}:v1")
    assert err.value.exit_code == 2


@pytest.mark.parametrize("digest", ["sha256:../../../../etc/passwd", "sha256:" + "0" * 63 + "/",
                                    "sha256:" + "A" * 64])
def test_digest_strings_never_become_paths(busybox_layout: Path, digest: str) -> None:
    _rewrite_index(busybox_layout, lambda desc: desc.update(digest=digest))
    with pytest.raises(InputError, match="not a sha256"):
        resolve(f"oci:{busybox_layout}:v1")


def test_unknown_digest_algorithm_is_bad_input(busybox_layout: Path) -> None:
    _rewrite_index(busybox_layout, lambda desc: desc.update(digest="sha512:" + "a" * 128))
    with pytest.raises(InputError, match="unsupported digest algorithm"):
        resolve(f"oci:{busybox_layout}:v1")


def test_declared_size_different_from_the_blob_is_refused(busybox_layout: Path) -> None:
    _rewrite_index(busybox_layout, lambda desc: desc.update(size=desc["size"] + 1))
    with pytest.raises(DigestMismatchError):
        identify(f"oci:{busybox_layout}:v1")


def test_layer_size_lie_in_the_manifest_is_refused(busybox_layout: Path) -> None:
    _digest, manifest = manifest_of(busybox_layout, "v1")
    manifest["layers"][0]["size"] -= 1
    digest, size = write_blob(busybox_layout, json.dumps(manifest).encode())
    _rewrite_index(busybox_layout, lambda desc: desc.update(digest=digest, size=size))
    with pytest.raises(DigestMismatchError):
        resolve(f"oci:{busybox_layout}:v1")


def test_directory_without_oci_layout_file_is_refused(busybox_layout: Path) -> None:
    (busybox_layout / "oci-layout").unlink()
    with pytest.raises(InputError, match="not an OCI image layout"):
        resolve(f"oci:{busybox_layout}:v1")


def test_platform_manifest_digest_selects_it_inside_a_multiarch_layout(multiarch_layout: Path) -> None:
    platform = [s for s in resolve(f"oci:{multiarch_layout}:multi") if s.platform == "linux/arm64/v8"][0]
    [subject] = resolve(f"oci:{multiarch_layout}@{platform.digest}")
    assert subject.digest == platform.digest and subject.kind == "oci-manifest"
    with pytest.raises(InputError, match="has no manifest"):
        identify(f"oci:{multiarch_layout}@sha256:" + "9" * 64)


def test_progress_counts_every_hashed_byte(busybox_layout: Path) -> None:
    class Counter:
        total = 0
        done = 0

        def add_total(self, nbytes: int) -> None:
            self.total += nbytes

        def advance(self, nbytes: int) -> None:
            self.done += nbytes

    counter = Counter()
    [subject] = resolve(f"oci:{busybox_layout}:v1", progress=counter)
    layers = sum(a.size for a in subject.artifacts if a.role == "layer")
    assert counter.total == counter.done == layers > 0
