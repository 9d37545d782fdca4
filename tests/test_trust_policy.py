"""Names bound to records, key roles and key retirement (not_after), through the real CLI and gate on a real
ledger: what an operator's policy promises must be what the gate enforces."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from notary import keys
from notary.ledger import open_ledger
from notary.notarize import notarize, revoke
from notary.sources.base import Subject
from tests.support.cli import Notary
from tests.support.images import layout_to_docker_archive
from tests.support.runtimes import GateWorld

DIGEST = "sha256:" + "ab" * 32


# ------------------------------------------------------------------------------------------------ names


def test_image_signed_for_one_repository_is_refused_under_another(tmp_path: Path) -> None:
    world = GateWorld(tmp_path / "world")
    world.notarize(Subject(DIGEST, "registry.example/prod/a:1", "oci-manifest"))
    assert world.gate_check(f"registry.example/prod/a@{DIGEST}").returncode == 0
    assert world.decisions()[-1]["name_matched"] == "registry.example/prod/a"
    result = world.gate_check(f"registry.example/prod/b@{DIGEST}")
    assert result.returncode == 1
    assert "not notarized under the name registry.example/prod/b" in result.stderr
    assert world.decisions()[-1]["status"] == "name-mismatch"


def test_name_binding_can_be_turned_off_explicitly(tmp_path: Path) -> None:
    world = GateWorld(tmp_path / "world")
    text = world.config.read_text().replace("[policy]\n", "[policy]\nrequire_name_match = false\n")
    world.config.write_text(text)
    world.notarize(Subject(DIGEST, "registry.example/prod/a:1", "oci-manifest"))
    assert world.gate_check(f"registry.example/prod/b@{DIGEST}").returncode == 0


def test_records_carry_repository_names_never_local_paths(tmp_path: Path, busybox_layout: Path) -> None:
    """The runner's workspace path must not reach the immutable ledger; the names it is published as must."""
    workspace = tmp_path / "builds" / "runner-7" / "ws"
    workspace.mkdir(parents=True)
    layout = busybox_layout.rename(workspace / "image")
    archive = layout_to_docker_archive(layout, "v1", workspace / "img.tar", "notary.test/team/busybox:v1")
    artifact = workspace / "app.bin"
    artifact.write_bytes(b"x")
    notary = Notary(tmp_path)
    key = notary.key()
    done = notary.run("--json", "notarize", f"oci:{layout}:v1", f"docker-archive:{archive}", str(artifact),
                      "--job-id", "j", "--key", str(key), "--name", "registry.example/team/busybox:1.0").json
    by_kind = {r["subject"]["kind"]: r["subject"] for r in done["records"]}
    assert by_kind["oci-manifest"]["names"] == ["registry.example/team/busybox"]
    assert by_kind["oci-manifest"]["name"] == "registry.example/team/busybox:1.0"
    assert by_kind["docker-image"]["names"] == ["notary.test/team/busybox", "registry.example/team/busybox"]
    assert by_kind["file"]["name"] == "app.bin" and "names" not in by_kind["file"]
    ledger = notary.ledger_path.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("ledger.db-wal"))
    assert b"runner-7" not in ledger and str(tmp_path).encode() not in ledger


def test_bad_name_flag_is_a_usage_error_and_nothing_is_written(tmp_path: Path) -> None:
    notary = Notary(tmp_path)
    key = notary.key()
    (tmp_path / "a.bin").write_bytes(b"a")
    result = notary.run("notarize", str(tmp_path / "a.bin"), "--job-id", "j", "--key", str(key),
                        "--name", "/builds/x", expect=2)
    assert "not an image reference" in result.err
    assert not notary.ledger_path.exists()


# ------------------------------------------------------------------------------------------------ roles


def _world_with_keys(tmp_path: Path, entries: str) -> GateWorld:
    world = GateWorld(tmp_path / "world")
    text = world.config.read_text().replace('keys = ["trusted.key.pub"]\n', f"keys = [{entries}]\n")
    world.config.write_text(text)
    return world


def test_revoke_only_key_cannot_admit(tmp_path: Path) -> None:
    world = _world_with_keys(tmp_path, '{ path = "trusted.key.pub", roles = ["revoke"] }')
    world.notarize(Subject(DIGEST, "registry.example/app:1", "oci-manifest"))
    result = world.gate_check(f"registry.example/app@{DIGEST}")
    assert result.returncode == 1 and "not notarized by any trusted key" in result.stderr


