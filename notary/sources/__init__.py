"""Subject sources: turn a SUBJECT string into verified subjects (identity digest + artifacts).

`resolve` is the full notarization read (every blob streamed, hashed and checked against its name);
`identify` is the cheap identity read for verification (manifest/index digests, no layers). Heavy or
optional dependencies (requests, the Docker SDK) are imported only by the source that needs them.
"""

from __future__ import annotations

from notary.errors import UsageError
from notary.sources.base import Artifact, NoProgress, Progress, SourceOptions, Subject
from notary.sources.spec import SubjectRef, parse_subject

__all__ = ["Artifact", "NoProgress", "Progress", "SourceOptions", "Subject", "SubjectRef", "identify",
           "parse_subject", "resolve"]

_DEFAULT_OPTIONS = SourceOptions()


def _read(spec: str, options: SourceOptions, progress: Progress | None, *, full: bool) -> list[Subject]:
    ref = parse_subject(spec)
    if ref.kind == "digest":
        assert ref.digest is not None
        if full:
            raise UsageError(f"a bare digest ({ref.digest}) names no content to notarize",
                             hint="name the image or file itself: oci:, registry://, docker-archive:, a path")
        return [Subject(ref.digest, ref.digest, "digest")]
    if ref.kind == "oci":
        from notary.sources.oci_layout import layout_subjects

        return layout_subjects(ref, options, progress, full=full)
    if ref.kind in ("docker-archive", "oci-archive"):
        from notary.sources.docker_archive import archive_subjects

        return archive_subjects(ref, options, progress, full=full)
    if ref.kind == "registry":
        from notary.sources.registry import registry_subjects

        return registry_subjects(ref, options, progress, full=full)
    if ref.kind == "docker-daemon":
        from notary.sources.docker_daemon import daemon_subjects

        return daemon_subjects(ref, options, progress, full=full)
    from notary.sources.paths import path_subjects

    return path_subjects(ref, options, progress)


def resolve(spec: str, *, options: SourceOptions = _DEFAULT_OPTIONS,
            progress: Progress | None = None) -> list[Subject]:
    """Full notarization read: every blob hashed while streaming and checked against the digest and size
    that name it (DigestMismatchError, exit 3). A multi-platform index gives one subject per platform
    manifest plus one for the index itself."""
    return _read(spec, options, progress, full=True)


def identify(spec: str, *, options: SourceOptions = _DEFAULT_OPTIONS) -> list[Subject]:
    """Identity only (for verify): manifest/index digests without hashing layers; a path is still hashed
    (its digest is its content); a bare digest is returned as is."""
    return _read(spec, options, None, full=False)
