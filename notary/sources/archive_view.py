"""Two ways to look at a `docker save` tar: in place (uncompressed file: members hashed in parallel, each
worker with its own handle seeking to the member's data) or as a stream (compressed file, Docker Engine
export: one sequential pass that hashes every member and keeps only small JSON documents in memory).

Both present the same small interface to docker_archive.py, so the classic and OCI-in-tar logic is written
once, and both also act as an ocimodel.BlobStore for the OCI-in-tar form.
"""

from __future__ import annotations

import hashlib
import lzma
import tarfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO

from notary.digests import CHUNK, Digested, digest_hex, hash_region, verify_bytes
from notary.errors import DigestMismatchError, InputError, NotFoundError
from notary.sources import tarsafe
from notary.sources.base import Progress

GZIP_MAGIC = b"\x1f\x8b"
KEEP_LIMIT = 8 << 20  # JSON members kept in memory while streaming: manifests, configs, index.json
KEEP_TOTAL = 256 << 20


@dataclass(frozen=True)
class LayerCheck:
    """What hashing a layer member found: its raw digest and size, and (if gzip) its uncompressed digest."""

    digest: str
    size: int
    diff_id: str


class Gunzip:
    """Digest of the decompressed bytes of a gzip stream, with bounded output per step (no bomb)."""

    def __init__(self) -> None:
        self.hasher = hashlib.sha256()
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, chunk: bytes) -> None:
        data = chunk
        try:
            while data:
                out = self._d.decompress(data, CHUNK)
                self.hasher.update(out)
                data = self._d.unconsumed_tail
                if self._d.eof:
                    rest = self._d.unused_data
                    self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    data = rest if rest.startswith(GZIP_MAGIC) else b""
                elif not data:
                    while True:  # drain output still buffered inside zlib
                        out = self._d.decompress(b"", CHUNK)
                        if not out:
                            break
                        self.hasher.update(out)
        except zlib.error as exc:
            raise InputError(f"corrupt gzip layer: {exc}") from None

    def digest(self) -> str:
        return "sha256:" + self.hasher.hexdigest()


def gunzip_digest(chunks: Iterable[bytes]) -> str:
    g = Gunzip()
    for chunk in chunks:
        g.feed(chunk)
    return g.digest()


