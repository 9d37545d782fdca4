"""Evidence bundles of an immudb ledger, exported from a real immudb and checked offline, then attacked: cut,
edited, re-signed and passed off the way a counterparty who holds the bundle (or the operator key) would.

The auditor has no ledger (a URL that does not exist), no state dir, no network to immudb: a pass must come
from the bundle, its signed checkpoint and the operator's vkey the auditor pinned.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from notary import keys
from notary.audit import note as notes
from notary.ledger.embedded import _map
from tests.support.cli import Result
from tests.support.immudb import ImmudbServer, fresh_immudb_url, immudb_user


class ImmudbAuditor:
    """The operator who notarizes and exports (holding the checkpoint key), and the auditor offline."""

    def __init__(self, server: ImmudbServer, tmp_path: Path) -> None:
        self.user = immudb_user(tmp_path / "ops", fresh_immudb_url(server))
        self.key = self.user.key("ci")
        self.pub = Path(f"{self.key}.pub")
        self.operator = self.user.key("checkpoint")
        self.vkey = self.user.run("ledger", "checkpoint", "--sign-key", str(self.operator), "--vkey").out.strip()
        self.offline_env = {"NOTARY_LEDGER": (tmp_path / "nowhere" / "none.db").as_uri(),
                            "NOTARY_STATE_DIR": str(tmp_path / "auditor-state"), "NOTARY_IMMUDB_PASSWORD": ""}
        self.tmp = tmp_path

    def export(self, subject: str, out: str = "bundle.json", *extra: str) -> Path:
        path = self.tmp / out
        self.user.run("evidence", "export", subject, "-o", str(path), "--key", str(self.pub), "--sign-key",
                      str(self.operator), *extra)
        return path

    def verify(self, bundle: Path, *extra: str, expect: int | None = 0, pin: bool = True) -> Result:
        args = ["--log-vkey", self.vkey] if pin else []
        result = self.user.run("evidence", "verify", str(bundle), "--key", str(self.pub), *args, *extra,
                               env=self.offline_env, expect=expect)
        assert "Traceback" not in result.err, result.err
        assert not (self.tmp / "nowhere").exists() and not (self.tmp / "auditor-state").exists()
        return result

    def tampered(self, bundle: Path, *words: str, extra: tuple[str, ...] = ()) -> str:
        result = self.verify(bundle, *extra, expect=3)
        assert len(result.err.strip().splitlines()) <= 2, result.err
        for word in words:
            assert word in result.err, result.err
        return result.err


def edit(path: Path, change: Any) -> Path:
    bundle = json.loads(path.read_text())
    change(bundle)
    path.write_text(json.dumps(bundle))
    return path


def flip_hex(value: str) -> str:
    return ("0" if value[0] != "0" else "1") + value[1:]


@pytest.fixture
def auditor(immudb_server: ImmudbServer, tmp_path: Path) -> ImmudbAuditor:
    return ImmudbAuditor(immudb_server, tmp_path)


@pytest.fixture
def revoked(auditor: ImmudbAuditor) -> Path:
    """A bundle of a revoked subject (two versions of its signer history: the record, then the revocation)."""
    artifact, digest = auditor.user.notarize_file(auditor.key, b"bad build\n")
    auditor.user.run("revoke", digest, "--reason", "CVE-2026-0002", "--key", str(auditor.key))
    return auditor.export(str(artifact))


def test_immudb_bundle_verifies_offline_as_the_ledger_decides(auditor: ImmudbAuditor) -> None:
    artifact, digest = auditor.user.notarize_file(auditor.key, b"release 1.0\n")
    auditor.user.notarize_file(auditor.key, b"another\n", name="other.bin", job_id="j2")
    bundle = auditor.export(str(artifact))
    data = json.loads(bundle.read_text())
    assert data["ledger"]["backend"] == "immudb" and data["ledger"]["ledger_id"].startswith("immudb:")
    assert data["head"]["checkpoint"].count("\n— ") == 1 and "notary-key-index " in data["head"]["checkpoint"]
    online = auditor.user.run("--json", "verify", digest, "--key", str(auditor.pub))
    offline = auditor.user.run("--json", "evidence", "verify", str(bundle), "--key", str(auditor.pub), "--log-vkey",
                               auditor.vkey, env=auditor.offline_env)
    assert online.json["allowed"] and offline.json["allowed"] and offline.json["pinned"]
    assert offline.json["decisions"][0]["digest"] == digest and "warning" not in offline.err
    assert offline.json["head"]["tx"] == data["head"]["tx"] == online.json["head"]["tx"]


def test_immudb_bundle_verifies_in_the_same_process_with_no_ledger(auditor: ImmudbAuditor) -> None:
    from notary.audit import evidence

    artifact, digest = auditor.user.notarize_file(auditor.key, b"release\n")
    replay = evidence.load(auditor.export(str(artifact)).read_bytes(), log_vkey=auditor.vkey)
    [decision] = evidence.decide(replay, [keys.load_public_key(auditor.pub)])
    assert decision.allowed and decision.digest == digest and replay.head.time is not None


def test_revoked_subject_is_refused_offline(auditor: ImmudbAuditor, revoked: Path) -> None:
    result = auditor.verify(revoked, expect=1)
    assert "revoked" in result.err and "CVE-2026-0002" in result.err


def test_not_notarized_subject_is_proven_absent_offline(auditor: ImmudbAuditor) -> None:
    auditor.user.notarize_file(auditor.key, b"something else\n")
    other = auditor.tmp / "never.bin"
    other.write_bytes(b"never notarized\n")
    bundle = auditor.export(str(other))
    assert json.loads(bundle.read_text())["absent"], "an answer of absent carries its proof"
    assert "not notarized" in auditor.verify(bundle, expect=1).err


def test_unpinned_immudb_bundle_warns_even_with_its_ledger_id(auditor: ImmudbAuditor, revoked: Path) -> None:
    ledger_id = json.loads(revoked.read_text())["ledger"]["ledger_id"]
    result = auditor.verify(revoked, "--ledger-id", ledger_id, pin=False, expect=1)
    assert "warning" in result.err and "--log-vkey" in result.err
    other = auditor.verify(revoked, "--ledger-id", "immudb:00000000-0000-0000-0000-000000000000/x", expect=3)
    assert "not immudb:0000" in other.err


def test_dropped_revocation_version_is_an_integrity_error(auditor: ImmudbAuditor, revoked: Path) -> None:
    longest = max(json.loads(revoked.read_text())["histories"].items(), key=lambda kv: len(kv[1]))[0]

    def drop_newest(b: dict[str, Any]) -> None:
        versions = b["histories"][longest]
        assert len(versions) >= 2
        newest = versions.pop()
        versions[-1]["key_index"] = newest["key_index"]  # the index proof moved along: it still names rev N

    auditor.tampered(edit(revoked, drop_newest), "versions are missing")


def test_revocation_passed_off_as_absent_is_an_integrity_error(auditor: ImmudbAuditor, revoked: Path) -> None:
    stray = auditor.tmp / "stray.bin"
    stray.write_bytes(b"never notarized\n")
    a_proof = next(iter(json.loads(auditor.export(str(stray), "stray.json").read_text())["absent"].values()))

    def hide(b: dict[str, Any]) -> None:
        key = next(k for k in b["histories"] if k.startswith("subject/"))
        b["histories"].pop(key)
        b["absent"][key] = a_proof

    auditor.tampered(edit(revoked, hide))


def test_cut_history_is_a_proof_error(auditor: ImmudbAuditor, revoked: Path) -> None:
    def cut(b: dict[str, Any]) -> None:
        b["histories"].pop(next(k for k in b["histories"] if k.startswith("subject/")))
    auditor.tampered(edit(revoked, cut), "leaves out")


def test_revocation_value_rewritten_is_an_integrity_error(auditor: ImmudbAuditor, revoked: Path) -> None:
    def rewrite(b: dict[str, Any]) -> None:
        item = max(b["histories"].values(), key=len)[-1]
        value = bytearray(base64.b64decode(item["value"]))
        value[len(value) // 2] ^= 1
        item["value"] = base64.b64encode(bytes(value)).decode()
    auditor.tampered(edit(revoked, rewrite), "not in that transaction")


@pytest.mark.parametrize("field", ["ts", "eh", "bl_root", "bl_tx", "prev_alh", "nentries", "alh_path"])
def test_edited_transaction_header_is_an_integrity_error(auditor: ImmudbAuditor, revoked: Path, field: str) -> None:
    def change(b: dict[str, Any]) -> None:
        tx = b["transactions"][str(b["head"]["tx"])]
        value = tx[field]
        tx[field] = (value + 1 if isinstance(value, int) else [flip_hex(value[0])] + value[1:]
                     if isinstance(value, list) else flip_hex(value))
    auditor.tampered(edit(revoked, change))


def test_version_moved_to_another_transaction_is_an_integrity_error(auditor: ImmudbAuditor, revoked: Path) -> None:
    def move(b: dict[str, Any]) -> None:
        item = max(b["histories"].values(), key=len)[0]
        item["tx"] = b["head"]["tx"]
    auditor.tampered(edit(revoked, move))


def test_checkpoint_resigned_by_a_forger_fails_the_pinned_operator_key(auditor: ImmudbAuditor, revoked: Path) -> None:
    forger = Ed25519PrivateKey.generate()

    def resign(b: dict[str, Any]) -> None:
        note = notes.parse_note(b["head"]["checkpoint"].encode())
        log = notes.verifier(notes.parse_checkpoint(note.text).origin, notes.ED25519, forger.public_key())
        b["head"]["checkpoint"] = notes.Note(note.text, (notes.Signature(log.name, log.key_id,
                                                                         forger.sign(note.text.encode())),)).encode().decode()
        b["ledger"]["log_vkey"] = log.vkey()
    auditor.tampered(edit(revoked, resign), "signature")


def test_key_index_root_edited_in_the_bundle_is_an_integrity_error(auditor: ImmudbAuditor, revoked: Path) -> None:
    def change(b: dict[str, Any]) -> None:
        text = b["head"]["checkpoint"]
        ext = text.split("notary-key-index ")[1].split("\n")[0]
        other = base64.b64encode(bytes(32)).decode()
        b["head"]["checkpoint"] = text.replace(ext, other)
    auditor.tampered(edit(revoked, change))


def _signed(auditor: ImmudbAuditor, text: str) -> str:
    signer = keys.load_private_key(auditor.operator)
    assert isinstance(signer, Ed25519PrivateKey)
    log = notes.parse_vkey(auditor.vkey)
    return notes.Note(text, (notes.Signature(log.name, log.key_id, signer.sign(text.encode())),)).encode().decode()


def test_operator_key_index_that_hides_a_revocation_is_a_split_view_at_audit(auditor: ImmudbAuditor,
                                                                             revoked: Path) -> None:
    """The operator key vouches for the key index as the ledger key does for an embedded one: its holder can
    sign a map that leaves a revocation out, and a bundle built on it passes offline. An auditor with a
    verified mirror recomputes the map (`audit checkpoint`), so such a checkpoint is a split view there."""
    cp = notes.parse_checkpoint(notes.parse_note(json.loads(revoked.read_text())["head"]["checkpoint"].encode()).text)
    wrong = _map.build([(bytes(32), bytes(_map.VALUE_SIZE))])
    lie = notes.Checkpoint(cp.origin, cp.size, cp.root, (notes.KEY_INDEX_EXTENSION + base64.b64encode(wrong).decode(),))
    path = auditor.tmp / "lie.cp"
    path.write_text(_signed(auditor, lie.text()))
    mirror = immudb_user(auditor.tmp / "watcher", auditor.user.ledger_url)
    result = mirror.run("audit", "checkpoint", str(path), "--log-vkey", auditor.vkey, expect=3)
    assert "split view of the key index" in result.err
    honest = auditor.tmp / "honest.cp"
    honest.write_text(json.loads(revoked.read_text())["head"]["checkpoint"])
    mirror.run("audit", "checkpoint", str(honest), "--log-vkey", auditor.vkey)


def test_older_checkpoint_swapped_in_leaves_the_bundles_transactions_outside(auditor: ImmudbAuditor) -> None:
    auditor.user.notarize_file(auditor.key, b"first\n", name="first.bin", job_id="j1")
    early = auditor.tmp / "early.cp"
    auditor.user.run("ledger", "checkpoint", "--sign-key", str(auditor.operator), "-o", str(early))
    artifact, _ = auditor.user.notarize_file(auditor.key, b"second\n", name="second.bin", job_id="j2")
    bundle = auditor.export(str(artifact))

    def swap(b: dict[str, Any]) -> None:
        b["head"]["checkpoint"] = early.read_text()
    auditor.tampered(edit(bundle, swap))


def test_immudb_bundle_extends_the_auditors_checkpoint_and_a_forged_proof_is_a_split_view(
        auditor: ImmudbAuditor) -> None:
    auditor.user.notarize_file(auditor.key, b"first\n", name="first.bin", job_id="j1")
    early = auditor.tmp / "early.cp"
    auditor.user.run("ledger", "checkpoint", "--sign-key", str(auditor.operator), "-o", str(early))
    artifact, _ = auditor.user.notarize_file(auditor.key, b"second\n", name="second.bin", job_id="j2")
    bundle = auditor.export(str(artifact), "anchored.json", "--checkpoint", str(early))
    ok = auditor.user.run("--json", "evidence", "verify", str(bundle), "--key", str(auditor.pub), "--checkpoint",
                          str(early), env=auditor.offline_env)
    assert ok.json["pinned"] and ok.json["checkpoint_size"] > 0 and "warning" not in ok.err

    plain = auditor.export(str(artifact), "plain.json")
    missing = auditor.verify(plain, "--checkpoint", str(early), expect=2)
    assert "no consistency proof" in missing.err

    def other_tree(b: dict[str, Any]) -> None:
        c = b["consistency"][0]
        c["root_hash"] = flip_hex(c["root_hash"])
    auditor.tampered(edit(bundle, other_tree), "split view", extra=("--checkpoint", str(early)))


def test_export_refuses_an_auditor_checkpoint_of_another_history(auditor: ImmudbAuditor) -> None:
    artifact, _ = auditor.user.notarize_file(auditor.key, b"first\n")
    cp = notes.parse_checkpoint(notes.parse_note(json.loads(auditor.export(str(artifact)).read_text())
                                                 ["head"]["checkpoint"].encode()).text)
    forged = notes.Checkpoint(cp.origin, cp.size, bytes(32), ())
    path = auditor.tmp / "forged.cp"
    path.write_text(_signed(auditor, forged.text()))
    result = auditor.user.run("evidence", "export", str(artifact), "-o", str(auditor.tmp / "b.json"), "--key",
                              str(auditor.pub), "--sign-key", str(auditor.operator), "--checkpoint", str(path),
                              expect=3)
    assert "split view" in result.err and not (auditor.tmp / "b.json").exists()


def test_immudb_export_needs_the_operator_key_and_embedded_refuses_one(auditor: ImmudbAuditor,
                                                                        revoked: Path) -> None:
    artifact = auditor.user.root / "app.bin"
    result = auditor.user.run("evidence", "export", str(artifact), "-o", str(auditor.tmp / "b.json"), "--key",
                              str(auditor.pub), expect=2)
    assert "--sign-key" in result.err and not (auditor.tmp / "b.json").exists()
    off = auditor.user.run("evidence", "export", str(artifact), "-o", str(auditor.tmp / "b.json"), "--key",
                           str(auditor.pub), "--sign-key", str(auditor.operator), env={"NOTARY_IMMUDB_MIRROR": "0"},
                           expect=2)
    assert "mirror" in off.err
    bad_pin = auditor.user.run("evidence", "verify", str(revoked), "--key", str(auditor.pub),
                               "--log-vkey", "not a vkey", env=auditor.offline_env, expect=None)
    assert bad_pin.code in (2, 3) and "Traceback" not in bad_pin.err and len(bad_pin.err.splitlines()) <= 2


def test_hostile_shapes_inside_an_immudb_bundle_are_exit_3(auditor: ImmudbAuditor, revoked: Path) -> None:
    original = revoked.read_text()
    changes = [
        lambda b: b.__setitem__("transactions", {"0": next(iter(b["transactions"].values()))}),
        lambda b: b.__setitem__("transactions", {"01": next(iter(b["transactions"].values()))}),
        lambda b: b["transactions"].__setitem__("999999", next(iter(b["transactions"].values()))),
        lambda b: next(iter(b["transactions"].values())).__setitem__("version", 7),
        lambda b: next(iter(b["transactions"].values())).__setitem__("eh", "zz"),
        lambda b: b["head"].__setitem__("checkpoint", "not a note"),
        lambda b: b["ledger"].__setitem__("ledger_id", 5),
        lambda b: next(iter(b["histories"].values()))[0].__setitem__("value", "!!"),
        lambda b: next(iter(b["histories"].values()))[0].__setitem__("entry_index", -1),
        lambda b: b.__setitem__("histories", {"../../x": []}),
    ]
    for change in changes:
        revoked.write_text(original)
        result = auditor.verify(edit(revoked, change), expect=3)
        assert len(result.err.strip().splitlines()) <= 2, result.err
    revoked.write_text(original)
    unpinned = auditor.verify(edit(revoked, lambda b: b["ledger"].__setitem__("log_vkey", 5)), pin=False, expect=3)
    assert "malformed" in unpinned.err


def test_bundle_without_the_proof_that_its_ledger_is_no_partition_member_is_refused(auditor: ImmudbAuditor,
                                                                                     revoked: Path) -> None:
    data = json.loads(revoked.read_text())
    assert "partition/layout" in data["absent"], "every immudb bundle proves its ledger holds no layout"
    auditor.tampered(edit(revoked, lambda b: b["absent"].pop("partition/layout")), "partitioned")
