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


IMAGE_KINDS = ("oci-manifest", "oci-index", "docker-image")


def _read(spec: str, options: SourceOptions, progress: Progress | None, *, full: bool,
          names: tuple[str, ...] = ()) -> list[Subject]:
    ref = parse_subject(spec)
    return bind_names(_subjects(ref, options, progress, full=full), ref, names)


def bind_names(subjects: list[Subject], ref: SubjectRef, extra_names: tuple[str, ...] = ()) -> list[Subject]:
    """Give each image subject the repositories it was built or pushed as, and every subject a display name
    without a local path (the ledger is immutable: a runner's workspace path must never reach it)."""
    from dataclasses import replace

    from notary.names import display_name, is_reference, repositories

    base: list[str] = list(extra_names)
    if ref.kind == "registry":
        base.append(f"{ref.host}/{ref.repository}")
    if ref.name and is_reference(ref.name) and (ref.kind in ("docker-daemon", "docker-archive") or "/" in ref.name):
        base.append(ref.name)  # an oci-archive's NAME is usually just a tag
    local = f"{ref.kind}:{display_name(ref.path)}" if ref.path and ref.kind != "path" else None
    out = []
    for s in subjects:
        if s.kind in ("file", "directory"):
            out.append(replace(s, name=display_name(ref.path or s.name)))
            continue
        if s.kind not in IMAGE_KINDS:
            out.append(s)
            continue
        found = [*base, *_listed(s.extra.get("repoTags")), *_listed(s.extra.get("imageNames"))]
        named = s.name if "/" in s.name and is_reference(s.name) else None
        names = repositories([*found, named])
        if named or ref.kind == "registry":
            name = named or ref.reference
        elif found and is_reference(found[0]):
            name = found[0]
        else:
            listed_tag = s.extra.get("tag")
            tag = listed_tag if isinstance(listed_tag, str) and listed_tag else ref.tag
            name = (local or s.name) + (f":{tag}" if tag and local else "")
        out.append(replace(s, name=name, names=names))
    return out


def _listed(value: object) -> list[str]:
    """The names a source listed in a subject's extra (it lists strings, or nothing under that key)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _subjects(ref: SubjectRef, options: SourceOptions, progress: Progress | None, *, full: bool) -> list[Subject]:
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
            progress: Progress | None = None, names: tuple[str, ...] = ()) -> list[Subject]:
    """Full notarization read: every blob hashed while streaming and checked against the digest and size
    that name it (DigestMismatchError, exit 3). A multi-platform index gives one subject per platform
    manifest plus one for the index itself. names: more repositories to bind the images to (--name)."""
    return _read(spec, options, progress, full=True, names=names)


def identify(spec: str, *, options: SourceOptions = _DEFAULT_OPTIONS) -> list[Subject]:
    """Identity only (for verify): manifest/index digests without hashing layers; a path is still hashed
    (its digest is its content); a bare digest is returned as is."""
    return _read(spec, options, None, full=False)
