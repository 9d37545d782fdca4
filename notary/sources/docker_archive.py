"""`docker save` archives, both forms.

Classic (manifest.json + <id>.json config + layer tars): there is no manifest digest, so the identity is the
image id, the config digest; the config commits to every layer through rootfs.diff_ids (digests of the
uncompressed layer tars), and each layer is checked against its diff id. Docker 25+ (an OCI layout inside
the tar: oci-layout, index.json, blobs/): the identity is the manifest digest, exactly as for a layout dir.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from notary.digests import check_digest, default_workers, run_parallel, sha256_bytes
from notary.errors import DigestMismatchError, InputError
from notary.fsio import open_regular
from notary.jsonsafe import JsonValue, parse
from notary.names import canonical
from notary.sources import tarsafe
from notary.sources.archive_view import FileView, LayerCheck, StreamView, claimed_digest
from notary.sources.base import Artifact, Progress, SourceOptions, Subject
from notary.sources.ocimodel import (
    DOCKER_CONFIG,
    MAX_CONFIG,
    MAX_MANIFEST,
    REF_NAME,
    hash_blobs,
    image_names,
    parse_descriptor,
    parse_json,
    platform_string,
    walk_descriptor,
)
from notary.sources.spec import SubjectRef

LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
IMAGE_NAME = "io.containerd.image.name"

View = FileView | StreamView


def archive_subjects(ref: SubjectRef, options: SourceOptions, progress: Progress | None, *,
                     full: bool) -> list[Subject]:
    assert ref.path is not None
    path = Path(ref.path)
    default_name = f"{ref.kind}:{ref.path}"
    # missing, not a regular file (a FIFO would block the read below), or a name too long: one line each
    with open_regular(path, "docker archive") as fh:
        compressed = tarsafe.is_compressed_head(fh.read(6))
        if compressed:
            fh.seek(0)
            if progress is not None:
                progress.add_total(os.fstat(fh.fileno()).st_size)
            # tarfile's stream mode only calls read(): the counting wrapper is file enough (a ByteStream)
            view: View = StreamView(_CountingReader(fh, progress), ref.path, None)
    if compressed:
        return subjects_from_view(view, ref, options, progress, full=full, default_name=default_name)
    return subjects_from_view(FileView(path), ref, options, progress, full=full, default_name=default_name)


class _CountingReader:
    """Reports compressed bytes read as progress (the only size known up front for a compressed file)."""

    def __init__(self, fh: IO[bytes], progress: Progress | None) -> None:
        self.fh = fh
        self.progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        if self.progress is not None and data:
            self.progress.advance(len(data))
        return data


def subjects_from_view(view: View, ref: SubjectRef, options: SourceOptions, progress: Progress | None, *,
                       full: bool, default_name: str) -> list[Subject]:
    """Subjects of an archive already opened as a view (also used for the Docker Engine export)."""
    if view.has("index.json") and view.has("oci-layout"):
        return _oci_in_tar(view, ref, options, progress, full=full, default_name=default_name)
    if ref.kind == "oci-archive":
        raise InputError(f"{view.label} is not an OCI archive (no oci-layout and index.json)")
    if view.has("manifest.json"):
        return _classic(view, ref, options, progress, full=full, default_name=default_name)
    raise InputError(f"{view.label} is not a docker save archive (no manifest.json or index.json)")


def _oci_in_tar(view: View, ref: SubjectRef, options: SourceOptions, progress: Progress | None, *,
                full: bool, default_name: str) -> list[Subject]:
    index = parse_json(view.read("index.json", MAX_MANIFEST), f"index.json in {view.label}")
    raw = index.get("manifests")
    if not isinstance(raw, list) or not raw:
        raise InputError(f"malformed index.json in {view.label}: manifests must be a non-empty list")
    descs = [parse_descriptor(item, f"entry {i} of index.json in {view.label}") for i, item in enumerate(raw)]
    if ref.name:
        wanted = canonical(ref.name) if "/" in ref.name or ":" in ref.name else None
        descs = [d for d in descs if ref.name in (d.annotations.get(IMAGE_NAME), d.annotations.get(REF_NAME))
                 or (wanted is not None and isinstance(d.annotations.get(IMAGE_NAME), str)
                     and canonical(d.annotations[IMAGE_NAME]) == wanted)]
        if not descs:
            raise InputError(f"image {ref.name!r} not found in {view.label}")
    subjects: list[Subject] = []
    walk = None
    for desc in descs:
        name = desc.annotations.get(IMAGE_NAME) or default_name
        if ref.kind == "oci-archive" and desc.annotations.get(REF_NAME) and not desc.annotations.get(IMAGE_NAME):
            name = f"{default_name}:{desc.annotations[REF_NAME]}"
        walk = walk_descriptor(view, desc, name, full=full, walk=walk,
                               extra={"archive": view.label, "imageNames": image_names(desc.annotations)})
    assert walk is not None
    if full:
        hash_blobs(view, walk, workers=options.workers, progress=progress if isinstance(view, FileView) else None)
    subjects.extend(walk.subjects)
    return subjects


def _strings(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"malformed {what}: expected a list of strings")
    return value


def _classic(view: View, ref: SubjectRef, options: SourceOptions, progress: Progress | None, *,
             full: bool, default_name: str) -> list[Subject]:
    raw = parse_json_list(view.read("manifest.json", MAX_MANIFEST), f"manifest.json in {view.label}")
    entries = []
    for i, item in enumerate(raw):
        where = f"entry {i} of manifest.json in {view.label}"
        if not isinstance(item, dict) or not isinstance(config := item.get("Config"), str):
            raise InputError(f"malformed {where}: needs Config")
        tags = _strings(item.get("RepoTags"), f"RepoTags of {where}")
        layers = [tarsafe.safe_name(n, view.label) for n in _strings(item.get("Layers"), f"Layers of {where}")]
        entries.append((tarsafe.safe_name(config, view.label), tags, layers, where))
    if ref.name:
        wanted = canonical(ref.name)  # a short name matches its normalized RepoTag, as docker reads it
        entries = [e for e in entries if ref.name in e[1] or wanted in {canonical(t) for t in e[1]}]
        if not entries:
            raise InputError(f"image {ref.name!r} not found in {view.label}")
    if not entries:
        raise InputError(f"manifest.json in {view.label} lists no images")
    plans = []
    for config_name, tags, layers, where in entries:
        config_bytes = view.read(config_name, MAX_CONFIG)
        image_id = sha256_bytes(config_bytes)
        claimed = claimed_digest(config_name)
        if claimed is not None and claimed != image_id:
            raise DigestMismatchError(f"config {config_name} in {view.label} does not match its name: "
                                      f"it hashes to {image_id}")
        config = parse_json(config_bytes, f"config {config_name} in {view.label}")
        rootfs = config.get("rootfs")
        if not isinstance(rootfs, dict):
            raise InputError(f"config {config_name} in {view.label} has no rootfs")
        diff_ids = [check_digest(d, f"diff id in {config_name}") for d in _strings(rootfs.get("diff_ids"),
                                                                                   f"rootfs.diff_ids of {config_name}")]
        if len(diff_ids) != len(layers):
            raise InputError(f"{where} lists {len(layers)} layers but its config has {len(diff_ids)} diff ids")
        platform = None
        if isinstance(config.get("os"), str) and isinstance(config.get("architecture"), str):
            platform = platform_string(config, config_name)
        plans.append((image_id, len(config_bytes), tags, layers, diff_ids, platform))
    checks: dict[str, LayerCheck] = {}
    if full:
        names = sorted({name for plan in plans for name in plan[3]})
        if progress is not None and isinstance(view, FileView):
            progress.add_total(sum(view.size_of(n) for n in names))
        results = run_parallel([view.layer_task(n, progress) for n in names], default_workers(options.workers))
        checks = dict(zip(names, results, strict=True))
    subjects = []
    for image_id, config_size, tags, layers, diff_ids, platform in plans:
        artifacts = [Artifact(image_id, config_size, DOCKER_CONFIG, "config")]
        for name, diff_id in zip(layers, diff_ids, strict=True):
            size = view.size_of(name)
            if full:
                check = checks[name]
                if check.diff_id != diff_id:
                    raise DigestMismatchError(f"layer {name} in {view.label} does not match the image config: "
                                              f"expected diff id {diff_id}, got {check.diff_id}")
                claimed = claimed_digest(name)
                if claimed is not None and claimed not in (check.digest, check.diff_id):
                    raise DigestMismatchError(f"layer {name} in {view.label} does not match its name: "
                                              f"it hashes to {check.digest}")
            artifacts.append(Artifact(diff_id, size, LAYER_TAR, "layer"))
        extra: dict[str, object] = {"archive": view.label}
        if tags:
            extra["repoTags"] = tags
        subjects.append(Subject(image_id, tags[0] if tags else default_name, "docker-image", tuple(artifacts),
                                platform=platform, image_id=image_id, extra=extra))
    return subjects


def parse_json_list(data: bytes, where: str) -> list[JsonValue]:
    doc = parse(data, where)
    if not isinstance(doc, list):
        raise InputError(f"malformed {where}: expected a JSON list")
    return doc


def stream_subjects(fileobj: tarsafe.ByteStream, label: str, ref: SubjectRef, options: SourceOptions,
                    progress: Progress | None, *, full: bool, default_name: str) -> list[Subject]:
    """Subjects of a tar read as a stream (the Docker Engine's image export)."""
    view = StreamView(fileobj, label, progress)
    return subjects_from_view(view, ref, options, progress, full=full, default_name=default_name)
