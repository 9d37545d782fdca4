"""Which image a Docker Engine container was created from, for the OCI hook behind a runtime wrapper.

dockerd puts no image annotation into the bundle, but its data root (found from the bundle's rootfs path,
`<data-root>/<driver>/<layer>/merged`) has `containers/<id>/config.v2.json` (image id, and the name the
container was created with) and `image/<driver>/repositories.json` (name@digest references per image id).
Only read, never locked or changed.
"""

from __future__ import annotations

from pathlib import Path

from notary.errors import InputError, NotFoundError
from notary.fsio import read_regular
from notary.gate.runtime.podman_storage import MAX_STORAGE_FILE, StoredImage
from notary.jsonsafe import JsonValue, parse

DRIVERS = ("overlay2", "overlay", "fuse-overlayfs", "vfs", "btrfs", "zfs", "devicemapper", "aufs")


def root_from_rootfs(rootfs: str | None) -> tuple[str, str] | None:
    """(data root, storage driver) from `/var/lib/docker/overlay2/<layer>/merged`, if it looks like Docker's."""
    if not rootfs:
        return None
    parts = Path(rootfs).parts
    for i in range(len(parts) - 1, 0, -1):
        base = Path(*parts[:i])
        if parts[i] in DRIVERS and (base / "containers").is_dir() and (base / "image").is_dir():
            return str(base), parts[i]
    return None


def _read(path: Path) -> JsonValue:
    """A storage file, on the hook's critical path: a regular file (a FIFO planted here must not hang the
    container start), not a symlink, bounded in size, parsed with jsonsafe. NotFoundError when missing."""
    return parse(read_regular(path, MAX_STORAGE_FILE, "Docker storage file", follow_symlinks=False),
                 f"Docker storage file {path}")


def image_of_container(container_id: str, root: str, driver: str) -> StoredImage:
    if "/" in container_id or container_id in ("", ".", ".."):
        raise InputError(f"bad container id {container_id!r}")
    base = Path(root)
    config = _read(base / "containers" / container_id / "config.v2.json")
    image_id = config.get("Image") if isinstance(config, dict) else None
    if not isinstance(config, dict) or not isinstance(image_id, str):
        raise InputError(f"container {container_id[:12]} has no image in Docker storage {base}")
    container_config = config.get("Config")
    created = container_config.get("Image") if isinstance(container_config, dict) else None
    digests: list[str] = []
    try:
        stored = _read(base / "image" / driver / "repositories.json")
        repos = stored.get("Repositories", {}) if isinstance(stored, dict) else {}
    except NotFoundError:
        repos = {}
    for refs in repos.values() if isinstance(repos, dict) else []:
        for ref, target in (refs.items() if isinstance(refs, dict) else []):
            if target == image_id and "@sha256:" in ref:
                digests.append(ref.split("@", 1)[1])
    names = (created,) if isinstance(created, str) and created else ()
    return StoredImage(image_id, tuple(dict.fromkeys(digests)), names)
