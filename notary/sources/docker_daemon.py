"""Images known to a local Docker Engine, by name (Docker SDK for Python, imported only here).

An image in the Engine's classic store has no manifest digest, so its identity is the image id (the config
digest). resolve() exports the image by id (`docker save` as a stream), hashes every member on the way and
checks the config against the id and each layer against the config's diff ids, exactly like a docker-archive
file. Repo digests the Engine knows (images pulled by digest) are recorded in Subject.extra.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import ParamSpec, Protocol, TypeVar

from notary.digests import CHUNK, check_digest
from notary.errors import DigestMismatchError, InputError, NotFoundError, SourceUnavailableError, UsageError
from notary.sources.base import Progress, SourceOptions, Subject
from notary.sources.spec import SubjectRef

_P = ParamSpec("_P")
_T = TypeVar("_T")


class _Image(Protocol):
    """What notary reads of a docker.models.images.Image (the SDK ships no type information)."""

    @property
    def id(self) -> str: ...
    @property
    def attrs(self) -> Mapping[str, object] | None: ...


class _Images(Protocol):
    def get(self, name: str) -> _Image: ...


class _Api(Protocol):
    def get_image(self, image: str, chunk_size: int) -> Iterable[bytes]: ...


class _Engine(Protocol):
    """The part of docker.DockerClient notary uses: one image's attributes, its export, close."""

    @property
    def images(self) -> _Images: ...
    @property
    def api(self) -> _Api: ...
    def close(self) -> None: ...


class _IterReader:
    """A read()-able file object over an iterator of byte chunks (the Engine's export stream)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                break
            self._buf += chunk
        if n < 0:
            data, self._buf = self._buf, b""
        else:
            data, self._buf = self._buf[:n], self._buf[n:]
        return data


def _client(options: SourceOptions) -> _Engine:
    try:
        import docker
    except ImportError:
        raise UsageError("docker-daemon: subjects need the Docker SDK for Python",
                         hint="pip install 'notary[docker]'") from None
    try:
        client: _Engine
        if options.docker_host:
            client = docker.DockerClient(base_url=options.docker_host, timeout=int(options.timeout))
        else:
            client = docker.from_env(timeout=int(options.timeout))
        return client
    except docker.errors.DockerException as exc:
        raise SourceUnavailableError(f"cannot reach the Docker Engine: {exc}",
                                     hint="is dockerd running? set DOCKER_HOST") from None


def _engine_call(what: str, func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    import docker
    import requests

    try:
        return func(*args, **kwargs)
    except docker.errors.ImageNotFound:
        raise NotFoundError(f"image {what} not found in the Docker Engine") from None
    except docker.errors.APIError as exc:
        if exc.status_code is not None and exc.status_code < 500:
            raise InputError(f"Docker Engine refused {what}: {exc.explanation or exc}") from None
        raise SourceUnavailableError(f"Docker Engine failed on {what}: {exc.explanation or exc}") from None
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise SourceUnavailableError(f"cannot reach the Docker Engine ({exc.__class__.__name__})",
                                     hint="is dockerd running? set DOCKER_HOST") from None


def daemon_subjects(ref: SubjectRef, options: SourceOptions, progress: Progress | None, *,
                    full: bool) -> list[Subject]:
    assert ref.name is not None
    client = _client(options)
    try:
        image = _engine_call(ref.name, client.images.get, ref.name)
        image_id = check_digest(image.id, f"image id of {ref.name}")
        attrs = image.attrs or {}
        extra: dict[str, object] = {"engineReference": ref.name}
        for field, name in (("RepoDigests", "repoDigests"), ("RepoTags", "repoTags")):
            listed = attrs.get(field)
            if listed and isinstance(listed, list):  # the Engine answers lists of strings (or null)
                extra[name] = list(listed)
        if not full:
            return [Subject(image_id, ref.name, "docker-image", image_id=image_id, extra=extra)]
        from notary.sources.docker_archive import stream_subjects

        # export by id, so the bytes hashed are those of the image identified above, even if the tag moves
        size = attrs.get("Size")
        if progress is not None and isinstance(size, int):
            progress.add_total(size)  # the export is this plus tar headers: close enough for a bar
        chunks = _engine_call(ref.name, client.api.get_image, image_id, chunk_size=CHUNK)
        reader = _IterReader(iter(chunks))
        label = f"Docker Engine export of {ref.name}"
        subjects = _engine_call(ref.name, stream_subjects, reader, label, replace(ref, name=None), options,
                                progress, full=True, default_name=ref.name)
    finally:
        client.close()
    mine = [s for s in subjects if image_id in (s.digest, s.image_id)]
    if not mine:
        raise DigestMismatchError(f"the Docker Engine exported {ref.name} as something other than {image_id}")
    return [replace(s, name=ref.name, extra={**{k: v for k, v in s.extra.items() if k != "archive"}, **extra})
            for s in mine]
