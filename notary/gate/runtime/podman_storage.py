"""Which image a podman (containers/storage) container was created from.

Podman puts no image digest into the bundle, but its storage maps container id -> image id (containers.json)
and image id -> manifest digests and names (images.json). The storage root is found from the bundle's rootfs
path (`<root>/<driver>/<layer>/merged`) or named explicitly; the files are only read, never locked or changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from notary.environment import Environment, given
from notary.errors import InputError, NotFoundError
from notary.fsio import read_regular
from notary.jsonsafe import JsonObject, parse

DEFAULT_ROOT = "/var/lib/containers/storage"
MAX_STORAGE_FILE = 64 << 20  # images.json of a node with thousands of images is a few MiB
DRIVERS = ("overlay", "vfs", "btrfs", "zfs", "aufs")


@dataclass(frozen=True)
class StoredImage:
    image_id: str  # sha256:<config digest hex>
    digests: tuple[str, ...]  # manifest digests known for it
    names: tuple[str, ...]


def root_from_rootfs(rootfs: str | None) -> str | None:
    """`/var/lib/containers/storage/overlay/<layer>/merged` -> `/var/lib/containers/storage`."""
    if not rootfs:
        return None
    parts = Path(rootfs).parts
    for i in range(len(parts) - 1, 0, -1):
        if parts[i] in DRIVERS and (Path(*parts[:i]) / f"{parts[i]}-containers").is_dir():
            return str(Path(*parts[:i]))
    return None


def _read_list(path: Path) -> list[JsonObject]:
    """A storage list, on the hook's critical path: a regular file (never a FIFO that would hang the start),
    not a symlink, at most MAX_STORAGE_FILE bytes, parsed with jsonsafe. NotFoundError when missing."""
    data = parse(read_regular(path, MAX_STORAGE_FILE, "podman storage file", follow_symlinks=False),
                 f"podman storage file {path}")
    if not isinstance(data, list):
        raise InputError(f"podman storage file {path} is not a JSON list")
    return [d for d in data if isinstance(d, dict)]


def _driver_dir(root: Path, kind: str) -> Path:
    for driver in DRIVERS:
        candidate = root / f"{driver}-{kind}" / f"{kind}.json"
        if candidate.is_file():
            return candidate
    return root / f"overlay-{kind}" / f"{kind}.json"


def _sha(value: str) -> str:
    return value if value.startswith("sha256:") else f"sha256:{value}"


def image_of_container(container_id: str, root: str | None = None, env: Environment | None = None) -> StoredImage:
    """The image container_id was created from, per the storage at root (default: NOTARY_PODMAN_STORAGE of
    env, None: of the process; else podman's system root)."""
    base = Path(root or given(env).podman_storage or DEFAULT_ROOT)
    containers = _read_list(_driver_dir(base, "containers"))
    match = next((c for c in containers if c.get("id") == container_id), None)
    if match is None:
        raise NotFoundError(f"container {container_id[:12]} is not in podman storage {base}")
    image_id = str(match.get("image") or "")
    if not image_id:
        raise NotFoundError(f"container {container_id[:12]} has no image in podman storage {base}")
    images = _read_list(_driver_dir(base, "images"))
    image = next((i for i in images if i.get("id") == image_id), None)
    if image is None:
        raise NotFoundError(f"image {image_id[:12]} of container {container_id[:12]} is not in {base}")
    digests: list[str] = []
    listed, big_data, names_listed = image.get("digests"), image.get("big-data-digests"), image.get("names")
    for value in [image.get("digest"), *(listed if isinstance(listed, list) else [])]:
        if isinstance(value, str) and value.startswith("sha256:"):
            digests.append(value)
    for name, value in (big_data if isinstance(big_data, dict) else {}).items():
        if str(name).startswith("manifest-") and isinstance(value, str):
            digests.append(value)
    names = tuple(n for n in (names_listed if isinstance(names_listed, list) else []) if isinstance(n, str))
    return StoredImage(_sha(image_id), tuple(dict.fromkeys(digests)), names)
