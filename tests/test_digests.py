"""Streaming digests: the expected digest and size are enforced as bytes flow, digest strings are validated."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import threading
from functools import partial
from pathlib import Path

import pytest

from notary.digests import (
    check_digest,
    digest_hex,
    hash_chunks,
    hash_file,
    hash_region,
    hash_stream,
    run_parallel,
)
from notary.errors import DigestMismatchError, InputError, NotFoundError

DATA = os.urandom(3 * (1 << 20) + 12345)
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


class EndlessStream(io.RawIOBase):
    """A blob that never ends, counting what was read: a size limit must stop reading it."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = len(buffer)
        buffer[:n] = b"\0" * n
        self.read_bytes += n
        return n


class Recorder:
    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def add_total(self, nbytes: int) -> None:
        self.total += nbytes

    def advance(self, nbytes: int) -> None:
        with self.lock:
            self.done += nbytes
            self.threads.add(threading.current_thread().name)


def test_stream_digest_matches_hashlib_and_reports_progress() -> None:
    progress = Recorder()
    result = hash_stream(io.BytesIO(DATA), DIGEST, len(DATA), progress)
    assert result.digest == DIGEST and result.size == len(DATA)
    assert progress.done == len(DATA)


def test_file_digest_matches_sha256sum(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(DATA)
    out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout
    assert hash_file(path).digest == "sha256:" + out.split()[0]


def test_bytes_not_matching_their_digest_are_an_integrity_error() -> None:
    wrong = "sha256:" + "0" * 64
    with pytest.raises(DigestMismatchError) as err:
        hash_stream(io.BytesIO(DATA), wrong)
    assert err.value.exit_code == 3


def test_blob_longer_than_declared_is_refused_without_reading_it_all() -> None:
    endless = EndlessStream()
    with pytest.raises(DigestMismatchError, match="longer than"):
        hash_stream(endless, None, size=5 << 20)
    assert endless.read_bytes <= (5 << 20) + (1 << 20)


def test_truncated_blob_is_refused() -> None:
    with pytest.raises(DigestMismatchError, match="truncated"):
        hash_stream(io.BytesIO(DATA[:-1]), DIGEST, len(DATA))


def test_chunked_body_longer_than_declared_is_refused() -> None:
    with pytest.raises(DigestMismatchError):
        hash_chunks(iter([DATA[:10], DATA[10:]]), DIGEST, size=20)
    assert hash_chunks(iter([DATA[:10], DATA[10:]]), DIGEST, len(DATA)).digest == DIGEST


def test_file_with_a_different_size_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(DATA)
    with pytest.raises(DigestMismatchError):
        hash_file(path, DIGEST, len(DATA) - 1)


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as err:
        hash_file(tmp_path / "nope")
    assert err.value.exit_code == 2


def test_region_of_a_file_hashes_only_that_region(tmp_path: Path) -> None:
    path = tmp_path / "archive"
    path.write_bytes(b"x" * 1000 + DATA + b"y" * 1000)
    assert hash_region(path, 1000, len(DATA), DIGEST).digest == DIGEST
    with pytest.raises(InputError, match="truncated"):
        hash_region(path, len(DATA), len(DATA), None)


@pytest.mark.parametrize("value", ["sha512:" + "a" * 128, "md5:" + "a" * 32, "blake3:" + "a" * 64])
def test_unknown_digest_algorithm_is_bad_input(value: str) -> None:
    with pytest.raises(InputError, match="unsupported digest algorithm"):
        check_digest(value)


@pytest.mark.parametrize("value", ["sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha256:../../etc/passwd",
                                   "sha256:" + "a" * 64 + "/..", "", None, 42, "a" * 64])
def test_malformed_digest_is_bad_input(value: object) -> None:
    with pytest.raises(InputError, match="not a sha256 digest"):
        check_digest(value)


def test_digest_with_a_trailing_newline_is_bad_input() -> None:
    """`$` in a Python pattern also matches before a final newline: `sha256:<hex>\\n` once passed the one
    digest check (the CLI refused it earlier for other reasons; a policy file, a record payload did not)."""
    with pytest.raises(InputError, match="not a sha256 digest"):
        check_digest(DIGEST + "\n")
    with pytest.raises(InputError):
        digest_hex(DIGEST + "\n")


def test_digest_hex_never_yields_a_path_component() -> None:
    assert digest_hex(DIGEST) == DIGEST[7:]
    with pytest.raises(InputError):
        digest_hex("sha256:../" + "a" * 61)


def test_parallel_hashing_matches_serial_and_uses_several_threads(tmp_path: Path) -> None:
    paths = []
    for i in range(6):
        path = tmp_path / f"blob{i}"
        path.write_bytes(os.urandom(4 << 20))
        paths.append(path)
    serial = [hash_file(p) for p in paths]
    progress = Recorder()
    parallel = run_parallel([partial(hash_file, p, None, None, progress) for p in paths], workers=2)
    assert parallel == serial
    assert len(progress.threads) == 2


def test_first_failure_in_parallel_hashing_is_raised(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_bytes(DATA)
    tasks = [partial(hash_file, good, DIGEST), partial(hash_file, good, "sha256:" + "1" * 64)]
    with pytest.raises(DigestMismatchError):
        run_parallel(tasks, workers=2)
