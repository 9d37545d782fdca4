"""Revocation an operator can rely on: it reaches every identity a trusted record ties to the revoked digest,
and it sticks until an explicit, reasoned reinstatement. Through the real CLI on a real ledger."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from notary import keys, records
from notary.ledger import open_ledger
from notary.notarize import notarization_writes
from notary.sources.base import Subject
from tests.support.cli import Notary
from tests.support.images import layout_to_docker_archive
from tests.support.runtimes import GateWorld


@pytest.fixture
def notary(tmp_path: Path) -> Notary:
    return Notary(tmp_path)


def _notarize(notary: Notary, key: Path, *subjects: str, expect: int = 0, extra: tuple[str, ...] = ()) -> dict:
    result = notary.run("--json", "notarize", *subjects, "--job-id", "j", "--key", str(key), *extra, expect=expect)
    return result.json if expect == 0 else {}


def _by_kind(done: dict, kind: str) -> list[dict]:
    return [r["subject"] for r in done["records"] if r["subject"]["kind"] == kind]


def test_revoked_index_refuses_its_platform_manifests(notary: Notary, multiarch_layout: Path) -> None:
    key = notary.key()
    done = _notarize(notary, key, f"oci:{multiarch_layout}:multi")
    [index] = _by_kind(done, "oci-index")
    manifests = _by_kind(done, "oci-manifest")
    for m in manifests:
        notary.run("verify", m["digest"], "--key", f"{key}.pub")
    notary.run("revoke", index["digest"], "--reason", "CVE-2026-1111", "--key", str(key))
    for m in manifests:
        result = notary.run("--json", "verify", m["digest"], "--key", f"{key}.pub", expect=1)
        [decision] = result.json["decisions"]
        assert decision["revocation"]["relation"] == "its index"
        assert decision["revocation"]["digest"] == index["digest"]
        assert decision["revocation"]["reason"] == "CVE-2026-1111"
        assert "its index" in result.err and "CVE-2026-1111" in result.err


def test_revoked_platform_manifest_refuses_the_index(notary: Notary, multiarch_layout: Path) -> None:
    """A verifier that does not know the platform refuses the whole index (the safe side)."""
    key = notary.key()
    done = _notarize(notary, key, f"oci:{multiarch_layout}:multi")
    [index] = _by_kind(done, "oci-index")
    victim, other = _by_kind(done, "oci-manifest")
    notary.run("revoke", victim["digest"], "--reason", "bad arm build", "--key", str(key))
    result = notary.run("--json", "verify", index["digest"], "--key", f"{key}.pub", expect=1)
    relation = result.json["decisions"][0]["revocation"]["relation"]
    assert relation == f"its {victim['platform']} manifest"
    notary.run("verify", other["digest"], "--key", f"{key}.pub")  # the other platform is still fine


def test_revoked_image_id_refuses_the_manifest_naming_it(notary: Notary, busybox_layout: Path,
                                                         tmp_path: Path) -> None:
    """Revoking a `docker save` archive (identity: the image id) refuses the OCI manifest of the same image."""
    key = notary.key()
    archive = layout_to_docker_archive(busybox_layout, "v1", tmp_path / "img.tar", "notary.test/busybox:v1")
    done = _notarize(notary, key, f"oci:{busybox_layout}:v1", f"docker-archive:{archive}")
    [manifest] = _by_kind(done, "oci-manifest")
    [image] = _by_kind(done, "docker-image")
    assert manifest["imageId"] == image["digest"]
    notary.run("verify", f"oci:{busybox_layout}:v1", "--key", f"{key}.pub")
    notary.run("revoke", f"docker-archive:{archive}", "--reason", "CVE-2026-2222", "--key", str(key))
    result = notary.run("--json", "verify", f"oci:{busybox_layout}:v1", "--key", f"{key}.pub", expect=1)
    revocation = result.json["decisions"][0]["revocation"]
    assert (revocation["relation"], revocation["digest"]) == ("its image id", image["digest"])


def test_revoked_image_id_refuses_the_gate_too(tmp_path: Path) -> None:
    world = GateWorld(tmp_path / "world")
    manifest, config = "sha256:" + "ab" * 32, "sha256:" + "cd" * 32
    world.notarize(Subject(manifest, "registry.example/app:1", "oci-manifest", image_id=config))
    assert world.gate_check(manifest).returncode == 0
    world.revoke(config, "CVE-2026-3333")
    result = world.gate_check(manifest)
    assert result.returncode == 1 and "its image id" in result.stderr and "CVE-2026-3333" in result.stderr
    line = world.decisions()[-1]
    assert line["revocation"]["digest"] == config and line["revocation"]["relation"] == "its image id"


def _entries(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return int(con.execute("SELECT count(*) FROM entries").fetchone()[0])


def test_renotarizing_a_revoked_digest_is_refused(notary: Notary, tmp_path: Path) -> None:
    key = notary.key()
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"release 1\n")
    _notarize(notary, key, str(artifact))
    notary.run("revoke", str(artifact), "--reason", "CVE-2026-4444", "--key", str(key))
    before = _entries(notary.ledger_path)

    result = notary.run("notarize", str(artifact), "--job-id", "rerun", "--key", str(key), expect=1)
    assert "was revoked by this signer" in result.err and "CVE-2026-4444" in result.err and "--reinstate" in result.err
    assert _entries(notary.ledger_path) == before
    notary.run("verify", str(artifact), "--key", f"{key}.pub", expect=1)

    notary.run("notarize", str(artifact), "--job-id", "r", "--key", str(key), "--reinstate", expect=2)
    notary.run("notarize", str(artifact), "--job-id", "r", "--key", str(key), "--reason", "x", expect=2)
    assert _entries(notary.ledger_path) == before

    done = _notarize(notary, key, str(artifact), extra=("--reinstate", "--reason", "false positive, INC-9"))
    assert done["records"][0]["type"] == "reinstatement"
    result = notary.run("verify", str(artifact), "--key", f"{key}.pub")
    assert "reinstated: false positive, INC-9" in result.out
    versions = notary.run("--json", "history", str(artifact)).json["subjects"][0]["versions"]
    assert [v["status"] for v in versions] == ["notarized", "revoked", "reinstated"]
    assert versions[-1]["reason"] == "false positive, INC-9"


def test_plain_notarization_after_a_revocation_does_not_lift_it(tmp_path: Path) -> None:
    """A writer that skips the CLI's check (an older notary, a script) still cannot undo a revocation."""
    ledger = open_ledger((tmp_path / "l.db").as_uri(), state_dir=tmp_path / "state")
    signer = keys.generate_private_key()
    digest = "sha256:" + "ef" * 32
    subject = Subject(digest, "app", "file")
    try:
        ledger.write(notarization_writes([subject], signer, {"system": "local", "jobId": "1"})[0])
        revocation = records.new_record("revocation", {"digest": digest}, signer, reason="CVE")
        ledger.write({records.subject_key(digest, keys.key_id(signer)): records.sign_record(revocation, signer)})
        import time

        time.sleep(1.1)  # a strictly later notarization
        ledger.write(notarization_writes([subject], signer, {"system": "local", "jobId": "2"})[0])
        from notary.verify import verify_digest

        decision = verify_digest(ledger, digest, [signer.public_key()])
        assert decision.status == "revoked" and not decision.allowed
    finally:
        ledger.close()


