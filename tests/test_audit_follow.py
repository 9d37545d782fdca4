"""`notary audit follow`: a monitor with trust of its own, verifying every new transaction, against real ledgers
changed the way a fault or an attacker would."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from notary import records
from notary.ledger.embedded import EmbeddedLedger
from tests.support.cli import Notary, check_schema


@pytest.fixture
def notary(tmp_path: Path) -> Notary:
    return Notary(tmp_path)


def _events(out: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    for event in events:
        check_schema(event)  # docs/schemas/notary.audit-follow-v1.json
    return events


def _follow(notary: Notary, *args: str, expect: int = 0) -> list[dict[str, Any]]:
    result = notary.run("audit", "follow", "--once", "--state", str(notary.root / "monitor"), *args, expect=expect)
    return _events(result.out)


def test_follow_reports_every_transaction_once_and_resumes_from_its_cursor(notary: Notary) -> None:
    key = notary.key()
    _, d = notary.notarize_file(key, b"one", job_id="j1")
    notary.run("revoke", d, "--reason", "CVE-2026-9", "--key", str(key))
    first = _follow(notary)
    assert [(e["event"], e.get("tx")) for e in first] == [("tx", 1), ("tx", 2), ("head", 2)]
    assert first[0]["records"][0]["type"] == "notarization" and first[1]["records"][0]["reason"] == "CVE-2026-9"
    assert first[0]["index_entries"] == {"job": 1, "signer-set": 1}
    assert _follow(notary) == [first[-1]], "nothing new: only the head"
    notary.notarize_file(key, b"two", name="two.bin", job_id="j2")
    again = _follow(notary)
    assert [(e["event"], e.get("tx")) for e in again] == [("tx", 3), ("head", 3)]
    late = Notary(notary.root / "late", ledger_url=notary.ledger_url)
    late.root.mkdir(exist_ok=True)
    started = _events(late.run("audit", "follow", "--once", "--from", "2", "--state", str(late.root / "m")).out)
    assert [e.get("tx") for e in started] == [3, 3], "a first run starts where --from says"


def test_ledger_swapped_for_a_fork_is_tampering(notary: Notary) -> None:
    """The same ledger key, another history: the monitor's own trusted state refuses the new head."""
    key = notary.key()
    notary.notarize_file(key, b"one", job_id="j1")
    for suffix in ("", ".key"):
        shutil.copyfile(f"{notary.ledger_path}{suffix}", f"{notary.root / 'fork.db'}{suffix}")
    notary.notarize_file(key, b"two", name="two.bin", job_id="j2")
    _follow(notary)
    fork = Notary(notary.root / "forker", ledger_url=(notary.root / "fork.db").as_uri())
    fork.root.mkdir(exist_ok=True)
    fork.run("notarize", str(notary.root / "two.bin"), "--job-id", "forged", "--key", str(key))
    fork.run("notarize", str(notary.root / "app.bin"), "--job-id", "forged2", "--key", str(key))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{notary.ledger_path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(notary.root / "fork.db", notary.ledger_path)
    events = _follow(notary, expect=3)
    assert events[-1]["event"] == "tampering", events


def test_key_index_that_lost_a_node_is_tampering(notary: Notary) -> None:
    key = notary.key()
    notary.notarize_file(key, b"one", job_id="j1")
    _follow(notary)
    notary.notarize_file(key, b"two", name="two.bin", job_id="j2")
    with sqlite3.connect(notary.ledger_path) as db:
        assert db.execute("DELETE FROM map_nodes WHERE node IN (SELECT node FROM map_nodes LIMIT 3)").rowcount == 3
    events = _follow(notary, expect=3)
    assert events[-1]["event"] == "tampering" and "tx" not in [e["event"] for e in events], events


def test_record_that_does_not_open_is_a_finding_and_exit_3(notary: Notary) -> None:
    key = notary.key()
    _, d = notary.notarize_file(key, b"one", job_id="j1")
    _follow(notary)
    ledger = EmbeddedLedger.open(notary.ledger_url, trust=None)
    ledger.write({records.subject_key(d, "sha256:" + "ab" * 32): b"not an envelope"})
    ledger.close()
    events = _follow(notary, expect=3)
    assert [e["event"] for e in events] == ["tx", "finding", "head"], events
    assert _follow(notary) == [events[-1]], "reported once; the cursor moved past it"


def test_unreachable_ledger_is_exit_4_with_a_line(notary: Notary, tmp_path: Path) -> None:
    gone = Notary(tmp_path / "gone", ledger_url="immudb://immudb@127.0.0.1:9/defaultdb")
    gone.root.mkdir(exist_ok=True)
    gone.env["NOTARY_IMMUDB_PASSWORD"] = "immudb"
    result = gone.run("audit", "follow", "--once", "--state", str(tmp_path / "m"), expect=4)
    assert _events(result.out)[-1]["event"] == "unavailable"
