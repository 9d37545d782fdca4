"""Real, small container images for tests: OCI layouts built with umoci from Debian's static busybox.

Other areas reuse these (gate, runc, podman, registry, docker). Everything here produces genuine artifacts
with the real tools (umoci, skopeo), so digests in tests are the ones those tools compute.

Fixtures (import them in tests/conftest.py or a test module):
- `busybox_layout` -> Path of a private copy of an OCI layout holding tag "v1" (cmd: cat /marker.txt).
- `multiarch_layout` -> Path of a private copy of a layout whose tag "multi" is an index of two platform
  manifests (linux/amd64 and linux/arm64; both reuse the busybox layer, only the config differs).
Session-scoped templates are built once; each test gets its own copy, so tests may tamper with them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.integration import missing, require_tool

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "ls", "cat", "echo", "true", "false", "sleep", "env", "id", "wc")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"


def _run(*argv: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def _require_busybox() -> None:
    if not BUSYBOX.is_file():
        missing("busybox-static", "/bin/busybox not found")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def blob_path(layout: Path, digest: str) -> Path:
    algo, hexpart = digest.split(":", 1)
    return layout / "blobs" / algo / hexpart


def read_json_blob(layout: Path, digest: str) -> Any:
    return json.loads(blob_path(layout, digest).read_bytes())


def write_blob(layout: Path, data: bytes) -> tuple[str, int]:
    """Store data as a blob of layout; (digest, size)."""
    hexpart = hashlib.sha256(data).hexdigest()
    target = layout / "blobs" / "sha256" / hexpart
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return "sha256:" + hexpart, len(data)


def index_entry(layout: Path, tag: str) -> dict[str, Any]:
    """The index.json descriptor carrying tag."""
    index = json.loads((layout / "index.json").read_text())
    for desc in index.get("manifests", []):
        if desc.get("annotations", {}).get(REF_NAME) == tag:
            return desc
    raise KeyError(f"tag {tag!r} not in {layout}")


def manifest_of(layout: Path, tag: str) -> tuple[str, dict[str, Any]]:
    """(manifest digest, manifest JSON) of an image tag of layout."""
    desc = index_entry(layout, tag)
    return desc["digest"], read_json_blob(layout, desc["digest"])


def build_busybox_layout(root: Path, tag: str = "v1", marker: str = "hello") -> Path:
    """Create (or add tag to) an OCI layout at root: busybox + applet symlinks + /marker.txt holding marker.

    The image's command is `cat /marker.txt`, so a container run from it prints marker and exits 0.
    Returns root.
    """
    umoci = require_tool("umoci")
    _require_busybox()
    root = Path(root)
    if not (root / "oci-layout").exists():
        _run(umoci, "init", "--layout", str(root))
    image = f"{root}:{tag}"
    _run(umoci, "new", "--image", image)
    with tempfile.TemporaryDirectory(prefix="notary-umoci-") as work:
        bundle = Path(work) / "bundle"
        _run(umoci, "unpack", "--image", image, str(bundle))
        rootfs = bundle / "rootfs"
        (rootfs / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
        for applet in APPLETS:
            os.symlink("busybox", rootfs / "bin" / applet)
        (rootfs / "etc").mkdir(exist_ok=True)
        (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
        (rootfs / "tmp").mkdir(exist_ok=True)
        (rootfs / "marker.txt").write_text(marker + "\n")
        _run(umoci, "repack", "--image", image, str(bundle))
    _run(umoci, "config", "--image", image, "--config.cmd", "/bin/cat", "--config.cmd", "/marker.txt",
         "--config.env", "PATH=/bin", "--config.workingdir", "/")
    _run(umoci, "gc", "--layout", str(root))
    return root


def build_multiarch_layout(root: Path, tag: str = "multi", marker: str = "multi") -> Path:
    """An OCI layout whose tag names an image index of two platform manifests (linux/amd64, linux/arm64).

    Built with umoci for amd64, then assembled by hand: the arm64 manifest reuses the layers with a config
    that says arm64 (a fake arm64 image, but a genuine, consistent index as a registry would serve it).
    """
    scratch_tag = f"{tag}-amd64"
    build_busybox_layout(root, tag=scratch_tag, marker=marker)
    amd_desc = index_entry(root, scratch_tag)
    manifest = read_json_blob(root, amd_desc["digest"])
    config = read_json_blob(root, manifest["config"]["digest"])
    config["architecture"] = "arm64"
    config["variant"] = "v8"
    cfg_digest, cfg_size = write_blob(root, json.dumps(config, separators=(",", ":")).encode())
    arm_manifest = dict(manifest)
    arm_manifest["config"] = {"mediaType": OCI_CONFIG, "digest": cfg_digest, "size": cfg_size}
    arm_digest, arm_size = write_blob(root, json.dumps(arm_manifest, separators=(",", ":")).encode())
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd_desc["digest"], "size": amd_desc["size"],
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": arm_digest, "size": arm_size,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ],
    }
    idx_digest, idx_size = write_blob(root, json.dumps(index, separators=(",", ":")).encode())
    top = json.loads((root / "index.json").read_text())
    top["manifests"] = [d for d in top["manifests"] if d.get("annotations", {}).get(REF_NAME) != scratch_tag]
    top["manifests"].append({"mediaType": OCI_INDEX, "digest": idx_digest, "size": idx_size,
                             "annotations": {REF_NAME: tag}})
    (root / "index.json").write_text(json.dumps(top, separators=(",", ":")))
    return root


def layout_to_docker_archive(layout: Path, tag: str, out: Path, name: str | None = None) -> Path:
    """`skopeo copy oci:LAYOUT:TAG docker-archive:OUT[:NAME]`: a classic `docker save` style archive."""
    skopeo = require_tool("skopeo")
    dest = f"docker-archive:{out}" + (f":{name}" if name else "")
    _run(skopeo, "copy", "--quiet", f"oci:{layout}:{tag}", dest)
    return Path(out)


def layout_to_oci_archive(layout: Path, tag: str, out: Path, name: str = "notary.test/busybox:v1") -> Path:
    """Docker 25+ style `docker save` output assembled by hand: an uncompressed tar of an OCI layout whose
    index.json names the image (io.containerd.image.name + ref.name), plus a classic manifest.json."""
    desc = dict(index_entry(layout, tag))
    manifest = read_json_blob(layout, desc["digest"])
    desc["annotations"] = {"io.containerd.image.name": name, REF_NAME: name.rsplit(":", 1)[-1]}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]}
    blobs = [desc["digest"], manifest["config"]["digest"], *[layer["digest"] for layer in manifest["layers"]]]
    legacy = [{"Config": "blobs/sha256/" + manifest["config"]["digest"].split(":")[1], "RepoTags": [name],
               "Layers": ["blobs/sha256/" + layer["digest"].split(":")[1] for layer in manifest["layers"]]}]

    def add_bytes(tar: tarfile.TarFile, name_: str, data: bytes) -> None:
        info = tarfile.TarInfo(name_)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        add_bytes(tar, "oci-layout", (layout / "oci-layout").read_bytes())
        add_bytes(tar, "index.json", json.dumps(index).encode())
        add_bytes(tar, "manifest.json", json.dumps(legacy).encode())
        for digest in blobs:
            tar.add(blob_path(layout, digest), arcname="blobs/sha256/" + digest.split(":")[1])
    return Path(out)


def tamper_layer(layout: Path, tag: str = "v1", index: int = 0) -> str:
    """Corrupt a layer blob's bytes in place, keeping its file name and size; returns the layer digest."""
    _digest, manifest = manifest_of(layout, tag)
    layer = manifest["layers"][index]["digest"]
    path = blob_path(layout, layer)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    return layer


def uncompressed_layer_digests(layout: Path, tag: str) -> list[str]:
    """diff_ids recomputed from the layer blobs (gunzip + sha256), to check what sources report."""
    _digest, manifest = manifest_of(layout, tag)
    out = []
    for layer in manifest["layers"]:
        with gzip.open(blob_path(layout, layer["digest"])) as fh:
            h = hashlib.sha256()
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
        out.append("sha256:" + h.hexdigest())
    return out


def _copy(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def busybox_layout_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_busybox_layout(tmp_path_factory.mktemp("busybox") / "layout", tag="v1", marker="hello")


@pytest.fixture(scope="session")
def multiarch_layout_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_multiarch_layout(tmp_path_factory.mktemp("multiarch") / "layout", tag="multi")


@pytest.fixture
def busybox_layout(busybox_layout_template: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of a real busybox OCI layout with tag "v1"."""
    yield _copy(busybox_layout_template, tmp_path / "busybox-layout")


@pytest.fixture
def multiarch_layout(multiarch_layout_template: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of a layout whose tag "multi" is a two-platform image index."""
    yield _copy(multiarch_layout_template, tmp_path / "multiarch-layout")