def test_replayed_reinstatement_cannot_lift_a_later_revocation(tmp_path: Path) -> None:
    """Someone who can write the file (no key) re-appends an old reinstatement envelope after a revocation."""
    from notary.verify import verify_digest

    ledger = open_ledger((tmp_path / "l.db").as_uri(), state_dir=tmp_path / "state")
    signer = keys.generate_private_key()
    digest = "sha256:" + "12" * 32
    key = records.subject_key(digest, keys.key_id(signer))
    try:
        from datetime import timedelta

        now = records.utc_now()
        steps = [("notarization", None, now - timedelta(seconds=30)), ("revocation", "one", now - timedelta(seconds=20)),
                 ("reinstatement", "fixed", now - timedelta(seconds=10)), ("revocation", "two", now)]
        envelopes = []
        for rtype, reason, at in steps:
            record = records.new_record(rtype, {"digest": digest}, signer, reason=reason, issued_at=at)
            envelopes.append(records.sign_record(record, signer))
            ledger.write({key: envelopes[-1]})
        assert verify_digest(ledger, digest, [signer.public_key()]).status == "revoked"
        ledger.write({key: envelopes[2]})  # the replay
        decision = verify_digest(ledger, digest, [signer.public_key()])
        assert decision.status == "revoked" and "two" in decision.reason
    finally:
        ledger.close()


