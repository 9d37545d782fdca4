"""The signer set of a digest is enumerated with proof: reads without --key (history, get, lookup) find every
signer from the proven-complete history of signers/<digest>, not from a key listing that proves nothing.

The attack: two signers on one digest; someone with write access to the ledger file deletes every row of one
signer's records. Before the signer index, `history D` said "3 records, all proofs verified" with that signer
silently gone, and `get D --at-tx N` said not-found although that signer had revoked D."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from notary import keys
from tests.support.cli import Notary


@pytest.fixture
def notary(tmp_path: Path) -> Notary:
    return Notary(tmp_path)


def _two_signers(notary: Notary) -> tuple[str, str, str]:
    """D notarized by A; notarized, revoked and reinstated by B. (D, A's key id, B's key id)"""
    a, b = notary.key("a"), notary.key("b")
    artifact, digest = notary.notarize_file(a, b"release 7\n", job_id="ja")
    notary.run("notarize", str(artifact), "--job-id", "jb", "--key", str(b))
    notary.run("revoke", digest, "--reason", "CVE-2026-1212", "--key", str(b))
    notary.run("notarize", str(artifact), "--job-id", "jb2", "--key", str(b), "--reinstate", "--reason", "fixed")
    ids = [keys.key_id(keys.load_public_key(Path(f"{k}.pub"))) for k in (a, b)]
    return digest, ids[0], ids[1]


def _delete(db: Path, pattern: str) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("DELETE FROM entries WHERE key LIKE ?", (pattern,)).rowcount


def test_history_without_key_names_every_signer_with_proof(notary: Notary) -> None:
    digest, a, b = _two_signers(notary)
    result = notary.run("--json", "history", digest).json
    [subject] = result["subjects"]
    assert sorted({v["signer"] for v in subject["versions"]}) == sorted([a, b])
    assert len(subject["versions"]) == 4
    assert subject["signer_set"]["signers"] == sorted([a, b]) and subject["signer_set"]["unindexed"] == []
    assert all("key_index" in v["proof"] or "audit_path" in v["proof"] for v in subject["signer_set"]["versions"])


def test_deleted_signer_records_are_an_integrity_error_for_history(notary: Notary) -> None:
    digest, _, b = _two_signers(notary)
    assert _delete(notary.ledger_path, f"subject/{digest}/{b}") == 3
    result = notary.run("history", digest, expect=3)
    assert "a record was deleted" in result.err or "has no such entry" in result.err
    notary.run("get", digest, "--at-tx", "4", expect=3)
    notary.run("get", digest, expect=3)


def test_deleted_signer_and_its_signer_index_rows_are_an_integrity_error(notary: Notary) -> None:
    """The thorough attacker also deletes the signer index versions that name the victim signer."""
    digest, _, b = _two_signers(notary)
    assert _delete(notary.ledger_path, f"subject/{digest}/{b}") == 3
    with sqlite3.connect(notary.ledger_path) as con:
        gone = con.execute("DELETE FROM entries WHERE key = ? AND CAST(value AS TEXT) LIKE ?",
                           (f"signers/{digest}", f"%{b}%")).rowcount
    assert gone == 3
    for args in (("history", digest), ("get", digest), ("get", digest, "--at-tx", "4")):
        result = notary.run(*args, expect=3)
        assert "integrity" in result.err.lower() or "deleted" in result.err


def test_hostile_signer_index_value_adds_nothing_but_a_signer_to_check(notary: Notary) -> None:
    """Any writer can append to signers/<digest>: a bogus signer id reads as no records, a malformed value as none."""
    from notary.ledger import open_ledger

    digest, a, b = _two_signers(notary)
    ledger = open_ledger(notary.ledger_url, state_dir=notary.state_dir)
    try:
        ledger.write({f"signers/{digest}": b'{"signer": "sha256:' + b"0" * 64 + b'"}'})
        ledger.write({f"signers/{digest}": b"not json"})
    finally:
        ledger.close()
    result = notary.run("--json", "history", digest).json
    assert sorted({v["signer"] for v in result["subjects"][0]["versions"]}) == sorted([a, b])


def _check_absence(proof: dict, key: str) -> None:
    """docs/proofs.md, "Absence", checked with the document's own code: the key index path ends away from key."""
    from tests.test_key_index_vectors import auditor_check

    assert proof["key"] == key and proof["method"] == "key-index"
    assert auditor_check(proof["head"]["key_index_root"], key, proof["key_index"]) is None or proof["first_version"]


