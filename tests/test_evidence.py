"""Evidence bundles, attacked the way an auditor's counterparty would: cut, edited, swapped and replayed.

Every bundle is exported by the real CLI from a real embedded ledger and checked by the real CLI with no
ledger (a URL that does not exist) and a state dir that does not exist: a pass must come from the bundle.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from notary.audit import evidence
from tests.support.cli import Notary, Result
from tests.support.immudb import ImmudbServer, fresh_immudb_url


class Auditor:
    """The user who exports, and the auditor who checks offline: no ledger, no state, only the files."""

    def __init__(self, tmp_path: Path) -> None:
        self.user = Notary(tmp_path)
        self.key = self.user.key("ci")
        self.pub = Path(f"{self.key}.pub")
        self.offline_env = {"NOTARY_LEDGER": (tmp_path / "nowhere" / "none.db").as_uri(),
                            "NOTARY_STATE_DIR": str(tmp_path / "auditor-state")}
        self.tmp = tmp_path

    def export(self, subject: str, out: str = "bundle.json", *extra: str, keys: tuple[Path, ...] = ()) -> Path:
        path = self.tmp / out
        args = [a for k in (keys or (self.pub,)) for a in ("--key", str(k))]
        self.user.run("evidence", "export", subject, "-o", str(path), *args, *extra)
        return path

    def ledger_id(self) -> str:
        return str(self.user.run("--json", "ledger", "info").json["ledger_id"])

    def verify(self, bundle: Path, *extra: str, expect: int | None = 0, key: Path | None = None,
               pin: bool = True) -> Result:
        args = ["--ledger-id", self.ledger_id()] if pin else []
        result = self.user.run("evidence", "verify", str(bundle), "--key", str(key or self.pub), *args, *extra,
                               env=self.offline_env, expect=expect)
        assert "Traceback" not in result.err, result.err
        assert not (self.tmp / "nowhere").exists() and not (self.tmp / "auditor-state").exists()
        return result


def edit(path: Path, change: Any) -> Path:
    bundle = json.loads(path.read_text())
    change(bundle)
    path.write_text(json.dumps(bundle))
    return path


def refused_as_tampered(a: Auditor, bundle: Path, *words: str) -> str:
    result = a.verify(bundle, expect=3)
    assert len(result.err.strip().splitlines()) <= 2, result.err  # one line, perhaps with its hint
    for word in words:
        assert word in result.err, result.err
    return result.err


@pytest.fixture
def auditor(tmp_path: Path) -> Auditor:
    return Auditor(tmp_path)


@pytest.fixture
def trusted(auditor: Auditor) -> tuple[Path, str]:
    """A notarized file and its bundle."""
    artifact, digest = auditor.user.notarize_file(auditor.key, b"release 1.0\n")
    return auditor.export(str(artifact)), digest


def test_bundle_verifies_offline_as_the_ledger_decides(auditor: Auditor, trusted: tuple[Path, str]) -> None:
    bundle, digest = trusted
    online = auditor.user.run("--json", "verify", f"sha256:{digest.split(':')[1]}", "--key", str(auditor.pub))
    offline = auditor.verify(bundle)
    assert "trusted" in offline.out
    as_json = auditor.user.run("--json", "evidence", "verify", str(bundle), "--key", str(auditor.pub),
                               "--ledger-id", auditor.ledger_id(), env=auditor.offline_env).json
    assert as_json["allowed"] and as_json["pinned"] and as_json["decisions"][0]["digest"] == digest
    assert online.json["allowed"] is True
    assert as_json["head"]["tree_size"] == auditor.user.run("--json", "ledger", "info").json["head"]["tree_size"]


def test_unpinned_bundle_warns_that_the_ledger_is_its_own_word(auditor: Auditor, trusted: tuple[Path, str]) -> None:
    result = auditor.verify(trusted[0], pin=False)
    assert "warning" in result.err and "pin it" in result.err


def test_revoked_subject_is_refused_offline(auditor: Auditor) -> None:
    artifact, digest = auditor.user.notarize_file(auditor.key, b"bad build\n")
    auditor.user.run("revoke", digest, "--reason", "CVE-2026-0001", "--key", str(auditor.key))
    bundle = auditor.export(str(artifact))
    result = auditor.verify(bundle, expect=1)
    assert "revoked" in result.err and "CVE-2026-0001" in result.err


def test_not_notarized_subject_is_proven_absent_offline(auditor: Auditor) -> None:
    auditor.user.notarize_file(auditor.key, b"something else\n")  # a ledger with content, none of it this
    other = auditor.tmp / "never.bin"
    other.write_bytes(b"never notarized\n")
    bundle = auditor.export(str(other))
    assert json.loads(bundle.read_text())["absent"], "an answer of absent carries its proof"
    assert "not notarized" in auditor.verify(bundle, expect=1).err


def test_records_of_an_untrusted_signer_are_refused(auditor: Auditor) -> None:
    mallory = auditor.user.key("mallory")
    artifact, _ = auditor.user.notarize_file(mallory, b"mallory's build\n")
    bundle = auditor.export(str(artifact))  # for the auditor's key: mallory's record is not the answer
    assert auditor.verify(bundle, expect=1).err


def test_bundle_for_other_keys_is_a_usage_error(auditor: Auditor, trusted: tuple[Path, str]) -> None:
    other = auditor.user.key("other")
    result = auditor.verify(trusted[0], key=Path(f"{other}.pub"), expect=2)
    assert "not exported for key" in result.err


def test_cut_history_is_a_proof_error(auditor: Auditor, trusted: tuple[Path, str]) -> None:
    def cut(b: dict[str, Any]) -> None:
        b["histories"].pop(next(k for k in b["histories"] if k.startswith("subject/")))
    refused_as_tampered(auditor, edit(trusted[0], cut), "leaves out")


def test_dropped_revocation_version_is_an_integrity_error(auditor: Auditor) -> None:
    artifact, digest = auditor.user.notarize_file(auditor.key, b"bad build\n")
    auditor.user.run("revoke", digest, "--reason", "compromised", "--key", str(auditor.key))
    bundle = auditor.export(str(artifact))
    longest = max(json.loads(bundle.read_text())["histories"].items(), key=lambda kv: len(kv[1]))[0]

    def drop_newest(b: dict[str, Any]) -> None:
        versions = b["histories"][longest]
        assert len(versions) >= 2
        newest = versions.pop()
        versions[-1]["key_index"] = newest["key_index"]  # the index proof moved along: it still names rev N

    refused_as_tampered(auditor, edit(bundle, drop_newest), "versions are missing")


def test_revoked_history_passed_off_as_absent_is_an_integrity_error(auditor: Auditor) -> None:
    artifact, digest = auditor.user.notarize_file(auditor.key, b"bad build\n")
    auditor.user.run("revoke", digest, "--reason", "compromised", "--key", str(auditor.key))
    stray = auditor.tmp / "stray.bin"
    stray.write_bytes(b"never notarized\n")
    with_absent = json.loads(auditor.export(str(stray), "stray.json").read_text())
    bundle = auditor.export(str(artifact))
    assert with_absent["head"] == json.loads(bundle.read_text())["head"]
    a_proof = next(iter(with_absent["absent"].values()))

    def hide(b: dict[str, Any]) -> None:
        key = next(k for k in b["histories"] if k.startswith("subject/"))
        b["histories"].pop(key)
        b["absent"][key] = a_proof

    refused_as_tampered(auditor, edit(bundle, hide))


def test_flipped_leaf_byte_is_an_integrity_error(auditor: Auditor, trusted: tuple[Path, str]) -> None:
    def flip(b: dict[str, Any]) -> None:
        item = next(iter(b["histories"].values()))[0]
        data = item["leaf_data"]
        at = len(data) - 40
        item["leaf_data"] = data[:at] + ("0" if data[at] != "0" else "1") + data[at + 1:]
    refused_as_tampered(auditor, edit(trusted[0], flip))


@pytest.mark.parametrize("field", ["tree_size", "tx", "time_us", "root_hash", "signature", "key_index_root"])
def test_edited_head_is_an_integrity_error(auditor: Auditor, trusted: tuple[Path, str], field: str) -> None:
    def change(b: dict[str, Any]) -> None:
        value = b["head"][field]
        b["head"][field] = value + 1 if isinstance(value, int) else ("0" if value[0] != "0" else "1") + value[1:]
    refused_as_tampered(auditor, edit(trusted[0], change))


def test_bundle_of_another_ledger_fails_the_ledger_id_pin(auditor: Auditor, tmp_path: Path) -> None:
    auditor.user.notarize_file(auditor.key, b"here\n")
    (tmp_path / "other").mkdir()
    other = Auditor(tmp_path / "other")
    artifact, _ = other.user.notarize_file(other.key, b"elsewhere\n")
    bundle = other.export(str(artifact))
    result = auditor.user.run("evidence", "verify", str(bundle), "--key", str(other.pub),
                              "--ledger-id", auditor.ledger_id(), env=auditor.offline_env, expect=3)
    assert "not " + auditor.ledger_id() in result.err


def test_ledger_key_swapped_for_the_forgers_is_an_integrity_error(auditor: Auditor, trusted: tuple[Path, str],
                                                                  tmp_path: Path) -> None:
    (tmp_path / "forger").mkdir()
    forger = Auditor(tmp_path / "forger")
    forger.user.notarize_file(forger.key, b"x\n")
    forged = json.loads(forger.export(str(forger.user.root / "app.bin")).read_text())

    def swap(b: dict[str, Any]) -> None:
        b["ledger"] = forged["ledger"]
    refused_as_tampered(auditor, edit(trusted[0], swap))  # pinned: another id; unpinned, the head is not its
    unpinned = auditor.verify(trusted[0], pin=False, expect=3)
    assert "signature" in unpinned.err or "signed" in unpinned.err, unpinned.err


def test_digest_list_edited_to_another_subject_is_a_proof_error(auditor: Auditor, trusted: tuple[Path, str]) -> None:
    def other(b: dict[str, Any]) -> None:
        b["digests"] = ["sha256:" + "ab" * 32]
    refused_as_tampered(auditor, edit(trusted[0], other), "leaves out")


@pytest.mark.parametrize("data", [b"", b"not json", b"[]", b'{"format": "notary.evidence/v1"}',
                                  b'{"format": "notary.evidence/v0"}', b"[" * 100_000,
                                  b'{"format": "notary.evidence/v1", "ledger": {"public_key": 7}}'])
def test_hostile_bundle_is_one_line_and_exit_3(auditor: Auditor, data: bytes) -> None:
    bundle = auditor.tmp / "hostile.json"
    bundle.write_bytes(data)
    result = auditor.verify(bundle, expect=3, pin=False)
    assert len(result.err.strip().splitlines()) == 1, result.err


def test_hostile_shapes_inside_a_real_bundle_are_exit_3(auditor: Auditor, trusted: tuple[Path, str]) -> None:
    original = trusted[0].read_text()
    for change in (lambda b: b["histories"].update({"subject/x": "no"}),
                   lambda b: b.update(histories=[]),
                   lambda b: next(iter(b["histories"].values()))[0].update(leaf_index=-1),
                   lambda b: next(iter(b["histories"].values()))[0].update(leaf_index=True),
                   lambda b: next(iter(b["histories"].values()))[0].update(audit_path=["zz"]),
                   lambda b: b["head"].update(tree_size=2 ** 70),
                   lambda b: b.update(digests=["md5:00"])):
        trusted[0].write_text(original)
        refused_as_tampered(auditor, edit(trusted[0], change))


def test_oversized_bundle_is_refused_before_it_is_read(auditor: Auditor) -> None:
    bundle = auditor.tmp / "huge.json"
    with bundle.open("wb") as fh:
        fh.truncate(evidence.MAX_BUNDLE + 1)
    result = auditor.verify(bundle, expect=None, pin=False)
    assert result.code in (2, 3) and "limit" in result.err, result.err


def test_bundle_extends_the_auditors_checkpoint(auditor: Auditor) -> None:
    user = auditor.user
    user.notarize_file(auditor.key, b"first\n", name="first.bin", job_id="j1")
    early = auditor.tmp / "early.cp"
    user.run("ledger", "checkpoint", "-o", str(early))
    artifact, _ = user.notarize_file(auditor.key, b"second\n", name="second.bin", job_id="j2")
    bundle = auditor.export(str(artifact), "anchored.json", "--checkpoint", str(early))
    result = user.run("--json", "evidence", "verify", str(bundle), "--key", str(auditor.pub),
                      "--checkpoint", str(early), env=auditor.offline_env)
    assert result.json["pinned"] and result.json["checkpoint_size"] > 0 and "warning" not in result.err

    # no consistency proof from a checkpoint the bundle was not exported for
    plain = auditor.export(str(artifact), "plain.json")
    missing = user.run("evidence", "verify", str(plain), "--key", str(auditor.pub), "--checkpoint", str(early),
                       env=auditor.offline_env, expect=2)
    assert "no consistency proof" in missing.err

    # a checkpoint newer than the bundle cannot be proven from it
    user.notarize_file(auditor.key, b"third\n", name="third.bin", job_id="j3")
    late = auditor.tmp / "late.cp"
    user.run("ledger", "checkpoint", "-o", str(late))
    newer = user.run("evidence", "verify", str(bundle), "--key", str(auditor.pub), "--checkpoint", str(late),
                     env=auditor.offline_env, expect=2)
    assert "newer" in newer.err

    def other_tree(b: dict[str, Any]) -> None:
        c = b["consistency"][0]
        c["root_hash"] = ("0" if c["root_hash"][0] != "0" else "1") + c["root_hash"][1:]
    edit(bundle, other_tree)
    split = user.run("evidence", "verify", str(bundle), "--key", str(auditor.pub), "--checkpoint", str(early),
                     env=auditor.offline_env, expect=3)
    assert "split view" in split.err


def test_bundle_from_a_fork_fails_the_auditors_checkpoint(auditor: Auditor, tmp_path: Path) -> None:
    """The same ledger file and key written differently: one ledger id, two histories. The fork's bundle is
    self-consistent and signed by the ledger key; only the auditor's checkpoint tells the lie apart."""
    user = auditor.user
    user.notarize_file(auditor.key, b"first\n", name="first.bin", job_id="j1")
    for suffix in ("", ".key"):
        shutil.copyfile(f"{user.ledger_path}{suffix}", f"{tmp_path / 'fork.db'}{suffix}")
    user.notarize_file(auditor.key, b"honest\n", name="honest.bin", job_id="j2")
    honest = tmp_path / "honest.cp"
    user.run("ledger", "checkpoint", "-o", str(honest))
    fork = Notary(tmp_path / "forker", ledger_url=(tmp_path / "fork.db").as_uri())
    fork.root.mkdir()
    forged = tmp_path / "forged.bin"
    forged.write_bytes(b"forged\n")
    fork.run("notarize", str(forged), "--job-id", "j2", "--key", str(auditor.key))
    fork.run("notarize", str(tmp_path / "honest.bin"), "--job-id", "j3", "--key", str(auditor.key))
    fork_bundle = tmp_path / "fork.json"
    fork.run("evidence", "export", str(forged), "-o", str(fork_bundle), "--key", str(auditor.pub))
    auditor.verify(fork_bundle)  # pinned by ledger id alone, a fork passes: why checkpoints exist
    result = user.run("evidence", "verify", str(fork_bundle), "--key", str(auditor.pub), "--checkpoint",
                      str(honest), env=auditor.offline_env, expect=None)
    assert result.code in (2, 3), result.err  # no proof from the honest checkpoint: never a pass


