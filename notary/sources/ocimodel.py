"""The OCI / Docker v2 image model shared by every source that has manifests: layout dirs, OCI-in-tar
archives and registries. A source supplies a BlobStore (how to get verified bytes); this module walks
index -> manifests -> config/layers, validating every JSON document and descriptor on the way.

Why one walker: the rules (which media types, descriptor validation, one subject per platform plus one for
the index, identity = manifest digest) must be identical whatever the transport, or the same image would
get different identities depending on where notary read it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from notary.digests import Digested, check_digest, default_workers, run_parallel
from notary.errors import InputError
from notary.jsonsafe import JsonObject, parse_object
from notary.sources.base import Artifact, Progress, Subject

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
IMAGE_CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
ACCEPT = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
REF_NAME = "org.opencontainers.image.ref.name"
IMAGE_NAME = "io.containerd.image.name"


def image_names(annotations: dict[str, str]) -> list[str]:
    """Full image names an index entry carries: containerd's image name, and a ref.name that is a whole
    reference (it is usually just a tag, which names no repository)."""
    return [v for k in (IMAGE_NAME, REF_NAME) if isinstance(v := annotations.get(k), str) and "/" in v]

MAX_MANIFEST = 4 << 20  # registries (distribution) refuse manifests over 4 MiB too
MAX_CONFIG = 8 << 20
MAX_DEPTH = 4


class BlobStore(Protocol):
    """Where blobs come from. read_blob returns bytes already checked against digest and size;
    blob_task returns a callable that streams the blob through the hasher, checking both."""

    where: str

    def read_blob(self, digest: str, size: int | None, limit: int, what: str) -> bytes: ...

    def blob_task(self, digest: str, size: int, what: str,
                  progress: Progress | None) -> Callable[[], Digested]: ...


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)


def parse_json(data: bytes, where: str) -> JsonObject:
    """A JSON object or InputError naming where it came from (bounded depth and integers, no duplicate keys,
    no lone surrogates: notary.jsonsafe)."""
    return parse_object(data, where)


def platform_string(obj: object, where: str) -> str | None:
    if obj is None:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("os"), str) or not isinstance(
            obj.get("architecture"), str):
        raise InputError(f"malformed platform in {where}: needs os and architecture strings")
    text = f"{obj['os']}/{obj['architecture']}"
    variant = obj.get("variant")
    if isinstance(variant, str) and variant:
        text += f"/{variant}"
    return text


def parse_descriptor(obj: object, where: str) -> Descriptor:
    """Validate a descriptor: sha256 digest, non-negative int size, string media type."""
    if not isinstance(obj, dict):
        raise InputError(f"malformed descriptor in {where}: expected an object")
    media_type = obj.get("mediaType", "")
    size = obj.get("size")
    if not isinstance(media_type, str):
        raise InputError(f"malformed descriptor in {where}: mediaType must be a string")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InputError(f"malformed descriptor in {where}: size must be a non-negative integer")
    digest = check_digest(obj.get("digest"), f"descriptor digest in {where}")
    annotations = obj.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
        raise InputError(f"malformed annotations in {where}")
    return Descriptor(media_type, digest, size, platform_string(obj.get("platform"), where), annotations)


def document_type(doc: Mapping[str, object], declared: str | None, where: str) -> str:
    """The media type of a manifest/index document, refusing a document that contradicts its descriptor."""
    own = doc.get("mediaType")
    if own is not None and not isinstance(own, str):
        raise InputError(f"malformed {where}: mediaType must be a string")
    if own in DOCKER_SCHEMA1 or declared in DOCKER_SCHEMA1 or doc.get("schemaVersion") == 1:
        raise InputError(f"{where} is a Docker schema 1 manifest, which is not supported",
                         hint="re-push the image with a current client (schema 2 or OCI)")
    if doc.get("schemaVersion") != 2:
        raise InputError(f"malformed {where}: schemaVersion must be 2")
    if own and declared and own != declared:
        raise InputError(f"{where} says mediaType {own!r} but was described as {declared!r}")
    media_type = own or declared
    if not media_type:
        media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if media_type not in ACCEPT:
        raise InputError(f"unsupported media type {media_type!r} for {where}")
    return media_type


@dataclass
class Walk:
    """Subjects found plus the blobs that still have to be streamed and checked (deduplicated)."""

    subjects: list[Subject] = field(default_factory=list)
    blobs: dict[str, tuple[int, str]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def want(self, desc: Descriptor, what: str) -> None:
        known = self.blobs.get(desc.digest)
        if known is not None and known[0] != desc.size:
            raise InputError(f"blob {desc.digest} is described with two sizes ({known[0]} and {desc.size})")
        self.blobs[desc.digest] = (desc.size, what)


def _manifest_subject(store: BlobStore, desc: Descriptor, data: bytes, name: str, *, full: bool,
                      walk: Walk, extra: Mapping[str, object]) -> Subject:
    where = f"manifest {desc.digest} in {store.where}"
    doc = parse_json(data, where)
    media_type = document_type(doc, desc.media_type or None, where)
    if media_type not in MANIFEST_TYPES:
        raise InputError(f"{where} is an index where an image manifest was expected")
    config = parse_descriptor(doc.get("config"), f"config of {where}")
    layers_raw = doc.get("layers")
    if not isinstance(layers_raw, list):
        raise InputError(f"malformed {where}: layers must be a list")
    layers = [parse_descriptor(item, f"layer {i} of {where}") for i, item in enumerate(layers_raw)]
    platform = desc.platform
    if full:
        if config.media_type in IMAGE_CONFIG_TYPES:
            cfg = parse_json(store.read_blob(config.digest, config.size, MAX_CONFIG, "image config"),
                             f"config {config.digest} in {store.where}")
            if platform is None and isinstance(cfg.get("os"), str) and isinstance(cfg.get("architecture"), str):
                platform = platform_string(cfg, f"config {config.digest}")
        else:
            walk.want(config, "config")
        for layer in layers:
            walk.want(layer, "layer")
    artifacts = [Artifact(desc.digest, len(data), media_type, "manifest"),
                 Artifact(config.digest, config.size, config.media_type or DOCKER_CONFIG, "config")]
    artifacts += [Artifact(layer.digest, layer.size, layer.media_type, "layer") for layer in layers]
    return Subject(desc.digest, name, "oci-manifest", tuple(artifacts), platform=platform,
                   image_id=config.digest, extra=dict(extra))


def walk_descriptor(store: BlobStore, desc: Descriptor, name: str, *, full: bool,
                    data: bytes | None = None, extra: Mapping[str, object] | None = None,
                    walk: Walk | None = None, depth: int = 0) -> Walk:
    """Collect subjects for desc (a manifest or an index): manifests and indexes are read and verified
    here; configs and layers are only queued in walk.blobs when full (see hash_blobs)."""
    walk = walk if walk is not None else Walk()
    extra = extra or {}
    if desc.digest in walk.seen:  # an index may list one manifest twice: one subject is enough
        return walk
    walk.seen.add(desc.digest)
    if depth > MAX_DEPTH:
        raise InputError(f"image indexes nested more than {MAX_DEPTH} deep in {store.where}")
    if data is None:
        data = store.read_blob(desc.digest, desc.size, MAX_MANIFEST, "manifest")
    where = f"{'index' if desc.media_type in INDEX_TYPES else 'manifest'} {desc.digest} in {store.where}"
    doc = parse_json(data, where)
    media_type = document_type(doc, desc.media_type or None, where)
    if media_type in MANIFEST_TYPES:
        walk.subjects.append(_manifest_subject(store, desc, data, name, full=full, walk=walk, extra=extra))
        return walk
    children_raw = doc.get("manifests")
    if not isinstance(children_raw, list):
        raise InputError(f"malformed {where}: manifests must be a list")
    children = [parse_descriptor(item, f"entry {i} of {where}") for i, item in enumerate(children_raw)]
    artifacts = [Artifact(desc.digest, len(data), media_type, "index")]
    artifacts += [Artifact(c.digest, c.size, c.media_type, "manifest", name=c.platform) for c in children]
    walk.subjects.append(Subject(desc.digest, name, "oci-index", tuple(artifacts), extra=dict(extra)))
    for child in children:
        if child.media_type and child.media_type not in ACCEPT:
            raise InputError(f"unsupported media type {child.media_type!r} in {where}")
        walk_descriptor(store, child, name, full=full, extra=extra, walk=walk, depth=depth + 1)
    return walk


def hash_blobs(store: BlobStore, walk: Walk, *, workers: int | None, progress: Progress | None) -> None:
    """Stream every queued blob through the hasher in parallel; any mismatch raises DigestMismatchError."""
    if not walk.blobs:
        return
    if progress is not None:
        progress.add_total(sum(size for size, _ in walk.blobs.values()))
    tasks = [store.blob_task(digest, size, what, progress) for digest, (size, what) in walk.blobs.items()]
    run_parallel(tasks, default_workers(workers))


def select_from_index(index: Mapping[str, object], where: str, tag: str | None, digest: str | None) -> Descriptor:
    """Pick the descriptor a layout's index.json names by tag (ref.name annotation) or by digest."""
    raw = index.get("manifests")
    if not isinstance(raw, list):
        raise InputError(f"malformed {where}: manifests must be a list")
    descs = [parse_descriptor(item, f"entry {i} of {where}") for i, item in enumerate(raw)]
    if digest is not None:
        for desc in descs:
            if desc.digest == digest:
                return desc
        raise InputError(f"{where} has no manifest {digest}")
    tags = sorted({d.annotations[REF_NAME] for d in descs if REF_NAME in d.annotations})
    if tag is not None:
        found = [d for d in descs if d.annotations.get(REF_NAME) == tag]
        if not found:
            raise InputError(f"tag {tag!r} not found in {where}",
                             hint=f"tags: {', '.join(tags)}" if tags else "the layout has no tags")
        if len({d.digest for d in found}) > 1:
            raise InputError(f"tag {tag!r} names more than one manifest in {where}")
        return found[0]
    if len(descs) == 1:
        return descs[0]
    if not descs:
        raise InputError(f"{where} lists no manifests")
    raise InputError(f"{where} holds {len(descs)} images: name one with :TAG or @DIGEST",
                     hint=f"tags: {', '.join(tags)}" if tags else None)