def claimed_digest(name: str) -> str | None:
    """The digest a member's name asserts: blobs/sha256/<hex>, <hex>.tar, <hex>.json (or None)."""
    base = name.rsplit("/", 1)[-1]
    for suffix in (".json", ".tar"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    if len(base) == 64 and all(c in "0123456789abcdef" for c in base):
        return "sha256:" + base
    return None


class FileView:
    """An uncompressed archive read in place."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)
        self.where = f"archive {path}"
        self.members = tarsafe.scan(path)

    def has(self, name: str) -> bool:
        return name in self.members

    def read(self, name: str, limit: int) -> bytes:
        member = tarsafe.resolve_link(self.members, name, self.label)
        if member.size > limit:
            raise InputError(f"{name} in {self.label} is {member.size} bytes, over the {limit} limit")
        with open(self.path, "rb") as fh:
            fh.seek(member.offset)
            data = fh.read(member.size)
        if len(data) != member.size:
            raise InputError(f"{self.label} is truncated inside {name}")
        return data

    def size_of(self, name: str) -> int:
        return tarsafe.resolve_link(self.members, name, self.label).size

    def _regions(self, offset: int, size: int) -> Iterable[bytes]:
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            left = size
            while left:
                chunk = fh.read(min(CHUNK, left))
                if not chunk:
                    raise InputError(f"{self.label} is truncated")
                left -= len(chunk)
                yield chunk

    def layer_task(self, name: str, progress: Progress | None) -> Callable[[], LayerCheck]:
        member = tarsafe.resolve_link(self.members, name, self.label)

        def run() -> LayerCheck:
            raw = hash_region(self.path, member.offset, member.size, None, progress, name=f"{name} in {self.label}")
            with open(self.path, "rb") as fh:
                fh.seek(member.offset)
                compressed = fh.read(2) == GZIP_MAGIC
            diff = gunzip_digest(self._regions(member.offset, member.size)) if compressed else raw.digest
            return LayerCheck(raw.digest, raw.size, diff)

        return run

    # ocimodel.BlobStore, for the OCI-in-tar form
    def read_blob(self, digest: str, size: int | None, limit: int, what: str) -> bytes:
        name = "blobs/sha256/" + digest_hex(digest)
        if not self.has(name):
            raise NotFoundError(f"{what} blob {digest} is missing from {self.label}")
        data = self.read(name, limit)
        verify_bytes(data, digest, size, name=f"{what} blob")
        return data

    def blob_task(self, digest: str, size: int, what: str, progress: Progress | None) -> Callable[[], Digested]:
        name = "blobs/sha256/" + digest_hex(digest)
        if not self.has(name):
            raise NotFoundError(f"{what} blob {digest} is missing from {self.label}")
        member = tarsafe.resolve_link(self.members, name, self.label)
        if member.size != size:
            raise DigestMismatchError(f"{what} blob {digest} is {member.size} bytes, but {size} were declared")
        return partial(hash_region, self.path, member.offset, member.size, digest, progress,
                       name=f"{what} blob {digest}")


# What a truncated or corrupt compressed stream raises from inside tarfile's decompressing reader: its own
# ReadError ("unexpected end of data"), EOFError, zlib.error, lzma.LZMAError, and OSError without an errno
# (bz2's "Invalid data stream").
_CORRUPT: tuple[type[BaseException], ...] = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


@dataclass
class _Seen:
    digest: str
    size: int
    diff_id: str
    data: bytes | None


class StreamView:
    """An archive read once as a stream; every member hashed on the way, small ones kept."""

    def __init__(self, fileobj: tarsafe.ByteStream, label: str, progress: Progress | None) -> None:
        self.label = label
        self.where = f"archive {label}"
        self.seen: dict[str, _Seen] = {}
        self.links: dict[str, tarsafe.Member] = {}
        try:
            self._read_all(fileobj, progress)
        except _CORRUPT as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise  # a real read error of the file, not a bad stream
            raise InputError(f"{label} is truncated or corrupt: {_describe(exc)}") from None

    def _read_all(self, fileobj: tarsafe.ByteStream, progress: Progress | None) -> None:
        kept = 0
        for member, data in tarsafe.stream_members(fileobj, self.label):
            if member.kind in ("symlink", "hardlink"):
                self.links[member.name] = member
            if data is None:
                continue
            record = self._consume(member, data, progress)
            if record.data is not None:
                kept += record.size
                if kept > KEEP_TOTAL:
                    raise InputError(f"{self.label} holds more small documents than notary will keep in memory")
            self.seen[member.name] = record

    @staticmethod
    def _consume(member: tarsafe.Member, fh: IO[bytes], progress: Progress | None) -> _Seen:
        hasher = hashlib.sha256()
        keep: bytearray | None = None
        gunzip: Gunzip | None = None
        total = 0
        first = True
        while True:
            chunk = fh.read(CHUNK)
            if not chunk:
                break
            if first:
                if chunk.startswith(GZIP_MAGIC):
                    gunzip = Gunzip()
                # only JSON documents (manifests, configs, index.json) are kept, never layers
                elif member.size <= KEEP_LIMIT and chunk.lstrip()[:1] in (b"{", b"["):
                    keep = bytearray()
            first = False
            total += len(chunk)
            hasher.update(chunk)
            if gunzip is not None:
                gunzip.feed(chunk)
            if keep is not None:
                keep += chunk
            if progress is not None:
                progress.advance(len(chunk))
        if total != member.size:
            raise InputError(f"tar stream ended inside {member.name}")
        digest = "sha256:" + hasher.hexdigest()
        return _Seen(digest, total, gunzip.digest() if gunzip else digest,
                     bytes(keep) if keep is not None else None)

    def _lookup(self, name: str) -> _Seen:
        hops = 0
        while name in self.links and hops <= 16:
            target = self.links[name].target
            assert target is not None
            name, hops = target, hops + 1
        found = self.seen.get(name)
        if found is None:
            raise NotFoundError(f"{name!r} is missing from {self.label}")
        return found

    def has(self, name: str) -> bool:
        return name in self.seen or name in self.links

    def read(self, name: str, limit: int) -> bytes:
        found = self._lookup(name)
        if found.data is None or found.size > limit:
            raise InputError(f"{name} in {self.label} is {found.size} bytes, over the {limit} limit")
        return found.data

    def size_of(self, name: str) -> int:
        return self._lookup(name).size

    def layer_task(self, name: str, progress: Progress | None) -> Callable[[], LayerCheck]:
        found = self._lookup(name)
        return lambda: LayerCheck(found.digest, found.size, found.diff_id)

    def read_blob(self, digest: str, size: int | None, limit: int, what: str) -> bytes:
        data = self.read("blobs/sha256/" + digest_hex(digest), limit)
        verify_bytes(data, digest, size, name=f"{what} blob")
        return data

    def blob_task(self, digest: str, size: int, what: str, progress: Progress | None) -> Callable[[], Digested]:
        found = self._lookup("blobs/sha256/" + digest_hex(digest))

        def check() -> Digested:
            if found.size != size:
                raise DigestMismatchError(f"{what} blob {digest} is {found.size} bytes, but {size} were declared")
            if found.digest != digest:
                raise DigestMismatchError(f"{what} blob does not match its digest: expected {digest}, "
                                          f"got {found.digest}")
            return Digested(found.digest, found.size)

        return check
