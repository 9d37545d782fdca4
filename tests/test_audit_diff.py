"""`notary audit diff`: every record between two points, and every way of making the range look shorter or
different is exit 3 (embedded ledger edited in place; immudb through a lying proxy, see test_immudb_mirror.py).

The ledger in most tests: A notarizes D (tx 1, job ja), B notarizes D (tx 2, jb), B revokes D (tx 3),
B reinstates it (tx 4, jb2), A notarizes E (tx 5, je).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from notary import keys, records
from notary.ledger.embedded import EmbeddedLedger
from tests.support.cli import Notary, flip_envelope_byte


@pytest.fixture
def notary(tmp_path: Path) -> Notary:
    return Notary(tmp_path)


def _ledger(notary: Notary) -> tuple[str, str, str, str]:
    a, b = notary.key("a"), notary.key("b")
    artifact, d = notary.notarize_file(a, b"release 7\n", job_id="ja")
    notary.run("notarize", str(artifact), "--job-id", "jb", "--key", str(b))
    notary.run("revoke", d, "--reason", "CVE-2026-1212", "--key", str(b))
    notary.run("notarize", str(artifact), "--job-id", "jb2", "--key", str(b), "--reinstate", "--reason", "fixed")
    _, e = notary.notarize_file(a, b"release 8\n", name="e.bin", job_id="je")
    ids = [keys.key_id(keys.load_public_key(Path(f"{k}.pub"))) for k in (a, b)]
    return d, e, ids[0], ids[1]


def test_diff_lists_every_record_in_the_range_per_signer_and_job(notary: Notary) -> None:
    d, e, a, b = _ledger(notary)
    whole = notary.run("--json", "audit", "diff").json
    assert [(c["tx"], c["type"], c["digest"], c["signer"]) for c in whole["changes"]] == [
        (1, "notarization", d, a), (2, "notarization", d, b), (3, "revocation", d, b),
        (4, "reinstatement", d, b), (5, "notarization", e, a)]
    assert whole["complete"] and whole["from"]["tx"] == 0 and whole["to"]["tx"] == 5 and not whole["findings"]
    assert whole["by_signer"][a] == {"notarization": 2}
    assert set(whole["by_job"]) == {"local/ja", "local/jb", "local/jb2", "local/je"}
    middle = notary.run("--json", "audit", "diff", "--from", "2", "--to", "3").json
    assert [(c["tx"], c["type"], c["reason"]) for c in middle["changes"]] == [(3, "revocation", "CVE-2026-1212")]
    assert middle["head"]["tx"] == 5
    first = whole["changes"][0]["time"]
    by_time = notary.run("--json", "audit", "diff", "--from", "2001-01-01", "--to", first).json
    assert [c["tx"] for c in by_time["changes"]] == [1]
    human = notary.run("audit", "diff", "--from", "2", "--key", str(notary.root / 'a.key.pub')).out
    assert "revocation" in human and "reason: CVE-2026-1212" in human and "[NOT trusted]" in human
    empty = notary.run("--json", "audit", "diff", "--from", "5").json
    assert empty["changes"] == [] and empty["entries"] == 0


def test_hostile_points_are_one_line_and_exit_2(notary: Notary) -> None:
    _ledger(notary)
    for args in (["--from", "9"], ["--from", "4", "--to", "2"], ["--from", "yesterday"], ["--to", "-1"],
                 ["--from", "2026-13-45T00:00:00Z"], ["--from", "1" * 400]):
        failed = notary.run("audit", "diff", *args, expect=2)
        assert len(failed.err.strip().splitlines()) == 1 and "Traceback" not in failed.err, (args, failed.err)


def _sql(notary: Notary, statement: str) -> None:
    with sqlite3.connect(notary.ledger_path) as db:
        db.execute(statement)


def test_deleted_revocation_in_the_range_is_an_integrity_error(notary: Notary) -> None:
    _ledger(notary)
    _sql(notary, "DELETE FROM entries WHERE tx = 3 AND key LIKE 'subject/%'")
    failed = notary.run("audit", "diff", "--from", "2", "--to", "4", expect=3)
    assert "missing" in failed.err, failed.err


def test_transaction_table_lying_about_sizes_cannot_shorten_the_range(notary: Notary) -> None:
    """The sizes that pick the leaves are not what proves the range: shrinking tx 3's size (so that the
    revocation would seem to belong to tx 4) or growing it (so that it would seem to belong to tx 3's
    predecessor range) is caught by the proven leaves around the range."""
    _ledger(notary)
    for edit, undo in (("- 1", "+ 1"), ("+ 1", "- 1")):
        _sql(notary, f"UPDATE txs SET tree_size = tree_size {edit} WHERE tx = 3")
        for args in (["--from", "3", "--to", "5"], ["--from", "1", "--to", "3"]):
            failed = notary.run("audit", "diff", *args, expect=3)
            assert "leaf" in failed.err, failed.err
        _sql(notary, f"UPDATE txs SET tree_size = tree_size {undo} WHERE tx = 3")
    notary.run("audit", "diff", "--from", "3")


def test_record_altered_in_place_is_an_integrity_error(notary: Notary) -> None:
    _ledger(notary)
    assert flip_envelope_byte(notary.ledger_path) == 5
    failed = notary.run("audit", "diff", "--from", "4", expect=3)  # the leaf no longer hashes into the head
    assert "Traceback" not in failed.err and len(failed.err.strip().splitlines()) == 1, failed.err


def test_record_filed_under_another_signer_is_a_finding_and_exit_3(notary: Notary) -> None:
    """A writer with access to the ledger (not a file edit: a proper, proven entry) files A's envelope under
    B's key: every proof holds, but the record does not open as B's. Listed, and exit 3."""
    d, _, a, b = _ledger(notary)
    ledger = EmbeddedLedger.open(notary.ledger_url, trust=None)
    envelope = ledger.get(records.subject_key(d, a))
    assert envelope is not None
    ledger.write({records.subject_key(d, b): envelope.value, "subject/not-a-digest/x": b"hello"})
    ledger.close()
    result = notary.run("--json", "audit", "diff", "--from", "5", expect=3)
    problems = {f["key"]: f["problem"] for f in result.json["findings"]}
    assert set(problems) == {records.subject_key(d, b), "subject/not-a-digest/x"}, problems
    assert "do not open" in result.err


def test_two_rows_swapped_inside_a_proven_block_are_an_integrity_error(notary: Notary) -> None:
    """Blocks of leaves are proven by one path and the hashes of their own leaves: swapping two leaves' rows
    (every row still there, contiguous; here their values) changes the block's inner nodes, which the path pins."""
    _ledger(notary)
    _sql(notary, "UPDATE entries SET value = CASE leaf WHEN 9 THEN (SELECT value FROM entries WHERE leaf = 10) "
                 "ELSE (SELECT value FROM entries WHERE leaf = 9) END WHERE leaf IN (9, 10)")
    failed = notary.run("audit", "diff", "--from", "2", expect=3)
    assert "not the ones the signed tree holds" in failed.err, failed.err  # the first leaf of block 8.. is intact
