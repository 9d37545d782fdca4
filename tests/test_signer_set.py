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