def test_get_of_a_never_notarized_subject_is_exit_1_with_an_absence_proof(notary: Notary) -> None:
    digest, _, _ = _two_signers(notary)
    unknown = "sha256:" + "7" * 64
    result = notary.run("--json", "get", unknown, expect=1)
    error = result.json["error"]
    assert error["kind"] == "not-found" and error["exit_code"] == 1 and error["head"]["tree_size"] > 0
    [proof] = error["absence"]
    _check_absence(proof, f"signers/{unknown}")
    history = notary.run("--json", "history", unknown, expect=1).json["error"]
    _check_absence(history["absence"][0], f"signers/{unknown}")


def test_history_for_a_signer_who_never_signed_proves_it(notary: Notary) -> None:
    digest, _, _ = _two_signers(notary)
    stranger = notary.key("stranger")
    sid = keys.key_id(keys.load_public_key(Path(f"{stranger}.pub")))
    error = notary.run("--json", "history", digest, "--key", f"{stranger}.pub", expect=1).json["error"]
    _check_absence(error["absence"][0], f"subject/{digest}/{sid}")


def test_get_as_of_before_the_first_record_proves_absence_then(notary: Notary) -> None:
    notary.notarize_file(notary.key("early"), b"something else", name="early.bin", job_id="j0")  # tx 1
    digest, a, _ = _two_signers(notary)
    result = notary.run("--json", "get", digest, "--at-tx", "1", expect=1)
    assert "signer index" not in result.err, "a signer indexed after tx 1 is not an unindexed one"
    [proof] = result.json["error"]["absence"]
    assert proof["as_of_tx"] == 1 and proof["key"] == f"signers/{digest}"
    assert proof["first_version"]["tx"] == 2, "revision 1 proven to come after the time asked"


def test_lookup_of_an_unknown_job_is_exit_1_with_a_proof_per_key_read(notary: Notary) -> None:
    _two_signers(notary)
    error = notary.run("--json", "lookup", "--job-id", "never-ran", expect=1).json["error"]
    keys_read = {p["key"] for p in error["absence"]}
    assert "job/local/never-ran" in keys_read and "job/github/never-ran" in keys_read
    for proof in error["absence"]:
        _check_absence(proof, proof["key"])


def test_absence_claim_for_a_key_that_exists_is_refused_by_the_check(notary: Notary) -> None:
    """A forger who presents the key index proof of an existing key as an absence proof: the check says present."""
    from tests.test_key_index_vectors import auditor_check

    digest, _, _ = _two_signers(notary)
    present = notary.run("--json", "get", digest).json["records"][0]["proof"]
    assert auditor_check(present["key_index_root"], present["key_index"]["key_hash"] and
                         f"subject/{digest}/{notary.run('--json', 'get', digest).json['records'][0]['signer']}",
                         present["key_index"]) is not None


def test_verify_of_a_never_notarized_file_proves_each_trusted_signer_silent(notary: Notary) -> None:
    key = notary.key()
    notary.notarize_file(key, b"something notarized", name="other.bin")
    stray = notary.root / "stray.bin"
    stray.write_bytes(b"never notarized")
    result = notary.run("--json", "verify", str(stray), "--key", f"{key}.pub", expect=1)
    [decision] = result.json["decisions"]
    [finding] = decision["signers"]
    assert decision["status"] == "not-notarized" and finding["versions"] == 0
    _check_absence(finding["absence"], f"subject/{decision['digest']}/{finding['signer']}")


