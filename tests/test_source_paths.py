"""Files and directories: digests recomputable from the documented encoding; links recorded, never followed."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from notary.errors import InputError, NotFoundError
from notary.sources import SourceOptions, identify, resolve


def independent_tree_digest(root: Path) -> str:
    """docs/subjects.md "Directory tree digest", written out again from the text, not from the code."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = os.fsencode(full.relative_to(root).as_posix())
            entries.append((rel, full))
    lines = []
    for rel, full in sorted(entries):
        def field(b: bytes) -> bytes:
            return str(len(b)).encode() + b":" + b
        if full.is_symlink():
            lines.append(b"l " + field(rel) + b" " + field(os.fsencode(os.readlink(full))))
        elif full.is_dir():
            lines.append(b"d " + field(rel))
        else:
            data = full.read_bytes()
            mode = b"x" if full.stat().st_mode & 0o111 else b"-"
            digest = b"sha256:" + hashlib.sha256(data).hexdigest().encode()
            lines.append(b"f " + field(rel) + b" " + mode + b" " + digest + b" " + str(len(data)).encode())
    return "sha256:" + hashlib.sha256(b"notary-tree-v1\n" + b"".join(line + b"\n" for line in lines)).hexdigest()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "bin").mkdir(parents=True)
    (root / "etc" / "empty").mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(os.urandom(3 << 20))
    (root / "bin" / "tool").chmod(0o755)
    (root / "etc" / "conf").write_text("a=1\n")
    (root / "name with\nnewline").write_text("odd")
    os.symlink("../etc/conf", root / "bin" / "conf-link")
    return root


def test_file_digest_is_sha256_of_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "artifact.bin"
    path.write_bytes(os.urandom(100_000))
    out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout
    [subject] = resolve(str(path))
    assert subject.kind == "file" and subject.digest == "sha256:" + out.split()[0]
    assert identify(str(path))[0].digest == subject.digest


def test_tree_digest_follows_the_documented_encoding(tree: Path) -> None:
    [subject] = resolve(str(tree))
    assert subject.kind == "directory"
    assert subject.digest == independent_tree_digest(tree)
    assert all(a.role == "file" for a in subject.artifacts)
    files = {a.name: a for a in subject.artifacts}
    assert set(files) == {"bin/tool", "etc/conf", "name with\nnewline"}
    assert files["etc/conf"].size == 4
    assert subject.extra["symlinks"] == {"bin/conf-link": "../etc/conf"}


def test_symlink_leaving_the_tree_is_recorded_but_never_read(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.write_text("first")
    os.symlink(str(outside), tree / "escape")
    before = resolve(str(tree))[0]
    outside.write_text("changed outside the tree")
    after = resolve(str(tree))[0]
    assert before.digest == after.digest
    assert before.extra["symlinks"]["escape"] == str(outside)
    assert all(a.name != "escape" for a in before.artifacts)


def test_executable_bit_content_and_names_change_the_digest(tree: Path) -> None:
    base = resolve(str(tree))[0].digest
    (tree / "etc" / "conf").chmod(0o755)
    exec_bit = resolve(str(tree))[0].digest
    (tree / "etc" / "conf").chmod(0o644)
    assert resolve(str(tree))[0].digest == base
    (tree / "etc" / "empty" / "new").write_text("")
    assert len({base, exec_bit, resolve(str(tree))[0].digest}) == 3


def test_parallel_and_serial_tree_digests_agree(tree: Path) -> None:
    for i in range(8):
        (tree / f"f{i}").write_bytes(os.urandom(1 << 20))
    serial = resolve(str(tree), options=SourceOptions(workers=1))[0]
    parallel = resolve(str(tree), options=SourceOptions(workers=2))[0]
    assert serial.digest == parallel.digest and serial.artifacts == parallel.artifacts


def test_special_files_are_refused(tree: Path) -> None:
    os.mkfifo(tree / "pipe")
    with pytest.raises(InputError, match="unsupported file type"):
        resolve(str(tree))


def test_missing_path_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        resolve(str(tmp_path / "absent"))