def test_revoke_only_key_still_revokes(tmp_path: Path) -> None:
    world = _world_with_keys(tmp_path, '"trusted.key.pub", { path = "untrusted.key.pub", roles = ["revoke"] }')
    world.notarize(Subject(DIGEST, "registry.example/app:1", "oci-manifest"))
    assert world.gate_check(f"registry.example/app@{DIGEST}").returncode == 0
    ledger = open_ledger(world.ledger_url, state_dir=world.client_state)
    try:
        revoke(ledger, DIGEST, world.untrusted, "security team: CVE-2026-5555")
    finally:
        ledger.close()
    result = world.gate_check(f"registry.example/app@{DIGEST}")
    assert result.returncode == 1 and "CVE-2026-5555" in result.stderr


def test_notarize_only_key_cannot_revoke(tmp_path: Path) -> None:
    world = _world_with_keys(tmp_path, '{ path = "trusted.key.pub", roles = ["notarize"] }')
    world.notarize(Subject(DIGEST, "registry.example/app:1", "oci-manifest"))
    world.revoke(DIGEST, "not allowed to")
    assert world.gate_check(f"registry.example/app@{DIGEST}").returncode == 0


def _write_at(world: GateWorld, subject: Subject, signer: keys.PrivateKey) -> datetime:
    ledger = open_ledger(world.ledger_url, state_dir=world.client_state)
    try:
        written = notarize(ledger, [subject], signer, {"system": "local", "jobId": "j"})
        assert written.receipt.time is not None
        return written.receipt.time
    finally:
        ledger.close()


def test_records_after_key_not_after_are_untrusted(tmp_path: Path) -> None:
    """A key retired at T: what it signed before T stays valid, anything in a later transaction does not,
    whatever issue time the record itself claims (the proven transaction time decides)."""
    world = GateWorld(tmp_path / "world")
    before, after = "sha256:" + "01" * 32, "sha256:" + "02" * 32
    first = _write_at(world, Subject(before, "registry.example/app:1", "oci-manifest"), world.trusted)
    cutoff = first + timedelta(milliseconds=500)
    time.sleep(1.0)
    _write_at(world, Subject(after, "registry.example/app:2", "oci-manifest"), world.trusted)
    stamp = cutoff.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    text = world.config.read_text().replace('keys = ["trusted.key.pub"]\n',
                                            f'keys = [{{ path = "trusted.key.pub", not_after = "{stamp}" }}]\n')
    world.config.write_text(text)
    assert world.gate_check(f"registry.example/app@{before}").returncode == 0
    result = world.gate_check(f"registry.example/app@{after}")
    assert result.returncode == 1 and "not notarized by any trusted key" in result.stderr


@pytest.mark.parametrize("entry, match", [
    ('{ path = "trusted.key.pub", roles = ["admin"] }', "unknown role"),
    ('{ path = "trusted.key.pub", roles = [] }', "roles must be a non-empty list"),
    ('{ path = "trusted.key.pub", not_after = "last tuesday" }', "not_after"),
    ('{ path = "trusted.key.pub", not_after = 2026-01-01T00:00:00 }', "no UTC offset"),
    ('{ path = "trusted.key.pub", expires = "2026-01-01T00:00:00Z" }', "unknown setting"),
    ('{ roles = ["revoke"] }', "path must name a public key file"),
])
def test_bad_key_entry_is_a_usage_error(tmp_path: Path, entry: str, match: str) -> None:
    world = _world_with_keys(tmp_path, entry)
    result = world.gate_check(DIGEST)
    assert result.returncode == 2, result.stderr
    assert match in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_reinstate_without_reason_writes_nothing(tmp_path: Path) -> None:
    notary = Notary(tmp_path)
    key = notary.key()
    (tmp_path / "a.bin").write_bytes(b"a")
    notary.run("notarize", str(tmp_path / "a.bin"), "--job-id", "j", "--key", str(key), "--reinstate", expect=2)
    assert not notary.ledger_path.exists() or sqlite3.connect(notary.ledger_path).execute(
        "SELECT count(*) FROM entries").fetchone()[0] == 0
