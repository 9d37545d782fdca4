"""Reading tar archives (docker save output) without trusting their member names.

Nothing is ever extracted, but names still decide which bytes are taken for which blob, so an archive with
absolute names, `..` components, duplicate names, or links that leave the archive is refused outright
(InputError): an archive like that is malformed or an attack, and neither gets notarized.
"""

from __future__ import annotations

import posixpath
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, cast

from notary.errors import InputError, NotFoundError

_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")


class ByteStream(Protocol):
    """A tar's source read as a stream: tarfile's stream mode only ever calls read(size) on it, so an
    export's chunk iterator or a progress-counting wrapper is source enough."""

    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True)
class Member:
    """A regular file (or a link to one) inside an uncompressed tar, located by byte offset."""

    name: str
    offset: int
    size: int
    kind: str  # "file", "dir", "symlink", "hardlink"
    target: str | None = None  # normalized archive path a link points to


def safe_name(raw: str, archive: str) -> str:
    """The normalized member name, or InputError if it could point outside the archive."""
    if not raw or "\x00" in raw:
        raise InputError(f"unsafe member name {raw!r} in {archive}")
    if raw.startswith("/"):
        raise InputError(f"unsafe absolute member path {raw!r} in {archive}",
                         hint="a docker save archive only holds relative paths")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InputError(f"unsafe member path with '..' {raw!r} in {archive}")
    if not parts:
        raise InputError(f"unsafe member name {raw!r} in {archive}")
    return "/".join(parts)


def _link_target(info: tarfile.TarInfo, name: str, archive: str) -> str:
    link = info.linkname
    if not link or link.startswith("/"):
        raise InputError(f"link {name!r} in {archive} points outside the archive ({link!r})")
    base = posixpath.dirname(name) if info.issym() else ""
    joined = posixpath.normpath(posixpath.join(base, link))
    if joined == ".." or joined.startswith("../") or joined.startswith("/"):
        raise InputError(f"link {name!r} in {archive} points outside the archive ({link!r})")
    return joined


def member_of(info: tarfile.TarInfo, archive: str) -> Member:
    """Validate one header; InputError for unsafe names, links leaving the archive, special files."""
    name = safe_name(info.name, archive)
    if info.isdir():
        return Member(name, info.offset_data, 0, "dir")
    if info.issym() or info.islnk():
        return Member(name, info.offset_data, 0, "symlink" if info.issym() else "hardlink",
                      _link_target(info, name, archive))
    if info.isreg() and not info.issparse():
        return Member(name, info.offset_data, info.size, "file")
    raise InputError(f"unexpected member type for {name!r} in {archive}",
                     hint="only files, directories and links inside the archive are accepted")


def is_compressed_head(head: bytes) -> bool:
    """The first bytes of a file start with a gzip, bzip2, xz or zstd magic number."""
    return any(head.startswith(magic) for magic in _COMPRESSED_MAGIC)


def open_archive(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:")
    except FileNotFoundError:
        raise NotFoundError(f"archive not found: {path}") from None
    except (tarfile.TarError, OSError) as exc:
        raise InputError(f"not a readable tar archive: {path} ({exc})") from None


def scan(path: Path) -> dict[str, Member]:
    """Every member of an uncompressed tar by normalized name, without reading any member's data."""
    members: dict[str, Member] = {}
    with open_archive(path) as tar:
        try:
            for info in tar:
                _add(members, member_of(info, str(path)), str(path))
        except tarfile.TarError as exc:
            raise InputError(f"corrupt tar archive {path}: {exc}") from None
    return members


def _add(members: dict[str, Member], member: Member, archive: str) -> None:
    previous = members.get(member.name)
    if previous is not None and not (previous.kind == "dir" and member.kind == "dir"):
        raise InputError(f"duplicate member {member.name!r} in {archive}",
                         hint="an archive naming a file twice is ambiguous and is refused")
    members[member.name] = member


def resolve_link(members: dict[str, Member], name: str, archive: str) -> Member:
    """The regular-file member that name is (following links inside the archive, at most 16 hops)."""
    seen = 0
    member = members.get(name)
    while member is not None and member.kind in ("symlink", "hardlink"):
        seen += 1
        if seen > 16 or member.target is None:
            raise InputError(f"link loop at {name!r} in {archive}")
        member = members.get(member.target)
    if member is None or member.kind != "file":
        raise NotFoundError(f"{name!r} is missing from {archive}")
    return member


def stream_members(fileobj: ByteStream, archive: str) -> Iterator[tuple[Member, IO[bytes] | None]]:
    """Walk a tar read as a stream (compressed archive, Docker Engine export): each safe member with a file
    object for its data (None for links and dirs), valid only until the next member is requested."""
    seen: dict[str, Member] = {}
    try:
        # the stubs ask any fileobj for write/seek/tell/close too; stream mode reads only (ByteStream)
        with tarfile.open(fileobj=cast(IO[bytes], fileobj), mode="r|*") as tar:
            for info in tar:
                member = member_of(info, archive)
                _add(seen, member, archive)
                yield member, (tar.extractfile(info) if member.kind == "file" else None)
    except (tarfile.TarError, EOFError, zlib.error, TypeError) as exc:
        # TypeError: tarfile's gzip header reader calls ord() on the empty read of a truncated header
        raise InputError(f"corrupt or unsupported tar stream {archive}: {exc or type(exc).__name__}") from None