def test_history_as_of_a_tx_shows_what_stood_then_and_deleting_a_later_signer_is_still_caught(
        notary: Notary) -> None:
    digest, a, b = _two_signers(notary)  # tx 1: A notarizes; tx 2: B notarizes; tx 3: B revokes; tx 4: reinstates
    then = notary.run("--json", "history", digest, "--at-tx", "2").json
    assert then["as_of_tx"] == 2
    assert [(v["tx"], v["signer"]) for v in then["subjects"][0]["versions"]] == [(1, a), (2, b)]
    before = notary.run("--json", "history", digest, "--at-tx", "1").json["subjects"][0]
    assert before["signer_set"]["signers"] == [a] and len(before["versions"]) == 1
    notary.run("history", digest, "--at-tx", "99", expect=2)
    assert _delete(notary.ledger_path, f"subject/{digest}/{b}") == 3
    notary.run("history", digest, "--at-tx", "2", expect=3)  # b signed by tx 2: its records proven missing
    notary.run("history", digest, "--at-tx", "1")  # as of tx 1, b had not signed: that answer still stands


def test_lookup_as_of_a_tx_leaves_out_later_jobs_and_a_deleted_finder_is_still_caught(notary: Notary) -> None:
    digest, a, b = _two_signers(notary)  # jobs: ja at tx 1, jb at tx 2, jb2 (the reinstatement) at tx 4
    assert [r["tx"] for r in notary.run("--json", "lookup", "--job-id", "jb", "--at-tx", "2").json["results"]] == [2]
    later = notary.run("--json", "lookup", "--job-id", "jb2", "--at-tx", "3", expect=1).json["error"]
    local = next(p for p in later["absence"] if p["key"] == "job/local/jb2")
    assert local["as_of_tx"] == 3 and local["first_version"]["tx"] == 4, "proven written only after tx 3"
    _check_absence(next(p for p in later["absence"] if p["key"] == "job/github/jb2"), "job/github/jb2")
    holders = notary.run("--json", "lookup", "--artifact", digest, "--at-tx", "1").json
    assert holders["as_of_tx"] == 1 and [h["signer"] for h in holders["results"]] == [a]
    assert {h["signer"] for h in notary.run("--json", "lookup", "--artifact", digest).json["results"]} == {a, b}
    notary.run("lookup", "--job-id", "jb", "--at-tx", "99", expect=2)
    assert _delete(notary.ledger_path, "job/local/jb") == 1
    notary.run("lookup", "--job-id", "jb", "--at-tx", "3", expect=3)  # the finder was there at tx 2: proven gone


def test_history_at_time_reads_as_of_that_time_and_before_the_first_is_exit_1(notary: Notary) -> None:
    digest, a, _ = _two_signers(notary)
    first = notary.run("--json", "history", digest).json["subjects"][0]["versions"][0]
    then = notary.run("--json", "history", digest, "--at-time", first["time"]).json
    assert then["as_of_tx"] == 1 and [v["signer"] for v in then["subjects"][0]["versions"]] == [a]
    for command in (["history", digest], ["get", digest], ["lookup", "--job-id", "ja"]):
        early = notary.run("--json", *command, "--at-time", "2001-01-01T00:00:00Z", expect=1).json["error"]
        assert early["kind"] == "not-found" and "first transaction is later" in early["message"], command
    notary.run("history", digest, "--at-tx", "1", "--at-time", first["time"], expect=2)


def test_as_of_signer_set_carries_the_versions_that_prove_the_cut(notary: Notary) -> None:
    """From the JSON alone: the newest version (key index) and the first after N (tx > N) bound the cut, so
    dropping a signer's version from the as-of set is visible without a second read."""
    from tests.test_key_index_vectors import auditor_check

    digest, a, b = _two_signers(notary)
    found = notary.run("--json", "history", digest, "--at-tx", "2").json["subjects"][0]["signer_set"]
    assert [v["revision"] for v in found["versions"]] == [1, 2] and all(v["tx"] <= 2 for v in found["versions"])
    assert found["next_version"]["revision"] == 3 and found["next_version"]["tx"] > 2
    newest = found["newest_version"]
    index = newest["proof"]["key_index"]
    said = auditor_check(newest["proof"]["key_index_root"], f"signers/{digest}", index)
    assert said is not None and said[0] == newest["revision"] == 4
    whole = notary.run("--json", "history", digest).json["subjects"][0]["signer_set"]
    assert "next_version" not in whole and len(whole["versions"]) == 4
