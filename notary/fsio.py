"""Files notary writes (atomic replacement) and files it reads from outside (bounded, regular files only).

Writes: readers see the old bytes or the new ones, never a torn file (trusted state, ledger keys, hooks).

Reads: every file named from outside (keys, notary.toml, policy key files, a bundle's config.json, OCI layout
documents, registry auth files) goes through `read_regular`, because `open()` + `read()` is three attacks at
once: a FIFO blocks forever (a hung container start), `/dev/zero` never ends (unbounded memory), and a name
longer than NAME_MAX raises an OSError nobody expected. Here the path is stat'ed first (nothing but a regular
file is ever opened, so opening a device has no side effect), opened non-blocking, fstat'ed again (the file
cannot be swapped in between), and read up to a per-kind limit. Every failure is one typed error line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from notary.errors import InputError, NotaryError, NotFoundError

# Per-kind limits: far above any genuine file of the kind, far below what hurts a node.
MAX_KEY = 64 << 10            # a PEM key is well under 4 KiB, even encrypted
MAX_CONFIG_FILE = 1 << 20     # notary.toml with its [policy]
MAX_AUTH_FILE = 1 << 20       # a docker config.json with credentials
NAME_MAX = 255                # bytes in one path component (Linux, every common file system)
PATH_MAX = 4096               # bytes in a whole path, including the terminating NUL

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link"))


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write data to a temp file beside path (created with mode, so secrets are never briefly world-readable),
    fsync it, rename it over path, and fsync the directory. Raises OSError; callers type the error."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def check_path_length(path: str | os.PathLike[str], what: str, *, error: type[NotaryError] = InputError) -> None:
    """Refuse a path the kernel would refuse with ENAMETOOLONG, with one line instead of an OSError from
    whichever stat() happens to meet it first (pathlib's exists() raises it, it does not return False)."""
    raw = os.fsencode(path)
    if len(raw) >= PATH_MAX:
        raise error(f"{what} path is {len(raw)} bytes long, over the {PATH_MAX - 1} byte limit (PATH_MAX)")
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        raise error(f"{what} path has a {len(longest)} byte component, over the {NAME_MAX} byte limit "
                    f"(NAME_MAX): {os.fsdecode(longest[:40])}...")


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _oserror(exc: OSError, path: str, what: str, error: type[NotaryError]) -> NotaryError:
    missing = NotFoundError if error is InputError else error
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return missing(f"{what} {path} does not exist")
    if exc.errno == errno.ENAMETOOLONG:
        return error(f"{what} path is too long (over NAME_MAX or PATH_MAX): {path[:80]}...")
    if exc.errno == errno.ELOOP:
        return error(f"{what} {path} is a symbolic link, which is not accepted here")
    return error(f"cannot read {what} {path}: {exc.strerror or exc}")


def open_regular(path: str | os.PathLike[str], what: str, *, error: type[NotaryError] = InputError,
                 follow_symlinks: bool = True) -> BinaryIO:
    """An open binary file object for path, which must be a regular file; never blocks, never opens a
    device. error types every failure (NotFoundError for a missing file when error is InputError).
    follow_symlinks=False also refuses a symlink as the last component (O_NOFOLLOW)."""
    name = os.fspath(path)
    check_path_length(name, what, error=error)
    try:
        st = os.stat(name, follow_symlinks=follow_symlinks)
    except OSError as exc:
        raise _oserror(exc, name, what, error) from None
    except ValueError:  # an embedded NUL byte
        raise error(f"{what} path contains a NUL byte") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {name} is {_kind(st.st_mode)}, not a regular file")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(name, flags)
    except OSError as exc:
        raise _oserror(exc, name, what, error) from None
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode):  # swapped between stat and open
            raise error(f"{what} {name} is {_kind(now.st_mode)}, not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], limit: int, what: str, *, error: type[NotaryError] = InputError,
                 follow_symlinks: bool = True) -> bytes:
    """The bytes of a regular file of at most limit bytes (see open_regular); a larger file, or one that
    grows past the limit while it is read, is refused rather than cut."""
    name = os.fspath(path)
    with open_regular(name, what, error=error, follow_symlinks=follow_symlinks) as fh:
        try:
            size = os.fstat(fh.fileno()).st_size
            if size > limit:
                raise error(f"{what} {name} is {size} bytes, over the {limit} byte limit")
            data = fh.read(limit + 1)
        except OSError as exc:
            raise _oserror(exc, name, what, error) from None
    if len(data) > limit:
        raise error(f"{what} {name} is over the {limit} byte limit")
    return data


def lock_within(fd: int, seconds: float, what: str, *,
                error: Callable[[str], Exception] = TimeoutError) -> None:
    """An exclusive flock on fd, or `error` after `seconds`: a process stopped or hung while holding the lock
    (a `kill -STOP`, a stalled disk) must cost one refusal, never every caller behind it waiting forever.
    Polls LOCK_NB (flock has no timeout), backing off from 1 ms to 50 ms, so an uncontended lock costs one call.
    The default error, TimeoutError, is an OSError: callers that treat an unusable file as one keep doing so."""
    import fcntl
    import time

    deadline, pause = time.monotonic() + seconds, 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if time.monotonic() >= deadline:
            raise error(f"{what} stayed locked by another process for {seconds:g} s (one may be stopped or hung)")
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