def test_export_refuses_a_checkpoint_of_another_history(auditor: Auditor, tmp_path: Path) -> None:
    user = auditor.user
    user.notarize_file(auditor.key, b"first\n", name="first.bin", job_id="j1")
    for suffix in ("", ".key"):
        shutil.copyfile(f"{user.ledger_path}{suffix}", f"{tmp_path / 'fork.db'}{suffix}")
    fork = Notary(tmp_path / "forker", ledger_url=(tmp_path / "fork.db").as_uri())
    fork.root.mkdir()
    forged = tmp_path / "forged.bin"
    forged.write_bytes(b"forged\n")
    fork.run("notarize", str(forged), "--job-id", "j2", "--key", str(auditor.key))
    fork.run("ledger", "checkpoint", "-o", str(tmp_path / "fork.cp"))
    artifact, _ = user.notarize_file(auditor.key, b"honest\n", name="honest.bin", job_id="j2")
    user.notarize_file(auditor.key, b"more\n", name="more.bin", job_id="j3")
    result = user.run("evidence", "export", str(artifact), "-o", str(tmp_path / "b.json"), "--key",
                      str(auditor.pub), "--checkpoint", str(tmp_path / "fork.cp"), expect=3)
    assert "split view" in result.err or "consisten" in result.err, result.err
    assert not (tmp_path / "b.json").exists()


