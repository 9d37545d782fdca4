"""Every input bounded: each attack that used to crash (a traceback and exit 1, which means "refused") or hang
is now one line and exit 2, with nothing written to the ledger. Real files, real FIFOs, real processes."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from notary.gate.oci_hook import HOOK_CODE
from tests.support.cli import Notary, Result
from tests.support.images import blob_path, layout_to_docker_archive, write_blob
from tests.support.runtimes import GateWorld, runc_bundle

DEEP = 100_000


@pytest.fixture
def notary(tmp_path: Path) -> Notary:
    n = Notary(tmp_path)
    n.key()
    return n


def _one_line(result: Result) -> str:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    return lines[0]


def _notarize_refused(notary: Notary, subject: str, expect: int = 2) -> str:
    result = notary.run("notarize", subject, "--job-id", "j", "--key", str(notary.root / "ci.key"), expect=expect)
    assert not notary.ledger_path.exists(), "bad input must not create or write the ledger"
    return _one_line(result)


def _edit_index(layout: Path, text: str) -> None:
    (layout / "index.json").write_text(text)


def _index_text(layout: Path) -> str:
    return (layout / "index.json").read_text()


# ---------------------------------------------------------------- JSON documents of an OCI layout


def test_deeply_nested_manifest_is_bad_input(notary: Notary, busybox_layout: Path) -> None:
    """A manifest whose bytes match its digest (so it gets parsed) but nest 100,000 deep."""
    index = json.loads(_index_text(busybox_layout))
    entry = index["manifests"][0]
    manifest = blob_path(busybox_layout, entry["digest"]).read_text().rstrip()
    deep = manifest[:-1] + ', "x": ' + "[" * DEEP + "]" * DEEP + "}"
    entry["digest"], entry["size"] = write_blob(busybox_layout, deep.encode())
    _edit_index(busybox_layout, json.dumps(index))
    line = _notarize_refused(notary, f"oci:{busybox_layout}:v1")
    assert "nested" in line and entry["digest"] in line


def test_deeply_nested_index_json_is_bad_input(notary: Notary, busybox_layout: Path) -> None:
    text = _index_text(busybox_layout).rstrip()
    _edit_index(busybox_layout, text[:-1] + ', "x": ' + "{\"a\":" * DEEP + "1" + "}" * DEEP + "}")
    assert "nested" in _notarize_refused(notary, f"oci:{busybox_layout}:v1")


def test_integer_over_4300_digits_in_index_json_is_bad_input(notary: Notary, busybox_layout: Path) -> None:
    index = json.loads(_index_text(busybox_layout))
    raw = json.dumps(index).replace(f'"size": {index["manifests"][0]["size"]}', '"size": ' + "7" * 5000)
    _edit_index(busybox_layout, raw)
    assert "integer of 5000 digits" in _notarize_refused(notary, f"oci:{busybox_layout}:v1")


def test_lone_surrogate_in_index_json_is_bad_input(notary: Notary, busybox_layout: Path) -> None:
    """A `\\ud800` escape decodes to a string no UTF-8 encoder accepts: it must never reach a record."""
    index = json.loads(_index_text(busybox_layout))
    index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] = "v1"
    index["manifests"][0]["annotations"]["org.opencontainers.image.title"] = "\ud800"
    _edit_index(busybox_layout, json.dumps(index))  # ensure_ascii writes the escape
    assert "surrogate" in _notarize_refused(notary, f"oci:{busybox_layout}:v1")


def test_duplicate_digest_key_in_index_json_is_bad_input(notary: Notary, busybox_layout: Path) -> None:
    """Two "digest" keys in one descriptor: parsers that keep the first and the last see two images."""
    index = json.loads(_index_text(busybox_layout))
    digest = index["manifests"][0]["digest"]
    raw = json.dumps(index).replace(f'"digest": "{digest}"', f'"digest": "sha256:{"0" * 64}", "digest": "{digest}"')
    _edit_index(busybox_layout, raw)
    assert "duplicate key 'digest'" in _notarize_refused(notary, f"oci:{busybox_layout}:v1")


def test_fifo_as_index_json_does_not_hang(notary: Notary, busybox_layout: Path) -> None:
    (busybox_layout / "index.json").unlink()
    os.mkfifo(busybox_layout / "index.json")
    assert "FIFO" in _notarize_refused(notary, f"oci:{busybox_layout}:v1")


# ---------------------------------------------------------------- paths and archives


@pytest.mark.parametrize("form", ["", "oci:", "docker-archive:", "oci-archive:"])
def test_subject_path_longer_than_name_max_is_bad_input(notary: Notary, form: str) -> None:
    line = _notarize_refused(notary, f"{form}{notary.root}/{'a' * 300}")
    assert "NAME_MAX" in line


def test_subject_path_longer_than_path_max_is_bad_input(notary: Notary) -> None:
    assert "PATH_MAX" in _notarize_refused(notary, str(notary.root) + "/a" * 2100)


def test_truncated_gzip_docker_archive_is_bad_input(notary: Notary, busybox_layout: Path, tmp_path: Path) -> None:
    archive = layout_to_docker_archive(busybox_layout, "v1", tmp_path / "image.tar", "notary.test/busybox:v1")
    packed = gzip.compress(archive.read_bytes())
    truncated = tmp_path / "image.tar.gz"
    truncated.write_bytes(packed[: len(packed) * 2 // 3])
    assert "truncated or corrupt" in _notarize_refused(notary, f"docker-archive:{truncated}")


def test_non_utf8_subject_is_a_usage_error(notary: Notary) -> None:
    """argv bytes that are not UTF-8 arrive as lone surrogates, which no record can hold."""
    result = notary.run("notarize", os.fsdecode(bytes(notary.root) + b"/\xff.bin"), "--job-id", "j", "--key",
                        str(notary.root / "ci.key"), expect=2)
    assert "not UTF-8" in _one_line(result)
    assert not notary.ledger_path.exists()


def test_non_utf8_file_name_inside_a_directory_is_recorded_escaped(notary: Notary) -> None:
    tree = notary.root / "tree"
    tree.mkdir()
    (Path(os.fsdecode(bytes(tree) + b"/caf\xe9.txt"))).write_bytes(b"x")
    result = notary.run("--json", "notarize", str(tree), "--job-id", "j", "--key", str(notary.root / "ci.key"))
    [record] = result.json["records"]
    assert [a["name"] for a in record["artifacts"]] == ["caf\\xe9.txt"]


def test_dev_zero_as_registry_credentials_file_is_refused(notary: Notary) -> None:
    result = notary.run("notarize", "registry://127.0.0.1:1/app:1", "--insecure", "--registry-auth", "/dev/zero",
                        "--job-id", "j", "--key", str(notary.root / "ci.key"), expect=2, timeout=20)
    assert "registry credentials file /dev/zero is a character device" in _one_line(result)


# ---------------------------------------------------------------- keys


def test_dev_zero_as_signing_key_is_refused(notary: Notary, busybox_layout: Path) -> None:
    """/dev/zero never ends: reading it whole would fill memory before any parse."""
    result = notary.run("notarize", f"oci:{busybox_layout}:v1", "--job-id", "j", "--key", "/dev/zero", expect=2,
                        timeout=20)
    assert "character device" in _one_line(result)
    assert not notary.ledger_path.exists()


def test_dev_zero_and_fifo_as_trusted_key_are_refused_at_once(notary: Notary, tmp_path: Path) -> None:
    fifo = tmp_path / "key.pub"
    os.mkfifo(fifo)
    for key, kind in (("/dev/zero", "character device"), (str(fifo), "FIFO")):
        start = time.monotonic()
        result = notary.run("verify", "sha256:" + "a" * 64, "--key", key, expect=2, timeout=20)
        assert kind in _one_line(result) and time.monotonic() - start < 15


# ---------------------------------------------------------------- notary.toml and the policy


def _gate_check(world: GateWorld) -> subprocess.CompletedProcess[str]:
    return world.gate_check("sha256:" + "a" * 64, "--name", "registry.example/app")


def test_dev_zero_as_policy_key_file_is_refused(tmp_path: Path) -> None:
    world = GateWorld(tmp_path / "world")
    world.config.write_text(world.config.read_text().replace('"trusted.key.pub"', '"/dev/zero"'))
    proc = _gate_check(world)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "/dev/zero is a character device" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_overflowing_max_age_is_a_usage_error(tmp_path: Path) -> None:
    world = GateWorld(tmp_path / "world", extra_policy="")
    text = world.config.read_text().replace("[policy]\n", '[policy]\nmax_age = "99999999999999999999d"\n')
    world.config.write_text(text)
    proc = _gate_check(world)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "max_age" in proc.stderr and "100 years" in proc.stderr and str(world.config) in proc.stderr


def test_zero_max_age_is_refused_in_a_policy_and_on_verify(tmp_path: Path, notary: Notary) -> None:
    """0 would refuse every notarization: a mistake in a policy, and on the command line indistinguishable from
    "no limit" (which is leaving the flag out). Both refuse to start, before any ledger is opened."""
    world = GateWorld(tmp_path / "world")
    world.config.write_text(world.config.read_text().replace("[policy]\n", '[policy]\nmax_age = "0s"\n'))
    proc = _gate_check(world)
    assert proc.returncode == 2 and "cannot be zero" in proc.stderr, proc.stderr
    result = notary.run("verify", "sha256:" + "a" * 64, "--key", str(notary.root / "ci.key.pub"),
                        "--max-age", "0s", expect=2)
    assert "--max-age cannot be zero" in _one_line(result)
    assert not notary.ledger_path.exists()


def test_numeric_state_dir_is_a_usage_error_and_creates_nothing(notary: Notary) -> None:
    config = notary.root / "notary.toml"
    config.write_text("state_dir = 5\n")
    before = sorted(p.name for p in notary.root.iterdir())
    env = {"NOTARY_STATE_DIR": ""}  # so the file's value is the one used
    result = notary.run("--config", str(config), "verify", "sha256:" + "a" * 64, "--key",
                        str(notary.root / "ci.key.pub"), expect=2, env=env)
    line = _one_line(result)
    assert "state_dir must be a non-empty string" in line and str(config) in line
    assert sorted(p.name for p in notary.root.iterdir()) == before, "nothing may be created (./5)"


def test_fifo_as_notary_toml_does_not_hang(notary: Notary) -> None:
    fifo = notary.root / "notary.toml"
    os.mkfifo(fifo)
    result = notary.run("--config", str(fifo), "verify", "sha256:" + "a" * 64, "--key",
                        str(notary.root / "ci.key.pub"), expect=2, timeout=20)
    assert "FIFO" in _one_line(result)


# ---------------------------------------------------------------- the OCI hook's inputs


def _run_hook(world: GateWorld, bundle: Path, state: dict | bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run the hook exactly as the runtime does: its definition's argv and env, the state on stdin."""
    spec = world.hook_spec()
    assert spec["args"][-1] == HOOK_CODE
    env = dict(item.split("=", 1) for item in spec["env"])
    body = state if isinstance(state, bytes) else json.dumps(
        state or {"ociVersion": "1.0.2", "id": "c1", "status": "creating", "pid": 1, "bundle": str(bundle)}).encode()
    proc = subprocess.run(spec["args"], env=env, input=body, capture_output=True, timeout=20, check=False)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def _refused_as_bad_input(world: GateWorld, proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    line = world.decisions()[-1]
    assert line["allowed"] is False and line["exit_code"] == 2
    return proc.stderr


def test_fifo_config_does_not_hang_the_hook(world: GateWorld, busybox_layout: Path, tmp_path: Path) -> None:
    """config.json swapped for a FIFO after the runtime read it: the hook used to block in open() until the
    runtime's hook timeout; now it refuses at once, and the refusal is logged."""
    bundle = runc_bundle(busybox_layout, "v1", tmp_path / "bundle", tmp_path / "trace", world.hook_spec())
    (bundle / "config.json").unlink()
    os.mkfifo(bundle / "config.json")
    start = time.monotonic()
    proc = _run_hook(world, bundle)
    assert time.monotonic() - start < 10
    assert "is a FIFO, not a regular file" in _refused_as_bad_input(world, proc)


def test_config_json_linked_to_dev_zero_is_refused_by_the_hook(world: GateWorld, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").symlink_to("/dev/zero")
    assert "symbolic link" in _refused_as_bad_input(world, _run_hook(world, bundle))


def test_deeply_nested_config_json_is_bad_input_for_the_hook(world: GateWorld, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text('{"annotations": ' + "[" * DEEP + "]" * DEEP + "}")
    assert "nested" in _refused_as_bad_input(world, _run_hook(world, bundle))


def test_huge_integer_in_the_hook_state_is_bad_input(world: GateWorld, tmp_path: Path) -> None:
    state = b'{"ociVersion": "1.0.2", "id": "c1", "pid": ' + b"9" * 5000 + b', "bundle": "/nonexistent"}'
    assert "integer of 5000 digits" in _refused_as_bad_input(world, _run_hook(world, tmp_path, state))


def test_bundle_rootfs_path_over_path_max_is_bad_input_for_the_hook(world: GateWorld, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"root": {"path": "/x" * 3000}}))
    assert "PATH_MAX" in _refused_as_bad_input(world, _run_hook(world, bundle))
