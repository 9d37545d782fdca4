"""Attacks on the evidence, through the real CLI: each is exit 3 with one line, and trust does not move."""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import pytest

from notary import keys, records
from notary.ledger import open_ledger
from tests.support.cli import Notary, flip_envelope_byte
from tests.support.images import tamper_layer


@pytest.fixture
def notarized(tmp_path: Path) -> tuple[Notary, Path, Path]:
    notary = Notary(tmp_path)
    key = notary.key()
    artifact, _ = notary.notarize_file(key, b"the release\n")
    notary.run("verify", str(artifact), "--key", f"{key}.pub")
    return notary, key, artifact


def _assert_integrity_failure(result_err: str) -> None:
    lines = result_err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "integrity" in lines[0] or "rollback" in lines[0] or "proof" in lines[0] or "signature" in lines[0]


def test_edited_envelope_row_is_refused(notarized: tuple[Notary, Path, Path]) -> None:
    notary, key, artifact = notarized
    before = notary.trusted_state()
    assert flip_envelope_byte(notary.ledger_path) >= 1
    result = notary.run("verify", str(artifact), "--key", f"{key}.pub", expect=3)
    _assert_integrity_failure(result.err)
    assert notary.trusted_state() == before


def test_ledger_replaced_by_an_older_copy_is_refused(notarized: tuple[Notary, Path, Path], tmp_path: Path) -> None:
    notary, key, artifact = notarized
    old = tmp_path / "old"
    old.mkdir()
    for f in notary.root.glob("ledger.db*"):
        shutil.copy2(f, old / f.name)
    notary.run("revoke", str(artifact), "--reason", "compromised", "--key", str(key))
    notary.run("verify", str(artifact), "--key", f"{key}.pub", expect=1)
    before = notary.trusted_state()
    for f in notary.root.glob("ledger.db*"):
        f.unlink()
    for f in old.iterdir():
        shutil.copy2(f, notary.root / f.name)
    result = notary.run("verify", str(artifact), "--key", f"{key}.pub", expect=3)
    _assert_integrity_failure(result.err)
    assert notary.trusted_state() == before


