"""Streaming, parallel SHA-256 with the expected digest and size checked while the bytes flow.

Why this shape: notarize must never vouch for bytes that do not match their name, and must not trust a
declared size either (a blob that keeps going past its size is refused after size+1 bytes, not read to the
end). hashlib releases the GIL on large updates and file reads release it too, so a thread pool keeps every
core busy; chunks are 1 MiB read into a reused buffer so memory stays flat whatever the blob size.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from typing import IO, TYPE_CHECKING, NamedTuple, TypeVar, cast

from notary.errors import DigestMismatchError, InputError, NotFoundError

if TYPE_CHECKING:  # notary.sources imports this module; keep the import graph one-way at runtime
    from notary.sources.base import Progress

CHUNK = 1 << 20
SHA256_PATTERN = r"sha256:[0-9a-f]{64}"  # the one digest form notary accepts, stores and names files by
SHA256_RE = re.compile(rf"^{SHA256_PATTERN}\Z")  # \Z: `$` would also match before a final newline
_ALGO_RE = re.compile(r"^([A-Za-z0-9+._-]+):")

T = TypeVar("T")


class Digested(NamedTuple):
    """What hashing a blob found: its digest and exact size in bytes."""

    digest: str
    size: int


def check_digest(value: object, what: str = "digest") -> str:
    """Return value if it is `sha256:` + 64 lowercase hex; InputError otherwise.

    Every digest from outside passes here before it is compared, stored or turned into a path, so a digest
    string can never carry `../` or another algorithm into the program.
    """
    if isinstance(value, str) and SHA256_RE.match(value):
        return value
    shown = repr(value)[:100]
    if isinstance(value, str):
        algo = _ALGO_RE.match(value)
        if algo and algo.group(1) != "sha256":
            raise InputError(f"unsupported digest algorithm {algo.group(1)!r} in {what} {shown}",
                             hint="only sha256 digests are supported")
    raise InputError(f"not a sha256 {what}: {shown}", hint="expected sha256: followed by 64 lowercase hex digits")


def digest_hex(digest: str) -> str:
    """The hex part of a validated digest (safe to use as a file name)."""
    return check_digest(digest)[len("sha256:"):]


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def verify_bytes(data: bytes, expected: str, size: int | None = None, *, name: str = "blob") -> None:
    """Check in-memory bytes (manifests, configs) against the digest and size that name them."""
    check_digest(expected)
    if size is not None and len(data) != size:
        raise DigestMismatchError(f"{name} {expected} is {len(data)} bytes, but its descriptor says {size}")
    actual = sha256_bytes(data)
    if actual != expected:
        raise DigestMismatchError(f"{name} content does not match its digest: expected {expected}, got {actual}")


def _finish(hasher: hashlib._Hash, total: int, expected: str | None, size: int | None, name: str) -> Digested:
    if size is not None and total != size:
        raise DigestMismatchError(f"{name} is {total} bytes, but {size} were declared (truncated)")
    actual = "sha256:" + hasher.hexdigest()
    if expected is not None and actual != expected:
        raise DigestMismatchError(f"{name} does not match its digest: expected {expected}, got {actual}")
    return Digested(actual, total)


def hash_stream(fileobj: IO[bytes], expected: str | None = None, size: int | None = None,
                progress: Progress | None = None, *, name: str = "blob") -> Digested:
    """Hash fileobj to its end (or to size + 1 byte when size is declared, refusing anything longer)."""
    if expected is not None:
        check_digest(expected)
    if size is not None and size < 0:
        raise InputError(f"{name} declares a negative size ({size})")
    hasher = hashlib.sha256()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    total = 0
    readinto = getattr(fileobj, "readinto", None)
    while True:
        want = CHUNK if size is None else min(CHUNK, size - total + 1)
        if readinto is not None:
            n = readinto(view[:want])
            chunk = view[:n] if n else b""
        else:
            chunk = fileobj.read(want)
            n = len(chunk)
        if not n:
            break
        total += n
        if size is not None and total > size:
            raise DigestMismatchError(f"{name} is longer than the {size} bytes declared for it")
        hasher.update(chunk)
        if progress is not None:
            progress.advance(n)
    return _finish(hasher, total, expected, size, name)


def hash_chunks(chunks: Iterable[bytes], expected: str | None = None, size: int | None = None,
                progress: Progress | None = None, *, name: str = "blob") -> Digested:
    """Hash an iterator of byte chunks (an HTTP body), refusing to go past a declared size."""
    if expected is not None:
        check_digest(expected)
    hasher = hashlib.sha256()
    total = 0
    for chunk in chunks:
        if not chunk:
            continue
        total += len(chunk)
        if size is not None and total > size:
            raise DigestMismatchError(f"{name} is longer than the {size} bytes declared for it")
        hasher.update(chunk)
        if progress is not None:
            progress.advance(len(chunk))
    return _finish(hasher, total, expected, size, name)


def _open(path: str | os.PathLike[str], name: str) -> IO[bytes]:
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by the caller's with
    except FileNotFoundError:
        raise NotFoundError(f"{name} not found: {os.fspath(path)}") from None
    except IsADirectoryError:
        raise InputError(f"{name} is a directory, expected a file: {os.fspath(path)}") from None
    except OSError as exc:
        raise InputError(f"cannot read {name} {os.fspath(path)}: {exc.strerror or exc}") from None


def hash_file(path: str | os.PathLike[str], expected: str | None = None, size: int | None = None,
              progress: Progress | None = None, *, name: str | None = None) -> Digested:
    """Hash a whole file; a declared size that differs from the file's is refused before reading."""
    label = name or os.fspath(path)
    with _open(path, label) as fh:
        if size is not None:
            actual = os.fstat(fh.fileno()).st_size
            if actual != size:
                raise DigestMismatchError(f"{label} is {actual} bytes, but {size} were declared")
        return hash_stream(fh, expected, size, progress, name=label)


