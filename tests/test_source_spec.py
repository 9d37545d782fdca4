"""SUBJECT parsing: every documented form, colons in paths, and clear usage errors for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from notary.errors import InputError, UsageError
from notary.sources import parse_subject

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("spec", "path", "tag", "digest"),
    [
        ("oci:/a/b", "/a/b", None, None),
        ("oci:/a/b:v1", "/a/b", "v1", None),
        ("oci:/a:b/c", "/a:b/c", None, None),
        ("oci:/a:b/c:v2.1-x", "/a:b/c", "v2.1-x", None),
        (f"oci:/a/b@{D}", "/a/b", None, D),
        (f"oci:/a:x/b@{D}", "/a:x/b", None, D),
        ("oci:layout:v1", "layout", "v1", None),
        ("oci:/tmp/a@b/c", "/tmp/a@b/c", None, None),
    ],
)
def test_oci_specs_split_tag_after_last_slash_and_digest_first(spec: str, path: str, tag: str | None,
                                                                digest: str | None) -> None:
    ref = parse_subject(spec)
    assert (ref.kind, ref.path, ref.tag, ref.digest) == ("oci", path, tag, digest)


def test_layout_directory_with_a_colon_in_its_name_is_not_split(tmp_path: Path) -> None:
    layout = tmp_path / "build:out"
    layout.mkdir()
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    assert parse_subject(f"oci:{layout}").path == str(layout)


@pytest.mark.parametrize(
    ("spec", "host", "repo", "tag", "digest"),
    [
        ("registry://127.0.0.1:5000/app:1.0", "127.0.0.1:5000", "app", "1.0", None),
        ("registry://reg.example/team/app@" + D, "reg.example", "team/app", None, D),
        ("registry://reg.example/a/b/c:t@" + D, "reg.example", "a/b/c", "t", D),
        ("registry://[::1]:5000/app:x", "[::1]:5000", "app", "x", None),
    ],
)
def test_registry_specs(spec: str, host: str, repo: str, tag: str | None, digest: str | None) -> None:
    ref = parse_subject(spec)
    assert (ref.kind, ref.host, ref.repository, ref.tag, ref.digest) == ("registry", host, repo, tag, digest)


@pytest.mark.parametrize(
    "spec",
    ["registry://reg.example/app", "registry://reg.example", "registry://reg.example/App:1",
     "registry://reg..example:/x:1", "registry://reg.example/app:bad/tag", "registry://h:99999/app:1",
     "oci:", "oci:/a/b:", "oci:/a/b:-x", "docker-archive:", "docker-daemon:", "docker-daemon:a b",
     "", " /tmp", "ftp://host/x", "nosuchscheme:thing"],
)
def test_bad_specs_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_subject(spec)
    assert err.value.exit_code == 2


@pytest.mark.parametrize("spec", ["oci:/a@sha512:" + "a" * 128, "registry://h/app@sha256:xyz",
                                  "sha512:" + "a" * 128])
def test_bad_digests_in_specs_are_bad_input(spec: str) -> None:
    with pytest.raises(InputError):
        parse_subject(spec)


def test_bare_digest_docker_forms_and_paths(tmp_path: Path) -> None:
    assert parse_subject(D).kind == "digest" and parse_subject(D).digest == D
    assert parse_subject("docker-archive:/x/img.tar").path == "/x/img.tar"
    assert parse_subject("docker-daemon:reg:5000/app:1").name == "reg:5000/app:1"
    odd = tmp_path / "we:ird"
    odd.write_text("x")
    assert parse_subject(str(odd)).kind == "path"
    assert parse_subject("relative/file.txt").kind == "path"


def test_docker_archive_with_image_name_selects_one_image(tmp_path: Path) -> None:
    archive = tmp_path / "multi.tar"
    archive.write_bytes(b"")
    ref = parse_subject(f"docker-archive:{archive}:busybox:v1")
    assert (ref.path, ref.name) == (str(archive), "busybox:v1")
