"""Images in a registry (Registry HTTP API v2 / OCI distribution), read with requests.

The identity is the digest of the manifest bytes as served. notary hashes those bytes itself and checks
them against Docker-Content-Digest and against the @digest the user named; it never takes a registry's word
for a digest. Blobs are streamed (1 MiB chunks) through the hasher in parallel, with the declared size
enforced as bytes arrive.
"""

from __future__ import annotations

from collections.abc import Callable

import requests

from notary.digests import CHUNK, Digested, check_digest, hash_chunks, sha256_bytes, verify_bytes
from notary.errors import DigestMismatchError, InputError, NotFoundError, SourceUnavailableError
from notary.sources.base import Progress, SourceOptions, Subject
from notary.sources.ocimodel import (
    ACCEPT,
    DOCKER_SCHEMA1,
    MAX_MANIFEST,
    Descriptor,
    hash_blobs,
    walk_descriptor,
)
from notary.sources.registry_auth import RegistryClient, base_url
from notary.sources.spec import SubjectRef

ACCEPT_HEADER = ", ".join(ACCEPT)


def _check_status(resp: requests.Response, what: str, where: str) -> None:
    if resp.status_code == 200:
        return
    resp.close()
    if resp.status_code == 404:
        raise NotFoundError(f"{what} not found in {where}")
    if resp.status_code == 403:
        raise InputError(f"access to {what} in {where} is forbidden", hint="check the account's pull rights")
    if resp.status_code == 429 or resp.status_code >= 500:
        raise SourceUnavailableError(f"{where} answered {resp.status_code} for {what}")
    raise InputError(f"{where} answered {resp.status_code} for {what}")


def _read_limited(resp: requests.Response, limit: int, what: str, where: str) -> bytes:
    length = resp.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > limit:
        resp.close()
        raise InputError(f"{what} from {where} is {length} bytes, over the {limit} limit")
    body = bytearray()
    try:
        for chunk in resp.iter_content(CHUNK):
            body += chunk
            if len(body) > limit:
                raise InputError(f"{what} from {where} is over the {limit} byte limit")
    except requests.RequestException as exc:
        raise SourceUnavailableError(f"reading {what} from {where} failed: {exc.__class__.__name__}") from None
    finally:
        resp.close()
    return bytes(body)


class RegistryStore:
    """ocimodel.BlobStore over one repository: manifests by digest, blobs streamed."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self.where = f"registry {client.hostport}/{client.repository}"

    def fetch_manifest(self, reference: str) -> tuple[bytes, str | None, str]:
        """(bytes, media type from Content-Type if it is one notary reads, digest of the bytes)."""
        resp = self.client.request("GET", f"manifests/{reference}", headers={"Accept": ACCEPT_HEADER},
                                   stream=True)
        _check_status(resp, f"manifest {reference}", self.where)
        content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        header = resp.headers.get("Docker-Content-Digest")
        body = _read_limited(resp, MAX_MANIFEST, f"manifest {reference}", self.where)
        if content_type in DOCKER_SCHEMA1:
            raise InputError(f"{self.where} serves {reference} as a Docker schema 1 manifest, not supported")
        digest = sha256_bytes(body)
        if header:
            check_digest(header.strip(), f"Docker-Content-Digest from {self.where}")
            if header.strip() != digest:
                raise DigestMismatchError(f"manifest {reference} from {self.where} hashes to {digest}, but the "
                                          f"registry says {header.strip()}")
        return body, (content_type if content_type in ACCEPT else None), digest

    def read_blob(self, digest: str, size: int | None, limit: int, what: str) -> bytes:
        if what == "manifest":
            body, _type, actual = self.fetch_manifest(digest)
            if actual != digest:
                raise DigestMismatchError(f"manifest {digest} from {self.where} hashes to {actual}")
            verify_bytes(body, digest, size, name="manifest")
            return body
        resp = self.client.request("GET", f"blobs/{check_digest(digest)}", stream=True)
        _check_status(resp, f"{what} blob {digest}", self.where)
        data = _read_limited(resp, limit, f"{what} blob {digest}", self.where)
        verify_bytes(data, digest, size, name=f"{what} blob")
        return data

    def blob_task(self, digest: str, size: int, what: str, progress: Progress | None) -> Callable[[], Digested]:
        check_digest(digest)

        def run() -> Digested:
            resp = self.client.request("GET", f"blobs/{digest}", stream=True)
            _check_status(resp, f"{what} blob {digest}", self.where)
            try:
                length = resp.headers.get("Content-Length")
                encoded = resp.headers.get("Content-Encoding", "identity") not in ("", "identity")
                if length is not None and length.isdigit() and not encoded and int(length) != size:
                    raise DigestMismatchError(f"{what} blob {digest} from {self.where} is {length} bytes, "
                                              f"but {size} were declared")
                return hash_chunks(resp.iter_content(CHUNK), digest, size, progress,
                                   name=f"{what} blob {digest} from {self.where}")
            except requests.RequestException as exc:
                raise SourceUnavailableError(f"reading {what} blob {digest} from {self.where} failed: "
                                             f"{exc.__class__.__name__}") from None
            finally:
                resp.close()

        return run


def registry_subjects(ref: SubjectRef, options: SourceOptions, progress: Progress | None, *,
                      full: bool) -> list[Subject]:
    assert ref.host is not None and ref.repository is not None
    name = ref.reference
    extra = {"reference": name}
    if ref.tag:
        extra["tag"] = ref.tag
    base_url(ref.host, options)  # refuse plain HTTP off loopback even when no request follows
    if not full and ref.digest:
        # the user named the identity: verification needs no network round trip to know it
        return [Subject(ref.digest, name, "oci-manifest", extra={**extra, "resolved": False})]
    client = RegistryClient(ref.host, ref.repository, options)
    store = RegistryStore(client)
    body, media_type, digest = store.fetch_manifest(ref.digest or str(ref.tag))
    if ref.digest and digest != ref.digest:
        raise DigestMismatchError(f"{name} hashes to {digest}, not the digest that names it")
    desc = Descriptor(media_type or "", digest, len(body))
    walk = walk_descriptor(store, desc, name, full=full, data=body, extra=extra)
    if full:
        hash_blobs(store, walk, workers=options.workers, progress=progress)
    return walk.subjects
