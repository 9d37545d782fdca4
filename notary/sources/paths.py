"""Files and directories as subjects.

A file's identity is the SHA-256 of its bytes. A directory's identity is a tree digest over a canonical
listing (docs/subjects.md, "Directory tree digest", is the normative description, so anyone can recompute
it): sorted relative POSIX paths as bytes, entry type, the executable bit of files, file content digests
and sizes, and symlink targets verbatim. Symlinks are recorded, never followed, so a link pointing out of the
tree cannot pull outside content into the digest. Special files (fifos, sockets, devices) are refused.
"""

from __future__ import annotations

import hashlib
import os
import stat
from functools import partial
from pathlib import Path

from notary.digests import Digested, default_workers, hash_stream, run_parallel
from notary.errors import DigestMismatchError, InputError, NotFoundError
from notary.fsio import check_path_length, open_regular
from notary.sources.base import Artifact, Progress, SourceOptions, Subject
from notary.sources.spec import SubjectRef

TREE_HEADER = b"notary-tree-v1\n"
OCTET = "application/octet-stream"


def _field(data: bytes) -> bytes:
    """Length-prefixed field: names may hold any byte but '/' and NUL, even newlines."""
    return str(len(data)).encode() + b":" + data


def _text(name: bytes) -> str:
    """A file name as record text. Records are UTF-8 JSON, and os.fsdecode turns other bytes into lone
    surrogates that no encoder accepts; those bytes are shown as \\xNN instead. Only the listing uses this:
    the tree digest is computed over the raw bytes."""
    return name.decode("utf-8", "backslashreplace")


def hash_regular(path: str | os.PathLike[str], expected: str | None = None, size: int | None = None,
                 progress: Progress | None = None, *, name: str | None = None,
                 follow_symlinks: bool = True) -> Digested:
    """hash_file for a path that must still be a regular file when it is opened: a file swapped for a FIFO
    after it was listed would block the read forever, a device would never end."""
    label = name or os.fspath(path)
    with open_regular(path, label, follow_symlinks=follow_symlinks) as fh:
        if size is not None:
            actual = os.fstat(fh.fileno()).st_size
            if actual != size:
                raise DigestMismatchError(f"{label} is {actual} bytes, but {size} were declared")
        return hash_stream(fh, expected, size, progress, name=label)


def _walk(root: Path) -> list[tuple[bytes, str, os.stat_result, str]]:
    """(relative path bytes, type, lstat, absolute path) of everything under root, links not followed."""
    found: list[tuple[bytes, str, os.stat_result, str]] = []
    stack = [(os.fsencode(root), b"")]
    while stack:
        abs_dir, rel_dir = stack.pop()
        try:
            entries = list(os.scandir(abs_dir))
        except OSError as exc:
            raise InputError(f"cannot list {os.fsdecode(abs_dir)}: {exc.strerror or exc}") from None
        for entry in entries:
            rel = rel_dir + b"/" + entry.name if rel_dir else entry.name
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                kind = "symlink"
            elif stat.S_ISDIR(st.st_mode):
                kind = "dir"
                stack.append((entry.path, rel))
            elif stat.S_ISREG(st.st_mode):
                kind = "file"
            else:
                raise InputError(f"unsupported file type at {os.fsdecode(entry.path)}",
                                 hint="a notarized directory may hold only files, directories and symlinks")
            found.append((rel, kind, st, os.fsdecode(entry.path)))
    found.sort(key=lambda item: item[0])
    return found


def tree_digest(root: Path, *, workers: int | None = None,
                progress: Progress | None = None) -> tuple[str, list[Artifact], dict[str, str]]:
    """(tree digest, file artifacts in path order, symlinks path -> target) of directory root."""
    entries = _walk(root)
    files = [(rel, st, path) for rel, kind, st, path in entries if kind == "file"]
    if progress is not None:
        progress.add_total(sum(st.st_size for _, st, _ in files))
    tasks = [partial(hash_regular, path, None, st.st_size, progress, name=path, follow_symlinks=False)
             for _, st, path in files]
    results: list[Digested] = run_parallel(tasks, default_workers(workers))
    by_rel = {rel: res for (rel, _, _), res in zip(files, results, strict=True)}
    hasher = hashlib.sha256(TREE_HEADER)
    artifacts: list[Artifact] = []
    links: dict[str, str] = {}
    for rel, kind, st, path in entries:
        if kind == "dir":
            line = b"d " + _field(rel)
        elif kind == "symlink":
            target = os.readlink(os.fsencode(path))
            line = b"l " + _field(rel) + b" " + _field(target)
            links[_text(rel)] = _text(target)
        else:
            res = by_rel[rel]
            mode = b"x" if st.st_mode & 0o111 else b"-"
            line = b"f " + _field(rel) + b" " + mode + b" " + res.digest.encode() + b" " + str(res.size).encode()
            artifacts.append(Artifact(res.digest, res.size, OCTET, "file", name=_text(rel)))
        hasher.update(line + b"\n")
    return "sha256:" + hasher.hexdigest(), artifacts, links


def path_subjects(ref: SubjectRef, options: SourceOptions, progress: Progress | None) -> list[Subject]:
    assert ref.path is not None
    path = Path(ref.path)
    check_path_length(path, "subject")
    try:
        st = path.lstat()
    except FileNotFoundError:
        raise NotFoundError(f"no such file or directory: {ref.path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {ref.path}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        # the subject named by the user: follow this one link, but the tree below is never followed
        try:
            st = path.stat()
        except OSError as exc:
            raise InputError(f"cannot read {ref.path}: {exc.strerror or exc}") from None
    if stat.S_ISREG(st.st_mode):
        if progress is not None:
            progress.add_total(st.st_size)
        res = hash_regular(path, None, None, progress)
        return [Subject(res.digest, ref.path, "file", (Artifact(res.digest, res.size, OCTET, "file",
                                                                 name=path.name),))]
    if stat.S_ISDIR(st.st_mode):
        digest, artifacts, links = tree_digest(path, workers=options.workers, progress=progress)
        total = sum(a.size for a in artifacts)
        extra: dict[str, object] = {"files": len(artifacts), "bytes": total}
        if links:
            extra["symlinks"] = links
        return [Subject(digest, ref.path, "directory", tuple(artifacts), extra=extra)]
    raise InputError(f"{ref.path} is neither a regular file nor a directory")