def test_reinstatement_record_needs_a_reason() -> None:
    signer = keys.generate_private_key()
    record = records.new_record("reinstatement", {"digest": "sha256:" + "0" * 64}, signer, reason=" ")
    with pytest.raises(Exception, match="without a reason"):
        records.open_envelope(records.sign_record(record, signer))
    assert json.loads(records.sign_record(record, signer))  # signing works; opening refuses


def test_notarizing_a_layout_whose_image_id_was_revoked_is_refused(notary: Notary, busybox_layout: Path,
                                                                    tmp_path: Path) -> None:
    """The CI step must not report success for an image the gate will refuse: a revoked image id (revoked by
    `docker save` archive) sticks to the OCI layout of the same image, across identities."""
    key = notary.key()
    archive = layout_to_docker_archive(busybox_layout, "v1", tmp_path / "img.tar", "notary.test/busybox:v1")
    _notarize(notary, key, f"docker-archive:{archive}")
    notary.run("revoke", f"docker-archive:{archive}", "--reason", "CVE-2026-5555", "--key", str(key))
    before = _entries(notary.ledger_path)

    result = notary.run("notarize", f"oci:{busybox_layout}:v1", "--job-id", "again", "--key", str(key), expect=1)
    assert "its image id" in result.err and "CVE-2026-5555" in result.err and "--reinstate" in result.err
    assert _entries(notary.ledger_path) == before
    notary.run("verify", f"oci:{busybox_layout}:v1", "--key", f"{key}.pub", expect=1)

    done = _notarize(notary, key, f"oci:{busybox_layout}:v1", extra=("--reinstate", "--reason", "rebuilt, INC-7"))
    kinds = sorted((r["type"], r["subject"].get("kind")) for r in done["records"])
    assert kinds == [("notarization", "oci-manifest"), ("reinstatement", "docker-image")]
    notary.run("verify", f"oci:{busybox_layout}:v1", "--key", f"{key}.pub")
    notary.run("verify", f"docker-archive:{archive}", "--key", f"{key}.pub")


def test_notarizing_a_manifest_of_a_revoked_index_is_refused(notary: Notary, multiarch_layout: Path) -> None:
    """The tie runs the other way too: the ledger's artifact index names the revoked index holding it."""
    key = notary.key()
    done = _notarize(notary, key, f"oci:{multiarch_layout}:multi")
    [index] = _by_kind(done, "oci-index")
    victim = _by_kind(done, "oci-manifest")[0]
    notary.run("revoke", index["digest"], "--reason", "CVE-2026-6666", "--key", str(key))
    layout_ref = f"oci:{multiarch_layout}@{victim['digest']}"
    result = notary.run("notarize", layout_ref, "--job-id", "again", "--key", str(key), expect=1)
    assert "its index" in result.err and "CVE-2026-6666" in result.err


def test_another_signers_tied_revocation_does_not_block_this_signer(notary: Notary, busybox_layout: Path,
                                                                     tmp_path: Path) -> None:
    """Only the signer's own word is its to lift: another key's revocation is that key's verifiers' business."""
    key, other = notary.key("ci"), notary.key("other")
    archive = layout_to_docker_archive(busybox_layout, "v1", tmp_path / "img.tar", "notary.test/busybox:v1")
    _notarize(notary, other, f"docker-archive:{archive}")
    notary.run("revoke", f"docker-archive:{archive}", "--reason", "theirs", "--key", str(other))
    _notarize(notary, key, f"oci:{busybox_layout}:v1")