class _Region:
    """A file object limited to [offset, offset + size) of another, for tar members read in place."""

    def __init__(self, fh: IO[bytes], size: int) -> None:
        self.fh = fh
        self.left = size

    def readinto(self, view: memoryview) -> int:
        if self.left <= 0:
            return 0
        # fh comes from _open (binary, buffered): a BufferedReader, which has readinto; IO[bytes] does not say so
        n = self.fh.readinto(view[: min(len(view), self.left)])  # type: ignore[attr-defined]
        if not n:
            raise InputError("archive ends inside a member: truncated file")
        self.left -= n
        return int(n)


def hash_region(path: str | os.PathLike[str], offset: int, size: int, expected: str | None = None,
                progress: Progress | None = None, *, name: str | None = None) -> Digested:
    """Hash size bytes at offset of path (a member of an uncompressed tar), with its own file handle so
    several regions of one archive hash in parallel."""
    label = name or f"{os.fspath(path)}@{offset}"
    with _open(path, os.fspath(path)) as fh:
        fh.seek(offset)
        # hash_stream only calls readinto(): a region of the file is file enough
        return hash_stream(cast(IO[bytes], _Region(fh, size)), expected, size, progress, name=label)


def default_workers(workers: int | None = None) -> int:
    if workers is not None:
        if workers < 1:
            raise InputError(f"workers must be at least 1, got {workers}")
        return workers
    return os.cpu_count() or 1


def run_parallel(tasks: Sequence[Callable[[], T]], workers: int | None = None) -> list[T]:
    """Run tasks on a thread pool, results in task order; the first failure cancels what has not started
    and is raised (so one bad layer stops the whole read quickly)."""
    count = min(default_workers(workers), len(tasks))
    if count <= 1:
        return [task() for task in tasks]
    # imported here: concurrent.futures pulls in logging, and the gate's hot path never hashes in parallel
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="notary-hash") as pool:
        futures = [pool.submit(task) for task in tasks]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            if future in done and future.exception() is not None:
                for other in pending:
                    other.cancel()
                failure = future.exception()
                assert failure is not None
                raise failure
        return [future.result() for future in futures]
