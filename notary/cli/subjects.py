"""Turning SUBJECT arguments into identity digests, and the source flags commands share."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple, ParamSpec, TypeVar

import click

from notary.cli.common import App
from notary.records import check_digest

if TYPE_CHECKING:
    from notary.sources.base import Artifact, SourceOptions, Subject

_P = ParamSpec("_P")
_R = TypeVar("_R")

_BARE_DIGEST = re.compile(r"^[a-z0-9]+:[0-9a-fA-F]{32,}\Z")


def source_options_flags(func: Callable[_P, _R]) -> Callable[_P, _R]:
    @registry_options_flags
    @click.option("--workers", type=click.IntRange(1, 64), help="Parallel hashing threads (default: CPUs).")
    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return func(*args, **kwargs)

    return wrapper


def registry_options_flags(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """--insecure and --registry-auth alone: for commands that resolve tags but never hash blobs (the webhook,
    whose --workers are its serving threads)."""
    @click.option("--insecure", is_flag=True, help="Allow plain HTTP to a registry on loopback.")
    @click.option("--registry-auth", "registry_auth", metavar="FILE", help="Registry credentials file "
                  "(docker config.json / podman auth.json with credential helpers, or {\"username\",\"password\"} "
                  "/ {\"token\"}). Default: env NOTARY_REGISTRY_USERNAME/PASSWORD/TOKEN, else the docker/podman "
                  "login files (REGISTRY_AUTH_FILE, containers/auth.json, ~/.docker/config.json).")
    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return func(*args, **kwargs)

    return wrapper


def source_options(app: App, flags: Mapping[str, object]) -> SourceOptions:
    from notary.sources.base import (
        SourceOptions,  # the registry/archive code loads only when a source is read
    )

    registry = app.config.section("registry")
    auth = flags.get("registry_auth") or registry.get("auth_file")
    workers = flags.get("workers")  # click's IntRange: an int or None
    return SourceOptions(
        workers=workers if isinstance(workers, int) else None,
        insecure=bool(flags.get("insecure") or registry.get("insecure", False)),
        registry_auth_file=app.config.resolve_path(str(auth)) if auth else None,
        environment=app.env,
    )


def identify_digests(app: App, spec: str, flags: Mapping[str, object]) -> list[tuple[str, str]]:
    """(digest, name) of each subject SPEC names, without hashing layers; a bare digest needs no I/O."""
    if _BARE_DIGEST.match(spec):
        return [(check_digest(spec), spec)]
    from notary.sources import identify

    return [(s.digest, s.name) for s in identify(spec, options=source_options(app, flags))]


LOCAL_KINDS = ("oci", "oci-archive", "docker-archive", "docker-daemon", "path")


class BareDigest(NamedTuple):
    """A subject given as its digest: the fields of a Subject that verify reads."""

    digest: str
    name: str
    kind: str = "digest"
    platform: str | None = None
    artifacts: tuple[Artifact, ...] = ()


def read_subjects(app: App, spec: str, flags: Mapping[str, object], *, read_bytes: bool,
                  pull_blobs: bool = False) -> tuple[Sequence[Subject | BareDigest], bool]:
    """The subjects SPEC names, and whether their bytes were read: a local image (layout, archive, Docker
    Engine) is read and every blob hashed against its digest unless read_bytes is off; a registry image only
    with pull_blobs. A bare digest is just an identity."""
    if _BARE_DIGEST.match(spec):  # no source to read: the sources are not even imported (hook start-up)
        return [BareDigest(check_digest(spec), spec)], False
    from notary.sources import identify, parse_subject, resolve

    kind = parse_subject(spec).kind
    full = read_bytes and (kind in LOCAL_KINDS or (kind == "registry" and pull_blobs))
    options = source_options(app, flags)
    return (resolve(spec, options=options) if full else identify(spec, options=options)), full
