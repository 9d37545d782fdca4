"""Parsing SUBJECT strings (docs/subjects.md, "SUBJECT forms") into a SubjectRef, with no I/O beyond a stat.

Forms: `oci:PATH[:TAG|@DIGEST]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE`, `docker-daemon:NAME[:TAG|@DIGEST]`,
`registry://HOST[:PORT]/REPO(:TAG|@DIGEST)`, a bare `sha256:<hex>`, or a plain path. Paths may contain colons:
a tag is whatever follows the last ':' after the last '/', and `@sha256:` is split off first.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from notary.digests import check_digest
from notary.errors import UsageError
from notary.fsio import check_path_length

KINDS = ("oci", "oci-archive", "docker-archive", "docker-daemon", "registry", "path", "digest")
FORMS = ("oci:PATH[:TAG|@DIGEST], oci-archive:FILE[:TAG], docker-archive:FILE, docker-daemon:NAME[:TAG], "
         "registry://HOST[:PORT]/REPO(:TAG|@DIGEST), a file or directory path, or sha256:<64 hex>")

TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_REPO_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPO_RE = re.compile(rf"^{_REPO_COMPONENT}(?:/{_REPO_COMPONENT})*\Z")
_HOST_RE = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?\Z")
_DIGESTISH = re.compile(r"^[A-Za-z0-9+._-]+:[^/]*\Z")
_BARE_DIGEST = re.compile(r"^[A-Za-z0-9+._-]+:[0-9a-fA-F]{32,}\Z")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class SubjectRef:
    """A parsed SUBJECT. Which fields are set depends on kind:
    oci: path, tag or digest; oci-archive: path (and tag, also in name); docker-archive: path (and optionally name, an image in a multi-image archive);
    docker-daemon: name; registry: host, repository, tag and/or digest; path: path; digest: digest."""

    kind: str
    spec: str
    path: str | None = None
    tag: str | None = None
    digest: str | None = None
    host: str | None = None
    repository: str | None = None
    name: str | None = None

    @property
    def reference(self) -> str:
        """host/repo:tag or host/repo@digest (registry kind)."""
        base = f"{self.host}/{self.repository}"
        return f"{base}@{self.digest}" if self.digest else f"{base}:{self.tag}"


def _split_digest(text: str, spec: str) -> tuple[str, str | None]:
    """Split `X@alg:hex` into (X, digest); an '@' that is just part of a path is left alone."""
    head, sep, tail = text.rpartition("@")
    if not sep or not _DIGESTISH.match(tail):
        return text, None
    return head, check_digest(tail, f"digest of subject {spec!r}")


def _split_tag(text: str) -> tuple[str, str | None]:
    """Split at the last ':' that follows the last '/' (so `/a:b/c` has no tag, `/a/b:t` has tag t)."""
    colon = text.rfind(":")
    if colon > text.rfind("/"):
        return text[:colon], text[colon + 1:]
    return text, None


def _parse_oci(spec: str, rest: str) -> SubjectRef:
    if not rest:
        raise UsageError(f"empty path in subject {spec!r}", hint="use oci:PATH[:TAG|@DIGEST]")
    path, digest = _split_digest(rest, spec)
    tag = None
    if digest is None:
        candidate, tag = _split_tag(rest)
        # a layout directory whose own name has a colon, named without a tag
        if tag is not None and os.path.isfile(os.path.join(rest, "oci-layout")) and not os.path.isfile(
                os.path.join(candidate, "oci-layout")):
            candidate, tag = rest, None
        path = candidate
        if tag is not None and not TAG_RE.match(tag):
            raise UsageError(f"invalid tag {tag!r} in subject {spec!r}",
                             hint="a tag is 1-128 letters, digits, '_', '.', '-'")
    if not path:
        raise UsageError(f"empty path in subject {spec!r}", hint="use oci:PATH[:TAG|@DIGEST]")
    return SubjectRef("oci", spec, path=path, tag=tag, digest=digest)


def _parse_registry(spec: str, rest: str) -> SubjectRef:
    host, slash, remainder = rest.partition("/")
    if not slash or not host or not remainder:
        raise UsageError(f"subject {spec!r} needs a host and a repository",
                         hint="use registry://HOST[:PORT]/REPO(:TAG|@DIGEST)")
    if not _HOST_RE.match(host):
        raise UsageError(f"invalid registry host {host!r} in subject {spec!r}")
    port = host.rpartition(":")[2] if ":" in host and not host.endswith("]") else None
    if port is not None and not 0 < int(port) < 65536:
        raise UsageError(f"invalid port in registry host {host!r}")
    repo_tag, digest = _split_digest(remainder, spec)
    repo, tag = _split_tag(repo_tag)
    if tag is not None and not TAG_RE.match(tag):
        raise UsageError(f"invalid tag {tag!r} in subject {spec!r}",
                         hint="a tag is 1-128 letters, digits, '_', '.', '-'")
    if not REPO_RE.match(repo):
        raise UsageError(f"invalid repository name {repo!r} in subject {spec!r}",
                         hint="lowercase letters, digits and separators ('.', '_', '-', '/')")
    if tag is None and digest is None:
        raise UsageError(f"subject {spec!r} names no tag or digest",
                         hint="add :TAG or @sha256:... (notary never assumes :latest)")
    return SubjectRef("registry", spec, host=host.lower(), repository=repo, tag=tag, digest=digest)


def parse_subject(spec: str) -> SubjectRef:
    """Parse a SUBJECT string; UsageError (exit 2) with the accepted forms when it is not one, or when its
    path is longer than the kernel accepts (NAME_MAX per component, PATH_MAX in all)."""
    ref = _parse(spec)
    if ref.path is not None:
        check_path_length(ref.path, "subject" if ref.kind == "path" else f"{ref.kind} subject", error=UsageError)
    return ref


def _parse(spec: str) -> SubjectRef:
    if not isinstance(spec, str) or not spec.strip():
        raise UsageError("empty subject", hint=f"use one of: {FORMS}")
    if spec != spec.strip() or "\x00" in spec or "\n" in spec:
        raise UsageError(f"subject {spec!r} contains whitespace or control characters")
    if not spec.isascii():
        try:  # bytes that are not UTF-8 arrive from argv as lone surrogates: no record could hold the name
            spec.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"subject {spec!r} is not UTF-8 text", hint="rename it, or name its directory") from None
    if spec.startswith("oci:"):
        return _parse_oci(spec, spec[4:])
    if spec.startswith("docker-archive:"):
        rest = spec[len("docker-archive:"):]
        if not rest:
            raise UsageError(f"empty file name in subject {spec!r}", hint="use docker-archive:FILE")
        path, name = rest, None
        if not os.path.exists(rest):
            # docker-archive:FILE:NAME[:TAG] selects one image of a multi-image archive (skopeo's form); NAME
            # may hold '/' and ':' (registry.example:5000/team/app:1), so the file is the longest existing prefix
            for at in sorted((i for i, c in enumerate(rest) if c == ":"), reverse=True):
                if os.path.isfile(rest[:at]) and rest[at + 1:]:
                    path, name = rest[:at], rest[at + 1:]
                    break
        return SubjectRef("docker-archive", spec, path=path, name=name)
    if spec.startswith("oci-archive:"):
        rest = spec[len("oci-archive:"):]
        if not rest:
            raise UsageError(f"empty file name in subject {spec!r}", hint="use oci-archive:FILE[:TAG]")
        path, tag = rest, None
        if not os.path.exists(rest):
            head, tail = _split_tag(rest)
            if tail is not None and os.path.exists(head):
                path, tag = head, tail
        return SubjectRef("oci-archive", spec, path=path, name=tag, tag=tag)
    if spec.startswith("docker-daemon:"):
        name = spec[len("docker-daemon:"):]
        if not name or any(c.isspace() for c in name):
            raise UsageError(f"invalid image name in subject {spec!r}", hint="use docker-daemon:NAME[:TAG]")
        return SubjectRef("docker-daemon", spec, name=name)
    if spec.startswith("registry://"):
        return _parse_registry(spec, spec[len("registry://"):])
    if _BARE_DIGEST.match(spec) and not os.path.exists(spec):
        return SubjectRef("digest", spec, digest=check_digest(spec, "subject digest"))
    scheme = _SCHEME.match(spec)
    if (scheme and len(scheme.group(1)) > 1 and not os.path.exists(spec)) or "://" in spec:
        raise UsageError(f"unknown subject type in {spec!r}", hint=f"use one of: {FORMS}")
    return SubjectRef("path", spec, path=spec)
