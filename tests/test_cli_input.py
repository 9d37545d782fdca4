"""Bad input from outside: exit 2 with a clear line, and never a write to the ledger."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.support.cli import Notary
from tests.support.images import blob_path, manifest_of


@pytest.fixture
def notary(tmp_path: Path) -> Notary:
    n = Notary(tmp_path)
    n.key()
    return n


def _notarize(notary: Notary, subject: str, expect: int = 2) -> str:
    result = notary.run("notarize", subject, "--job-id", "j", "--key", str(notary.root / "ci.key"), expect=expect)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    assert not notary.ledger_path.exists(), "bad input must not create or write the ledger"
    return lines[0]


def test_malformed_index_json(notary: Notary, busybox_layout: Path) -> None:
    (busybox_layout / "index.json").write_text("{ not json")
    assert "index.json" in _notarize(notary, f"oci:{busybox_layout}:v1")


def test_malformed_manifest_json(notary: Notary, busybox_layout: Path) -> None:
    digest, _ = manifest_of(busybox_layout, "v1")
    path = blob_path(busybox_layout, digest)
    path.chmod(0o644)
    path.write_text("[]")
    # the manifest no longer matches its digest: an integrity failure, found before any parse
    notary.run("notarize", f"oci:{busybox_layout}:v1", "--job-id", "j", "--key", str(notary.root / "ci.key"), expect=3)
    assert not notary.ledger_path.exists()


def test_missing_blob(notary: Notary, busybox_layout: Path) -> None:
    _, manifest = manifest_of(busybox_layout, "v1")
    blob_path(busybox_layout, manifest["layers"][0]["digest"]).unlink()
    assert "missing" in _notarize(notary, f"oci:{busybox_layout}:v1").lower()


def test_unknown_digest_algorithm(notary: Notary, busybox_layout: Path) -> None:
    index = json.loads((busybox_layout / "index.json").read_text())
    index["manifests"][0]["digest"] = "sha512:" + "a" * 128
    (busybox_layout / "index.json").write_text(json.dumps(index))
    assert "sha512" in _notarize(notary, f"oci:{busybox_layout}:v1")


def _tar_with(path: Path, name: str, data: bytes = b"x", linkname: str | None = None) -> Path:
    with tarfile.open(path, "w") as tar:
        manifest = json.dumps([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": [name]}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        member = tarfile.TarInfo(name)
        if linkname is not None:
            member.type = tarfile.SYMTYPE
            member.linkname = linkname
            tar.addfile(member)
        else:
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name,link", [("../escape.tar", None), ("/etc/evil.tar", None), ("layer.tar", "../../etc/passwd"),
                                       ("layer.tar", "/etc/passwd")])
def test_archive_member_escaping_the_tree_is_refused(notary: Notary, tmp_path: Path, name: str, link: str | None) -> None:
    archive = _tar_with(tmp_path / "evil.tar", name, linkname=link)
    _notarize(notary, f"docker-archive:{archive}")


def test_garbage_archive_is_refused(notary: Notary, tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"\x00not a tar at all" * 100)
    _notarize(notary, f"docker-archive:{bad}")


def test_nonexistent_subject_path(notary: Notary) -> None:
    _notarize(notary, "/nonexistent/artifact.bin")


def test_unknown_subject_scheme(notary: Notary) -> None:
    _notarize(notary, "ftp://example/thing")


def test_plain_http_registry_off_loopback_is_refused(notary: Notary) -> None:
    result = notary.run("notarize", "registry://registry.invalid:5000/app:1", "--insecure", "--job-id", "j",
                        "--key", str(notary.root / "ci.key"), expect=2)
    assert "loopback" in result.err


def test_read_commands_do_not_create_a_missing_ledger(notary: Notary) -> None:
    result = notary.run("history", "sha256:" + "a" * 64, expect=4)
    assert not notary.ledger_path.exists()
    assert len(result.err.strip().splitlines()) == 1
