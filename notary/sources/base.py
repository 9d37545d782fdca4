"""What a source produces: subjects (things with an identity digest) and the artifacts they are made of.

A source never returns a digest it did not check: every blob it reads is hashed while it streams and compared
with the digest (and size) that names it, raising DigestMismatchError (exit 3) on any difference. Malformed or
unsafe input (bad JSON, `../` in a tar, unknown digest algorithm, a missing blob) raises InputError (exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from notary.environment import Environment


@dataclass(frozen=True)
class Artifact:
    """One blob or file a subject is made of. role: index, manifest, config, layer, file, directory."""

    digest: str
    size: int
    media_type: str
    role: str
    name: str | None = None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "digest": self.digest,
            "size": self.size,
            "mediaType": self.media_type,
            "role": self.role,
        }
        if self.name is not None:
            data["name"] = self.name
        return data


@dataclass(frozen=True)
class Subject:
    """A notarizable thing. digest is its identity (docs/subjects.md, "Images": one digest per notarizable thing).

    kind: oci-index, oci-manifest, docker-image (identity = image id, no manifest digest known), file,
    directory. name: human name (e.g. registry.example/app:1.0, or a file's base name: never a local path).
    image_id: the config digest when the subject is an image, so the gate can match a local Docker image by
    id. names: the repositories the record binds it to.
    """

    digest: str
    name: str
    kind: str
    artifacts: tuple[Artifact, ...] = ()
    platform: str | None = None
    image_id: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    names: tuple[str, ...] = ()  # normalized repositories it was built or pushed as (notary.names)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"digest": self.digest, "name": self.name, "kind": self.kind}
        if self.platform:
            data["platform"] = self.platform
        if self.image_id:
            data["imageId"] = self.image_id
        if self.names:
            data["names"] = list(self.names)
        return data


class Progress(Protocol):
    """Byte progress for long hashing work; the CLI supplies a terminal bar, the library never prints."""

    def add_total(self, nbytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...


class NoProgress:
    def add_total(self, nbytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass


@dataclass(frozen=True)
class SourceOptions:
    """Knobs shared by all sources.

    workers: parallel hashing threads (default: CPU count). insecure: allow plain HTTP, only to loopback
    registries. registry_auth_file: a JSON file with credentials (docker config.json or {"username",
    "password"} / {"token"}); NOTARY_REGISTRY_USERNAME / NOTARY_REGISTRY_PASSWORD / NOTARY_REGISTRY_TOKEN
    from the environment otherwise, then the docker and podman login files and their credential helpers
    (notary.sources.registry_credentials). docker_host: Engine API address (default DOCKER_HOST or the unix socket).
    environment: the environment the caller read (the CLI's), where registry logins are looked up; None: the
    process's, when a registry is asked.
    """

    workers: int | None = None
    insecure: bool = False
    registry_auth_file: str | None = None
    docker_host: str | None = None
    timeout: float = 30.0
    environment: Environment | None = field(default=None, repr=False)
