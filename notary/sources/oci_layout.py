"""OCI image layout directories (image-spec image-layout v1: oci-layout, index.json, blobs/<alg>/<hex>).

Every file of a layout is read through notary.fsio (regular files only, size-limited, never blocking on a
FIFO planted as index.json or a blob) and every JSON document through notary.jsonsafe.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

from notary.digests import Digested, digest_hex, verify_bytes
from notary.errors import InputError, NotFoundError
from notary.fsio import check_path_length, read_regular
from notary.sources.base import Progress, SourceOptions, Subject
from notary.sources.ocimodel import (
    MAX_MANIFEST,
    REF_NAME,
    Descriptor,
    hash_blobs,
    image_names,
    parse_json,
    select_from_index,
    walk_descriptor,
)
from notary.sources.paths import hash_regular
from notary.sources.spec import SubjectRef

MAX_MARKER = 64 << 10  # the oci-layout file: {"imageLayoutVersion": "1.0.0"}


class LayoutStore:
    """Blobs of a layout directory. Digests are validated before they become paths (no traversal)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = f"OCI layout {root}"

    def path_of(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest_hex(digest)

    def _stat(self, digest: str, what: str) -> Path:
        path = self.path_of(digest)
        if not os.path.lexists(path):
            raise NotFoundError(f"{what} blob {digest} is missing from {self.where}",
                                hint="the layout is incomplete; copy it again (skopeo copy / umoci)")
        return path

    def read_blob(self, digest: str, size: int | None, limit: int, what: str) -> bytes:
        path = self._stat(digest, what)
        data = read_regular(path, limit, f"{what} blob")
        verify_bytes(data, digest, size, name=f"{what} blob")
        return data

    def blob_task(self, digest: str, size: int, what: str,
                  progress: Progress | None) -> Callable[[], Digested]:
        path = self._stat(digest, what)
        return partial(hash_regular, path, digest, size, progress, name=f"{what} blob {digest}")


def _read_index(root: Path) -> Mapping[str, object]:
    marker = root / "oci-layout"
    check_path_length(root, "OCI layout")
    if not os.path.lexists(root):
        raise NotFoundError(f"OCI layout not found: {root}")
    if not os.path.isdir(root):
        raise InputError(f"not an OCI layout directory: {root}")
    if not os.path.lexists(marker):
        raise InputError(f"{root} is not an OCI image layout (no oci-layout file)")
    layout = parse_json(read_regular(marker, MAX_MARKER, "OCI layout marker"), f"{marker}")
    version = layout.get("imageLayoutVersion")
    if not isinstance(version, str) or not version.startswith("1."):
        raise InputError(f"unsupported imageLayoutVersion {version!r:.80} in {marker}")
    index_path = root / "index.json"
    if not os.path.lexists(index_path):
        raise InputError(f"{root} has no index.json")
    index = parse_json(read_regular(index_path, MAX_MANIFEST, "OCI layout index"), str(index_path))
    if index.get("schemaVersion") != 2:
        raise InputError(f"malformed {index_path}: schemaVersion must be 2")
    return index


def _name(ref: SubjectRef, path: str, tag: str | None) -> str:
    if ref.digest:
        return f"oci:{path}@{ref.digest}"
    if tag:
        return f"oci:{path}:{tag}"
    return f"oci:{path}"


def _select(store: LayoutStore, index: Mapping[str, object], root: Path, ref: SubjectRef) -> Descriptor:
    """By tag or digest from index.json; a digest may also name a manifest only reachable through an index
    (a platform manifest), as long as its blob is in the layout (its bytes are verified against it)."""
    try:
        return select_from_index(index, f"{root / 'index.json'}", ref.tag, ref.digest)
    except InputError:
        if ref.digest is None or not os.path.isfile(store.path_of(ref.digest)):
            raise
        # the size is only a hint here: read_blob checks the bytes against the digest
        return Descriptor("", ref.digest, len(store.read_blob(ref.digest, None, MAX_MANIFEST, "manifest")))


def layout_subjects(ref: SubjectRef, options: SourceOptions, progress: Progress | None, *,
                    full: bool) -> list[Subject]:
    assert ref.path is not None
    root = Path(ref.path)
    index = _read_index(root)
    store = LayoutStore(root)
    desc = _select(store, index, root, ref)
    tag = ref.tag or (None if ref.digest else desc.annotations.get(REF_NAME))
    extra: dict[str, object] = {"tag": tag} if tag else {}
    extra["imageNames"] = image_names(desc.annotations)
    walk = walk_descriptor(store, desc, _name(ref, os.fspath(ref.path), tag), full=full, extra=extra)
    if full:
        hash_blobs(store, walk, workers=options.workers, progress=progress)
    return walk.subjects