def test_export_from_immudb_without_the_operator_key_is_a_usage_error_not_a_weaker_bundle(
        immudb_server: ImmudbServer, tmp_path: Path) -> None:
    user = Notary(tmp_path, ledger_url=fresh_immudb_url(immudb_server))
    user.env["NOTARY_IMMUDB_PASSWORD"] = "immudb"
    key = user.key()
    artifact, _ = user.notarize_file(key, b"on immudb\n")
    result = user.run("evidence", "export", str(artifact), "-o", str(tmp_path / "b.json"), "--key", f"{key}.pub",
                      expect=2)
    assert "--sign-key" in result.err and not (tmp_path / "b.json").exists()


def test_digest_the_auditor_holds_is_decided_and_a_bundle_about_another_is_refused(
        auditor: Auditor, trusted: tuple[Path, str]) -> None:
    bundle, digest = trusted
    held = auditor.verify(bundle, "--digest", digest)
    assert "trusted" in held.out
    other = auditor.tmp / "other.bin"
    other.write_bytes(b"another release\n")
    _, other_digest = auditor.user.notarize_file(auditor.key, b"another release\n", name="other.bin", job_id="j2")
    swapped = auditor.verify(bundle, "--digest", other_digest, expect=3)  # a trusted bundle passed off as another's
    assert "leaves out" in swapped.err


def test_bundle_from_a_partition_member_is_refused_at_export(tmp_path: Path) -> None:
    """One member cannot prove what the others hold about the identities tied to a digest: exporting through
    a member's URL (or the partitioned URL) is exit 2 with nothing written, not a bundle that looks complete."""
    from tests.support.ledgers import EmbeddedPartitions

    part = EmbeddedPartitions(tmp_path / "part")
    artifact = part.notary.root / "app.bin"
    artifact.write_bytes(b"partitioned release\n")
    part.notary.run("notarize", str(artifact), "--job-id", "j1", "--key", str(part.key))
    for url in (part.url, *part.members):
        out = tmp_path / "b.json"
        result = part.notary.run("--ledger", url, "evidence", "export", str(artifact), "-o", str(out), "--key",
                                 part.pub, expect=2)
        assert "partition" in result.err and not out.exists(), result.err
