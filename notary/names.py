"""Image names as runtimes read them, and the names a record is bound to.

A record carries the normalized repositories the image was built or pushed as (`subject.names`): the
registry reference it was read from, an archive's RepoTags, a layout's image-name annotations, `--name`. A
gate with `require_name_match` admits an image only under one of those names, so a key trusted for
`registry.example/prod/*` cannot lend what it signed for one repository to another. Local paths never
become names: the ledger is immutable and public to its auditors, and a runner's workspace is neither.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from notary.errors import UsageError

DEFAULT_REGISTRY = "docker.io"
LEGACY_DOCKER_HUB = ("index.docker.io", "registry-1.docker.io")  # other spellings of Docker Hub's registry
# registry/repository[:tag][@digest], Docker reference grammar, lower-case path components
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"^(?:(?P<host>[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?)/)?"
    rf"(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@sha256:[0-9a-f]{64})?\Z"
)
MAX_NAMES = 32


def normalize_name(reference: str) -> str:
    """registry/repository of an image reference, Docker-style: `busybox` -> `docker.io/library/busybox`.

    Tag and digest are dropped (policy is about names; the digest is what gets verified). Accepts the
    subject forms notary uses elsewhere (`registry://`, `docker://`).
    """
    ref = reference.strip()
    for scheme in ("registry://", "docker://", "docker-daemon:"):
        if ref.startswith(scheme):
            ref = ref[len(scheme):]
    ref = ref.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    if ":" in last:
        last = last.split(":", 1)[0]
    ref = f"{head}/{last}" if head else last
    if not ref:
        return ""
    # the domain rule of the reference grammar runtimes use (distribution/reference): the first component
    # is a registry if it has a '.' or ':', is localhost, or has upper case; anything else is Docker Hub
    first, sep, rest = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain, path = first.lower(), rest
    else:
        domain, path = DEFAULT_REGISTRY, ref
    if domain in LEGACY_DOCKER_HUB:
        domain = DEFAULT_REGISTRY
    if domain == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"  # docker.io/busybox is docker.io/library/busybox, as every runtime pulls it
    return f"{domain}/{path}"


def is_reference(text: str) -> bool:
    """Whether text is an image reference (not a path, not a notary SUBJECT with a scheme)."""
    if not text or len(text) > 512 or text.startswith(("/", ".", "~")) or "://" in text:
        return False
    m = _REFERENCE.match(text)
    if not m:
        return False
    host = m.group("host")
    # `a/b` is docker.io/a/b, but `name:tag` must not pass as a registry host `name` with port `tag`
    return host is None or "." in host or ":" in host or host == "localhost" or host.islower()


def repositories(candidates: Iterable[str | None]) -> tuple[str, ...]:
    """The normalized repositories among candidate references (anything else is ignored), sorted."""
    out = {normalize_name(c) for c in candidates if isinstance(c, str) and is_reference(c)}
    return tuple(sorted(out))[:MAX_NAMES]


def canonical(reference: str) -> str:
    """registry/repository:tag of a reference, with Docker's defaults (docker.io, library/, latest), so that
    `busybox`, `busybox:latest` and `docker.io/library/busybox:latest` name the same image."""
    ref = reference.strip().split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return f"{normalize_name(ref)}:{tag}"


def check_name(text: str) -> str:
    """A --name given by the user: an image reference, or a usage error."""
    cleaned = text.strip()
    if not is_reference(cleaned):
        shown = repr(text[:120]) + ("..." if len(text) > 120 else "")  # one line of bounded length, whatever it is
        raise UsageError(f"--name {shown} is not an image reference",
                         hint="e.g. registry.example/team/app or registry.example/team/app:1.4")
    return cleaned


def display_name(path: str) -> str:
    """What a record shows for a local file, directory or archive: its base name, never where it lay."""
    return os.path.basename(os.path.normpath(path)) or path