def test_truncated_ledger_file_is_refused(notarized: tuple[Notary, Path, Path]) -> None:
    notary, key, artifact = notarized
    before = notary.trusted_state()
    data = notary.ledger_path.read_bytes()
    notary.ledger_path.write_bytes(data[: len(data) // 2])
    for f in notary.root.glob("ledger.db-*"):
        f.unlink()
    result = notary.run("verify", str(artifact), "--key", f"{key}.pub", expect=3)
    assert len(result.err.strip().splitlines()) == 1
    assert notary.trusted_state() == before


def test_forged_envelope_under_the_trusted_key_is_refused(notarized: tuple[Notary, Path, Path], tmp_path: Path) -> None:
    """Someone with write access to the ledger stores their own record under the trusted signer's key."""
    notary, key, _ = notarized
    trusted_id = keys.key_id(keys.load_private_key(key))
    attacker = keys.generate_private_key()
    evil = "sha256:" + "e" * 64
    record = records.new_record("notarization", {"digest": evil, "name": "evil", "kind": "file"}, attacker)
    ledger = open_ledger(notary.ledger_url, state_dir=tmp_path / "attacker-state")
    ledger.write({records.subject_key(evil, trusted_id): records.sign_record(record, attacker)})
    ledger.close()
    result = notary.run("verify", evil, "--key", f"{key}.pub", expect=3)
    assert "signed by" in result.err


@pytest.mark.parametrize("shape", ["envelope", "payload", "huge-int", "duplicate-key"])
def test_hostile_json_stored_as_an_envelope_is_an_integrity_error(
    notarized: tuple[Notary, Path, Path], tmp_path: Path, shape: str
) -> None:
    """A ledger writer stores JSON built to crash a parser (100,000 brackets, a 5,000-digit integer, a key
    twice) where an envelope belongs: verify says integrity failure in one line, never a traceback."""
    notary, key, _ = notarized
    kid = keys.key_id(keys.load_private_key(key))
    deep = b"[" * 100_000 + b"]" * 100_000
    head = b'{"payloadType":"' + records.PAYLOAD_TYPE.encode() + b'","signatures":[],'
    envelope = {
        "envelope": deep,
        "payload": head + b'"payload":"' + base64.b64encode(deep) + b'"}',
        "huge-int": head + b'"payload":"","n":' + b"9" * 5000 + b"}",
        "duplicate-key": head + b'"payload":"","payload":"e30="}',
    }[shape]
    evil = "sha256:" + "d" * 64
    ledger = open_ledger(notary.ledger_url, state_dir=tmp_path / "attacker-state")
    ledger.write({records.subject_key(evil, kid): envelope})
    ledger.close()
    result = notary.run("verify", evil, "--key", f"{key}.pub", expect=3)
    _assert_integrity_failure(result.err)
    assert "Traceback" not in result.err


def test_record_moved_under_another_subject_is_refused(notarized: tuple[Notary, Path, Path], tmp_path: Path) -> None:
    notary, key, artifact = notarized
    signer = keys.load_private_key(key)
    kid = keys.key_id(signer)
    ledger = open_ledger(notary.ledger_url, state_dir=tmp_path / "attacker-state")
    good = records.subject_key(records.check_digest(_digest(artifact)), kid)
    envelope = ledger.get(good).value  # type: ignore[union-attr]
    other = "sha256:" + "c" * 64
    ledger.write({records.subject_key(other, kid): envelope})
    ledger.close()
    notary.run("verify", other, "--key", f"{key}.pub", expect=3)


def test_replayed_old_notarization_does_not_undo_a_revocation(notarized: tuple[Notary, Path, Path], tmp_path: Path) -> None:
    notary, key, artifact = notarized
    kid = keys.key_id(keys.load_private_key(key))
    subject_key = records.subject_key(_digest(artifact), kid)
    old_envelope = open_ledger(notary.ledger_url, state_dir=tmp_path / "a").get(subject_key).value  # type: ignore[union-attr]
    notary.run("revoke", str(artifact), "--reason", "leaked", "--key", str(key))
    replay = open_ledger(notary.ledger_url, state_dir=tmp_path / "b")
    replay.write({subject_key: old_envelope})
    replay.close()
    result = notary.run("verify", str(artifact), "--key", f"{key}.pub", expect=1)
    assert "revoked" in result.err


def test_layer_not_matching_its_digest_is_exit_3_and_nothing_is_written(tmp_path: Path, busybox_layout: Path) -> None:
    notary = Notary(tmp_path)
    key = notary.key()
    tamper_layer(busybox_layout, "v1")
    result = notary.run("notarize", f"oci:{busybox_layout}:v1", "--job-id", "j", "--key", str(key), expect=3)
    assert len(result.err.strip().splitlines()) == 1
    assert not notary.ledger_path.exists() or open_ledger(notary.ledger_url).keys("") == []


def _digest(path: Path) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_deleted_revocation_is_found_by_ledger_audit(notarized: tuple[Notary, Path, Path]) -> None:
    """Per-read proofs cannot see a newest version deleted from the file; the full audit must."""
    import sqlite3

    notary, key, artifact = notarized
    notary.run("revoke", str(artifact), "--reason", "compromised", "--key", str(key))
    notary.run("notarize", str(notary.root / "ci.key.pub"), "--job-id", "later", "--key", str(key))
    notary.run("ledger", "audit")
    before = notary.run("--json", "history", str(artifact)).json["subjects"][0]["versions"]
    revocation_tx = [v["tx"] for v in before if v["status"] == "revoked"][0]
    con = sqlite3.connect(notary.ledger_path)  # schema: docs/proofs.md
    deleted = con.execute("DELETE FROM entries WHERE tx = ? AND key LIKE 'subject/%'", (revocation_tx,)).rowcount
    con.commit()
    con.close()
    # The attack works on a plain read: the revocation is simply gone ...
    notary.run("verify", str(artifact), "--key", f"{key}.pub", expect=None)
    assert deleted >= 1
    result = notary.run("ledger", "audit", expect=3)
    assert len(result.err.strip().splitlines()) == 1


def test_verify_reads_the_bytes_of_a_local_layout(tmp_path: Path, busybox_layout: Path) -> None:
    """Altered layer bytes after notarizing: verify of the layout is exit 3, like notarize; --identity-only
    (for callers that check blobs themselves) still answers from the identity alone."""
    notary = Notary(tmp_path)
    key = notary.key()
    notary.run("notarize", f"oci:{busybox_layout}:v1", "--job-id", "j", "--key", str(key))
    assert notary.run("--json", "verify", f"oci:{busybox_layout}:v1", "--key", f"{key}.pub").json["content_verified"]
    tamper_layer(busybox_layout, "v1")
    result = notary.run("verify", f"oci:{busybox_layout}:v1", "--key", f"{key}.pub", expect=3)
    assert "digest-mismatch" in result.err and len(result.err.strip().splitlines()) == 1
    notary.run("verify", f"oci:{busybox_layout}:v1", "--key", f"{key}.pub", "--identity-only")


def test_verify_reads_the_bytes_of_a_docker_archive(tmp_path: Path, busybox_layout: Path) -> None:
    import tarfile

    from tests.support.images import layout_to_docker_archive

    notary = Notary(tmp_path)
    key = notary.key()
    archive = layout_to_docker_archive(busybox_layout, "v1", tmp_path / "img.tar", "notary.test/bb:v1")
    notary.run("notarize", f"docker-archive:{archive}", "--job-id", "j", "--key", str(key))
    notary.run("verify", f"docker-archive:{archive}", "--key", f"{key}.pub")
    altered = tmp_path / "altered.tar"
    with tarfile.open(archive) as src, tarfile.open(altered, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if data is not None and member.size > 1000 and not member.name.endswith(".json"):
                data = data[:-1] + bytes([data[-1] ^ 1])  # one bit of one layer
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    result = notary.run("verify", f"docker-archive:{altered}", "--key", f"{key}.pub", expect=3)
    assert "digest-mismatch" in result.err and len(result.err.strip().splitlines()) == 1


def test_deeply_nested_job_index_value_is_reported_not_a_traceback(
    notarized: tuple[Notary, Path, Path], tmp_path: Path
) -> None:
    """Index values are finders: a hostile one is shown as an error entry, and lookup still answers."""
    notary, _, _ = notarized
    ledger = open_ledger(notary.ledger_url, state_dir=tmp_path / "attacker-state")
    ledger.write({records.job_key("local", "evil-job"): b"[" * 100_000 + b"]" * 100_000})
    ledger.close()
    result = notary.run("--json", "lookup", "--job-id", "evil-job", "--system", "local")
    [hit] = result.json["results"]
    assert "nested" in hit["error"]
    assert "Traceback" not in result.err


def test_deeply_nested_trusted_state_fails_closed_in_one_line(notarized: tuple[Notary, Path, Path]) -> None:
    notary, key, artifact = notarized
    for state in notary.state_dir.glob("*.json"):
        state.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    result = notary.run("verify", str(artifact), "--key", f"{key}.pub", expect=3)
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert "corrupt" in result.err


@pytest.mark.parametrize("value", [b"[1]", b'"text"', b'{"subjects": 7}', b'{"subjects": [{"name": "x"}]}'])
def test_misshapen_job_index_value_is_reported_not_a_traceback(
    notarized: tuple[Notary, Path, Path], tmp_path: Path, value: bytes
) -> None:
    notary, _, _ = notarized
    ledger = open_ledger(notary.ledger_url, state_dir=tmp_path / "attacker-state")
    ledger.write({records.job_key("local", "evil-job"): value})
    ledger.close()
    result = notary.run("lookup", "--job-id", "evil-job", "--system", "local")
    assert "Traceback" not in result.err


def test_index_value_cannot_restate_its_own_transaction(notarized: tuple[Notary, Path, Path], tmp_path: Path) -> None:
    """The listing's tx and key are the proven ones, whatever the value claims."""
    notary, _, _ = notarized
    ledger = open_ledger(notary.ledger_url, state_dir=tmp_path / "attacker-state")
    ledger.write({records.job_key("local", "evil-job"): b'{"tx": 1, "key": "job/other", "subjects": []}'})
    ledger.close()
    [hit] = notary.run("--json", "lookup", "--job-id", "evil-job", "--system", "local").json["results"]
    assert hit["key"] == records.job_key("local", "evil-job")
    assert hit["tx"] > 1
