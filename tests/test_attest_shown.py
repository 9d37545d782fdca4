"""Attestations shown where auditors look: `notary get`, `notary audit report` and `notary audit follow`.

Through the real CLI on real embedded ledgers: an attestation written by `notary attest` is shown by each
command (its --json validated against docs/schemas/ by the runner), one by a key not named with --key is not
counted as trusted, and an attestation row deleted or edited in the ledger file behind notary's back is an
integrity error (exit 3), never a shorter answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from notary import keys
from notary.audit.report_svg import ATTESTATION_COLOUR
from tests.support.cli import Notary, check_schema
from tests.support.local_ledger import sql

PROVENANCE = "https://slsa.dev/provenance/v1"
TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"
NAME = "registry.example.com/team/app"


@pytest.fixture
def notary(tmp_path: Path) -> Notary:
    return Notary(tmp_path)


def _attest(notary: Notary, digest: str, key: Path, ptype: str = PROVENANCE) -> dict[str, Any]:
    predicate = notary.root / "predicate.json"
    predicate.write_text(json.dumps(
        {"buildDefinition": {"buildType": "https://example.com/build/v1", "externalParameters": {}},
         "runDetails": {"builder": {"id": "https://builder.example/ci"}}} if ptype == PROVENANCE
        else {"result": "PASSED", "passedTests": ["unit"]}))
    done: dict[str, Any] = notary.run("--json", "attest", digest, "--predicate-type", ptype, "--predicate",
                                      str(predicate), "--key", str(key), "--name", NAME).json
    return done


def _signer(key: Path) -> str:
    return keys.key_id(keys.load_private_key(key))


def _world(notary: Notary) -> tuple[Path, Path, str, dict[str, Any], dict[str, Any]]:
    """ci notarizes a file and attests its provenance; rogue (never trusted) attests a test result about it."""
    ci, rogue = notary.key("ci"), notary.key("rogue")
    _, digest = notary.notarize_file(ci, b"built\n")
    return ci, rogue, digest, _attest(notary, digest, ci), _attest(notary, digest, rogue, TEST_RESULT)


def _follow(notary: Notary, *args: str, expect: int = 0) -> list[dict[str, Any]]:
    out = notary.run("audit", "follow", "--once", "--state", str(notary.root / "monitor"), *args, expect=expect).out
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    for event in events:
        check_schema(event)  # docs/schemas/notary.audit-follow-v1.json
    return events


def _attestation_rows(notary: Notary) -> list[tuple[int, str]]:
    import sqlite3

    con = sqlite3.connect(notary.ledger_path)
    try:
        return [(int(r[0]), str(r[1])) for r in
                con.execute("SELECT leaf, key FROM entries WHERE key LIKE 'attestation/%' ORDER BY leaf")]
    finally:
        con.close()


# ---------------------------------------------------------------- notary get


def test_get_lists_the_attestations_current_for_the_digest(notary: Notary) -> None:
    ci, rogue, digest, prov, tested = _world(notary)
    found = notary.run("--json", "get", digest).json
    assert [r["type"] for r in found["records"]] == ["notarization"]
    rows = found["attestations"]
    assert [(a["predicate_type"], a["signer"], a["tx"]) for a in rows] == [
        (PROVENANCE, _signer(ci), prov["tx"]), (TEST_RESULT, _signer(rogue), tested["tx"])]
    for a in rows:
        assert a["digest"] == digest and a["subjects"] == [{"name": NAME, "digest": digest}]
        assert a["time"] == (prov if a["predicate_type"] == PROVENANCE else tested)["time"]
        assert a["proof"] and a["trusted_signer"] is None and a["key"].startswith(f"attestation/{digest}/")
    human = notary.run("get", digest).out
    assert "attested" in human and PROVENANCE in human and TEST_RESULT in human

    # --key: only that signer, marked trusted; the rogue's attestation is not counted among the trusted
    [only] = notary.run("--json", "get", digest, "--key", f"{ci}.pub").json["attestations"]
    assert only["signer"] == _signer(ci) and only["trusted_signer"] is True
    # as of before the attestations: none yet (time travel holds for them too)
    early = notary.run("--json", "get", digest, "--at-tx", str(prov["tx"] - 1)).json
    assert early["attestations"] == [] and len(early["records"]) == 1
    # a newer attestation of the same type by the same key: get shows the current one, history both
    again = _attest(notary, digest, ci)
    current = [a for a in notary.run("--json", "get", digest).json["attestations"] if a["predicate_type"] == PROVENANCE]
    assert [a["tx"] for a in current] == [again["tx"]]


def test_get_of_a_digest_only_attested_shows_the_attestation(notary: Notary) -> None:
    ci = notary.key("ci")
    notary.notarize_file(ci, b"something else\n")  # the ledger exists
    digest = "sha256:" + "ab" * 32
    done = _attest(notary, digest, ci)
    found = notary.run("--json", "get", digest).json
    assert found["records"] == [] and [a["tx"] for a in found["attestations"]] == [done["tx"]]


@pytest.mark.parametrize("attack", ["delete", "delete-index", "edit"])
def test_get_with_an_attestation_row_deleted_or_edited_is_an_integrity_error(notary: Notary, attack: str) -> None:
    ci, _, digest, _, _ = _world(notary)
    leaf, _ = _attestation_rows(notary)[0]
    if attack == "delete":
        sql(notary.ledger_path, "DELETE FROM entries WHERE leaf = ?", leaf)
    elif attack == "delete-index":  # the signer's attestation index, which get enumerates from
        sql(notary.ledger_path, "DELETE FROM entries WHERE key LIKE 'attestations/%' AND tx = "
            "(SELECT tx FROM entries WHERE leaf = ?)", leaf)
    else:  # another attestation's (validly signed) envelope moved under this key
        sql(notary.ledger_path, "UPDATE entries SET value = (SELECT value FROM entries WHERE key LIKE "
            "'attestation/%' AND leaf != ?) WHERE leaf = ?", leaf, leaf)
    notary.run("verify", digest, "--key", f"{ci}.pub")  # not read by verify: the failure below is get's own
    failed = notary.run("--json", "get", digest, expect=3)
    assert failed.json["error"]["exit_code"] == 3 and failed.json["error"]["kind"] in ("integrity", "proof")


# ---------------------------------------------------------------- notary audit report


def test_audit_report_counts_attestations_per_signer_and_type_and_lists_them(notary: Notary) -> None:
    ci, rogue, digest, prov, tested = _world(notary)
    out = notary.root / "report.html"
    result = notary.run("--json", "audit", "report", "--key", f"{ci}.pub", "-o", str(out)).json
    att = result["attestations"]
    assert att["count"] == 2 and att["trusted"] == 1
    assert att["by_predicate_type"] == {PROVENANCE: 1, TEST_RESULT: 1}
    assert att["by_signer"] == {_signer(ci): {PROVENANCE: 1}, _signer(rogue): {TEST_RESULT: 1}}
    trust = {a["predicate_type"]: a["trusted_signer"] for a in att["list"]}
    assert trust == {PROVENANCE: True, TEST_RESULT: False}
    assert [a["tx"] for a in att["list"]] == [prov["tx"], tested["tx"]]
    assert all(a["digest"] == digest and a["subjects"] == [{"name": NAME, "digest": digest}] for a in att["list"])

    page = out.read_text()
    section = page[page.index("<h2>Attestations</h2>"):page.index("<h2>What could not be verified</h2>")]
    for words in ("Per signer", "Per predicate type", "Every attestation", PROVENANCE, TEST_RESULT, digest,
                  "NOT trusted", _signer(rogue), "1 of them by a signer named with"):
        assert words in section, words
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert ATTESTATION_COLOUR in svg and "attestations</text>" in svg  # bars and their legend
    assert '<th>attestations</th><td class="n">2</td>' in page  # the summary
    human = notary.run("audit", "report", "--key", f"{ci}.pub", "-o", str(out)).out
    assert "2 attestation(s)" in human and "1 by a trusted signer" in human and TEST_RESULT in human
    # the range decides: from after the attestations, none
    later = notary.run("--json", "audit", "report", "--from", str(tested["tx"]), "-o", str(out)).json
    assert later["attestations"] == {"count": 0, "trusted": None, "by_signer": {}, "by_predicate_type": {},
                                     "list": []}
    assert "No attestation was written in this range." in out.read_text()


@pytest.mark.parametrize("attack", ["delete", "edit"])
def test_audit_report_with_an_attestation_row_deleted_or_edited_is_an_integrity_error(
        notary: Notary, attack: str) -> None:
    _world(notary)
    leaf, _ = _attestation_rows(notary)[0]
    out = notary.root / "report.html"
    if attack == "delete":  # the range is no longer complete: no page at all
        sql(notary.ledger_path, "DELETE FROM entries WHERE leaf = ?", leaf)
        notary.run("audit", "report", "-o", str(out), expect=3)
        assert not out.exists()
    else:  # a byte of the envelope changed: the leaf hash no longer matches, the range does not prove
        sql(notary.ledger_path, "UPDATE entries SET value = CAST(REPLACE(CAST(value AS TEXT), '\"payload\":\"', "
            "'\"payload\":\"A') AS BLOB) WHERE leaf = ?", leaf)
        notary.run("audit", "report", "-o", str(out), expect=3)


# ---------------------------------------------------------------- notary audit follow


def test_audit_follow_writes_a_line_per_attestation_with_its_type_and_subjects(notary: Notary) -> None:
    ci, rogue, digest, prov, tested = _world(notary)
    events = _follow(notary, "--key", f"{ci}.pub")
    lines = [e for e in events if e["event"] == "attestation"]
    assert [(e["tx"], e["predicate_type"], e["signer"], e["trusted_signer"]) for e in lines] == [
        (prov["tx"], PROVENANCE, _signer(ci), True), (tested["tx"], TEST_RESULT, _signer(rogue), False)]
    assert all(e["subjects"] == [{"name": NAME, "digest": digest}] and e["digest"] == digest for e in lines)
    txs = {e["tx"]: e for e in events if e["event"] == "tx"}
    assert txs[prov["tx"]]["attestations"] == 1 and txs[1]["attestations"] == 0
    order = [(e["event"], e.get("tx")) for e in events]
    assert order.index(("tx", prov["tx"])) + 1 == order.index(("attestation", prov["tx"]))  # after its tx
    newer = _attest(notary, digest, ci, TEST_RESULT)
    [line] = [e for e in _follow(notary) if e["event"] == "attestation"]  # only the new one, next round
    assert (line["tx"], line["predicate_type"], line["trusted_signer"]) == (newer["tx"], TEST_RESULT, None)


@pytest.mark.parametrize("attack", ["delete", "edit"])
def test_audit_follow_with_an_attestation_row_deleted_or_edited_is_tampering(notary: Notary, attack: str) -> None:
    _world(notary)
    leaf, _ = _attestation_rows(notary)[0]
    if attack == "delete":
        sql(notary.ledger_path, "DELETE FROM entries WHERE leaf = ?", leaf)
    else:
        sql(notary.ledger_path, "UPDATE entries SET value = (SELECT value FROM entries WHERE key LIKE "
            "'attestation/%' AND leaf != ?) WHERE leaf = ?", leaf, leaf)
    events = _follow(notary, expect=3)
    assert events[-1]["event"] == "tampering" and not any(e["event"] == "attestation" for e in events)
