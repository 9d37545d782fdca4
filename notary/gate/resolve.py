"""From what a user or an orchestrator names (a reference, a digest, a notary SUBJECT) to (name, digests).

A reference pinned by digest needs no I/O; a tag is resolved to its manifest digest through the registry,
because the gate verifies digests, never tags (a tag can move between the check and the pull). A reference
without tag or digest means `:latest`, as the runtime that pulls it reads it.
"""

from __future__ import annotations

import re

from notary.digests import SHA256_PATTERN, SHA256_RE, check_digest
from notary.errors import InputError
from notary.sources.base import SourceOptions

SUBJECT_SCHEMES = ("oci:", "oci-archive:", "docker-archive:", "docker-daemon:", "registry://", "docker://")
_REFERENCE = re.compile(rf"^[a-z0-9][a-z0-9._\-/:]*(@{SHA256_PATTERN})?\Z", re.IGNORECASE)


def split_reference(ref: str) -> tuple[str, str | None]:
    """`host/repo:tag@sha256:...` -> (`host/repo:tag`, `sha256:...`); no digest -> (ref, None)."""
    if "@" in ref:
        name, digest = ref.split("@", 1)
        return name, check_digest(digest)
    return ref, None


def resolve_image(spec: str, options: SourceOptions | None = None) -> tuple[str | None, list[str]]:
    """(image name or None, candidate digests) for spec; tags are resolved through the registry."""
    spec = spec.strip()
    if SHA256_RE.match(spec):
        return None, [spec]
    if spec.startswith(SUBJECT_SCHEMES):
        return _identify(spec if not spec.startswith("docker://") else "registry://" + spec[9:], options)
    if not _REFERENCE.match(spec) or ".." in spec:
        raise InputError(f"not an image reference: {spec!r}",
                         hint="e.g. registry.example/app:1.0, app@sha256:..., sha256:..., oci:DIR:TAG")
    name, digest = split_reference(spec)
    if digest:
        return name, [digest]
    tagged = spec if ":" in spec.rsplit("/", 1)[-1] else spec + ":latest"  # what a runtime would pull
    _, digests = _identify("registry://" + _with_registry(tagged), options)
    return spec, digests


def _with_registry(ref: str) -> str:
    """Docker Hub shorthand (`busybox`, `team/app`) gets its registry, as a runtime would pull it."""
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    return "docker.io/" + (ref if "/" in ref else "library/" + ref)


def _identify(spec: str, options: SourceOptions | None) -> tuple[str | None, list[str]]:
    from notary.sources import identify

    subjects = identify(spec, options=options or SourceOptions())
    if not subjects:
        raise InputError(f"{spec} names no image")
    digests: list[str] = []
    for subject in subjects:
        digests.append(subject.digest)
        if subject.image_id:
            digests.append(subject.image_id)
    name = subjects[0].name
    if name and name.startswith("registry://"):
        name = name[len("registry://"):]
    return name, list(dict.fromkeys(digests))
