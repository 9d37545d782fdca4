"""From what a user or an orchestrator names (a reference, a digest, a notary SUBJECT) to (name, digests).

A reference pinned by digest needs no I/O; a tag is resolved to its manifest digest through the registry,
because the gate verifies digests, never tags (a tag can move between the check and the pull). A reference
without tag or digest means `:latest`, as the runtime that pulls it reads it.

A notary SUBJECT (`oci:`, `oci-archive:`, `docker-archive:`, `docker-daemon:`, `registry://`) is read by the
source that notarizes it, so its digests are the ones its records are stored under, and its name is one the
same source would bind at notarize time (`carried_name`): a layout's `oci:DIR:TAG` is a local path and a tag,
which name no repository, so such a subject carries no name unless the layout's annotations give one.
"""

from __future__ import annotations

import re

from notary.digests import SHA256_PATTERN, SHA256_RE, check_digest
from notary.errors import InputError
from notary.sources.base import SourceOptions

SUBJECT_SCHEMES = ("oci:", "oci-archive:", "docker-archive:", "docker-daemon:", "registry://", "docker://")
# SUBJECT kinds read from this machine: their bytes can be hashed here at no network cost (as `notary verify` does)
LOCAL_KINDS = ("oci", "oci-archive", "docker-archive", "docker-daemon")
_REFERENCE = re.compile(rf"^[a-z0-9][a-z0-9._\-/:]*(@{SHA256_PATTERN})?\Z", re.IGNORECASE)


def split_reference(ref: str) -> tuple[str, str | None]:
    """`host/repo:tag@sha256:...` -> (`host/repo:tag`, `sha256:...`); no digest -> (ref, None)."""
    if "@" in ref:
        name, digest = ref.split("@", 1)
        return name, check_digest(digest)
    return ref, None


def resolve_image(spec: str, options: SourceOptions | None = None, *,
                  read_local: bool = False) -> tuple[str | None, list[str]]:
    """(image name or None, candidate digests) for spec; tags are resolved through the registry.

    read_local: a local SUBJECT (layout, archive, Docker Engine image) is read in full and every blob hashed
    against its digest (DigestMismatchError, exit 3), as `notary verify` reads it, so a layout whose layer was
    altered after notarization is not called trusted because its manifest still is.
    """
    spec = spec.strip()
    if SHA256_RE.match(spec):
        return None, [spec]
    if spec.startswith(SUBJECT_SCHEMES):
        return _identify(spec if not spec.startswith("docker://") else "registry://" + spec[9:], options,
                         read_local=read_local)
    if not _REFERENCE.match(spec) or ".." in spec:
        raise InputError(f"not an image reference: {spec!r}",
                         hint="e.g. registry.example/app:1.0, app@sha256:..., sha256:..., oci:DIR:TAG")
    name, digest = split_reference(spec)
    if digest:
        return name, [digest]
    tagged = spec if ":" in spec.rsplit("/", 1)[-1] else spec + ":latest"  # what a runtime would pull
    _, digests = _identify("registry://" + _with_registry(tagged), options)
    return spec, digests


def resolve_reference(spec: str, options: SourceOptions | None = None) -> tuple[str | None, list[str]]:
    """resolve_image for a front end whose image strings come from whoever submits the workload (a Pod spec):
    only an image reference or a bare digest, never a SUBJECT form. `oci:/etc/...`, `docker-archive:/root/x.tar`
    or `docker-daemon:...` in a Pod would have the webhook read files and images of the machine it runs on,
    on behalf of anyone allowed to create a Pod; a runtime pulls references only, so nothing else is an image
    it could run."""
    spec = spec.strip()
    if SHA256_RE.match(spec):
        return None, [spec]
    from notary.names import is_reference

    if spec.startswith(SUBJECT_SCHEMES) or not is_reference(spec):
        raise InputError(f"not an image reference: {spec[:200]!r}",
                         hint="a workload names images as a runtime pulls them: registry.example/app:1.0 or "
                         "registry.example/app@sha256:...")
    return resolve_image(spec, options)


def _with_registry(ref: str) -> str:
    """Docker Hub shorthand (`busybox`, `team/app`) gets its registry, as a runtime would pull it."""
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return ref
    return "docker.io/" + (ref if "/" in ref else "library/" + ref)


def _identify(spec: str, options: SourceOptions | None, *,
              read_local: bool = False) -> tuple[str | None, list[str]]:
    from notary.sources import identify, parse_subject, resolve

    opts = options or SourceOptions()
    full = read_local and parse_subject(spec).kind in LOCAL_KINDS
    subjects = resolve(spec, options=opts) if full else identify(spec, options=opts)
    if not subjects:
        raise InputError(f"{spec} names no image")
    digests: list[str] = []
    for subject in subjects:
        digests.append(subject.digest)
        if subject.image_id:
            digests.append(subject.image_id)
    return carried_name(subjects[0]), list(dict.fromkeys(digests))


def carried_name(subject: object) -> str | None:
    """The image name a subject read from a SUBJECT form carries, or None: its own name when that is one of
    the repositories its source binds it to (a `registry://` reference, a Docker image's name or RepoTag, a
    layout's image-name annotation), else the first of those repositories.

    Never a display name such as `oci:layout:v1`: read as a reference, that is the image `docker.io/library/oci`
    (the gate would look for a trust rule, and a record, under a name nobody gave it). A subject with no bound
    repository (a layout tagged `v1` only, a bare digest) has no name: a caller passes `--name`."""
    from notary.names import is_reference, normalize_name

    names = tuple(getattr(subject, "names", ()) or ())
    if not names:
        return None
    name = getattr(subject, "name", None)
    if isinstance(name, str) and is_reference(name) and not SHA256_RE.match(name) and normalize_name(name) in names:
        return name
    return str(names[0])
