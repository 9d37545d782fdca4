"""Completeness on the embedded ledger: the signed key index makes a hidden, renamed or deleted record an
integrity error (exit 3) on every read path, through the real CLI and the gate; v1 ledgers upgrade whole."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from notary.errors import ProofError
from notary.ledger.embedded import EmbeddedLedger
from notary.ledger.trust import TrustStore
from notary.sources.base import Subject
from tests.support.cli import Notary
from tests.support.runtimes import GateWorld

FIXTURE = Path(__file__).parent / "fixtures" / "ledger-v1"
TOOL = "sha256:8419ff13897cbe37259aafcdf99caa54532b826445935be0fcb71456525ebc26"  # revoked in the fixture
APP = "sha256:4be899fcc231fd127a47cb11e09cd477866200e166056a147882be4aa4fda744"  # notarized twice


def _sql(db: Path, statement: str) -> int:
    con = sqlite3.connect(db)
    try:
        changed = con.execute(statement).rowcount
        con.commit()
        return changed
    finally:
        con.close()


@pytest.fixture
def revoked(tmp_path: Path) -> tuple[Notary, Path, Path, str]:
    """A file notarized, then revoked: verify refuses it (exit 1)."""
    notary = Notary(tmp_path)
    key = notary.key()
    artifact, digest = notary.notarize_file(key, b"the release\n")
    notary.run("revoke", digest, "--reason", "CVE-2026-0001", "--key", str(key))
    notary.run("verify", str(artifact), "--key", f"{key}.pub", expect=1)
    return notary, key, artifact, digest


def _every_read_is_exit_3(notary: Notary, key: Path, artifact: Path, digest: str) -> None:
    before = notary.trusted_state()
    for args in (("verify", str(artifact), "--key", f"{key}.pub"),
                 ("history", digest),
                 ("get", digest, "--key", f"{key}.pub"),
                 ("get", digest, "--key", f"{key}.pub", "--at-tx", "1")):
        result = notary.run(*args, expect=None)
        assert result.code == 3, (args, result.code, result.err)
        assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err, result.err
    assert notary.trusted_state() == before


def test_deleted_revocation_is_an_integrity_error(revoked: tuple[Notary, Path, Path, str]) -> None:
    notary, key, artifact, digest = revoked
    assert _sql(notary.ledger_path, f"DELETE FROM entries WHERE key LIKE 'subject/{digest}/%' AND revision = 2") == 1
    _every_read_is_exit_3(notary, key, artifact, digest)


def test_renamed_key_is_an_integrity_error(revoked: tuple[Notary, Path, Path, str]) -> None:
    notary, key, artifact, digest = revoked
    other = "sha256:" + "0" * 64
    assert _sql(notary.ledger_path, f"UPDATE entries SET key = replace(key, '{digest}', '{other}') "
                                    f"WHERE key LIKE 'subject/{digest}/%' AND revision = 2") == 1
    _every_read_is_exit_3(notary, key, artifact, digest)
    result = notary.run("history", other, expect=3)  # the renamed row cannot pass as another key's record
    assert "never written" in result.err


def test_deleted_job_index_is_an_integrity_error(revoked: tuple[Notary, Path, Path, str]) -> None:
    notary, _, _, _ = revoked
    assert _sql(notary.ledger_path, "DELETE FROM entries WHERE key = 'job/local/j1'") == 1
    result = notary.run("lookup", "--job-id", "j1", expect=3)
    assert "a record was deleted" in result.err


def test_deleted_only_record_is_an_integrity_error_not_absence(tmp_path: Path) -> None:
    notary = Notary(tmp_path)
    key = notary.key()
    artifact, digest = notary.notarize_file(key, b"the release\n")
    assert _sql(notary.ledger_path, f"DELETE FROM entries WHERE key LIKE 'subject/{digest}/%'") == 1
    result = notary.run("verify", str(artifact), "--key", f"{key}.pub", expect=3)
    assert "a record was deleted" in result.err
    notary.run("get", digest, "--key", f"{key}.pub", "--at-tx", "1", expect=3)


def test_never_written_key_is_proven_absent(tmp_path: Path) -> None:
    notary = Notary(tmp_path)
    key = notary.key()
    (tmp_path / "a.bin").write_bytes(b"a")
    (tmp_path / "b.bin").write_bytes(b"b")
    notary.run("notarize", str(tmp_path / "a.bin"), "--job-id", "j1", "--key", str(key))
    result = notary.run("verify", str(tmp_path / "b.bin"), "--key", f"{key}.pub", expect=1)
    assert "not notarized" in result.err


def test_gate_refuses_when_the_revocation_is_deleted(tmp_path: Path) -> None:
    world = GateWorld(tmp_path / "world")
    digest = "sha256:" + "ab" * 32
    world.notarize(Subject(digest, "registry.example/app:1", "oci-manifest"))
    world.revoke(digest)
    assert world.gate_check(digest).returncode == 1
    assert _sql(world.ledger_path, f"DELETE FROM entries WHERE key LIKE 'subject/{digest}/%' AND revision = 2") == 1
    result = world.gate_check(digest)
    assert result.returncode == 3, result.stderr
    assert world.decisions()[-1]["status"] == "integrity"


def test_altered_node_fails_audit(tmp_path: Path) -> None:
    """Audit compares every stored hash with a recomputation: log subtrees and key index nodes."""
    cases = {
        "UPDATE nodes SET hash = zeroblob(32) WHERE id = 1": "stored log subtree .* is altered",
        "DELETE FROM nodes WHERE id = 2": "stored log subtree .* is missing",
        "INSERT INTO nodes (id, hash) VALUES (999999, zeroblob(32))": "extra rows",
        "DROP TABLE nodes": "damaged or not a notary ledger",
    }
    for i, (statement, match) in enumerate(cases.items()):
        root = tmp_path / f"case{i}"
        with EmbeddedLedger.open((root / "l.db").as_uri(), trust=TrustStore(root / "state")) as ledger:
            for n in range(5):
                ledger.write({f"k{n}": b"v", "shared": b"%d" % n})
        _sql(root / "l.db", statement)
        with pytest.raises(Exception, match=match) as info, EmbeddedLedger.open(
                (root / "l.db").as_uri(), trust=TrustStore(root / "state"), create=False) as ledger:
            ledger.audit()
        assert getattr(info.value, "exit_code", None) == 3


@pytest.mark.parametrize("statement, match", [
    ("UPDATE map_nodes SET hash = zeroblob(32) WHERE node = (SELECT max(node) FROM map_nodes)", "altered"),
    ("DELETE FROM map_nodes WHERE node = (SELECT max(node) FROM map_nodes)", "missing"),
    ("INSERT INTO map_nodes (node, hash, leaf) VALUES (123456789, zeroblob(32), NULL)", "not part of the index"),
])
def test_altered_key_index_fails_audit(tmp_path: Path, statement: str, match: str) -> None:
    with EmbeddedLedger.open((tmp_path / "l.db").as_uri(), trust=TrustStore(tmp_path / "state")) as ledger:
        for n in range(20):
            ledger.write({f"k{n}": b"v"})
        assert ledger.audit().index_nodes_checked >= 20
    _sql(tmp_path / "l.db", statement)
    with pytest.raises(ProofError, match=match), EmbeddedLedger.open(
            (tmp_path / "l.db").as_uri(), trust=TrustStore(tmp_path / "state"), create=False) as ledger:
        ledger.audit()


def test_edited_key_index_node_cannot_steer_a_write(tmp_path: Path) -> None:
    """The writer takes revisions from the index only after checking it against the signed root."""
    with EmbeddedLedger.open((tmp_path / "l.db").as_uri(), trust=TrustStore(tmp_path / "state")) as ledger:
        for n in range(8):
            ledger.write({f"k{n}": b"v"})
    _sql(tmp_path / "l.db", "UPDATE map_nodes SET hash = zeroblob(32) WHERE node = 1")
    with pytest.raises(ProofError), EmbeddedLedger.open(
            (tmp_path / "l.db").as_uri(), trust=TrustStore(tmp_path / "state"), create=False) as ledger:
        ledger.write({"k1": b"attacker"})
    with sqlite3.connect(tmp_path / "l.db") as con:
        assert con.execute("SELECT count(*) FROM entries").fetchone()[0] == 8


def test_key_index_stripped_from_the_head_is_a_downgrade(tmp_path: Path) -> None:
    url = (tmp_path / "l.db").as_uri()
    with EmbeddedLedger.open(url, trust=TrustStore(tmp_path / "state")) as ledger:
        ledger.write({"k": b"v"})
        ledger.get("k")
    _sql(tmp_path / "l.db", "UPDATE meta SET value = 'notary.ledger/v1' WHERE name = 'format'")
    with pytest.raises(Exception, match="signed|key index") as info, EmbeddedLedger.open(
            url, trust=TrustStore(tmp_path / "state"), create=False) as ledger:
        ledger.get("k")
    assert getattr(info.value, "exit_code", None) == 3


# ------------------------------------------------------------------------------------------ v1 ledgers


def _v1_copy(tmp_path: Path) -> Path:
    root = tmp_path / "v1"
    shutil.copytree(FIXTURE, root)
    (root / "ledger.db.key").chmod(0o600)
    return root


def test_v1_ledger_opens_and_reads_with_a_notice(tmp_path: Path) -> None:
    root = _v1_copy(tmp_path)
    notary = Notary(root)
    result = notary.run("verify", "tool.bin", "--key", "ci.key.pub", expect=1)
    assert "revoked" in result.err and "format v1" in result.err
    notary.run("verify", "app.bin", "--key", "ci.key.pub")
    info = notary.run("--json", "ledger", "info").json
    assert info["details"]["format"] == "notary.ledger/v1" and info["details"]["key_index"] is False


def test_v1_ledger_upgrades_without_loss(tmp_path: Path) -> None:
    root = _v1_copy(tmp_path)
    reader = Notary(root, state_dir=root / "reader-state")  # trusts the v1 head before the upgrade
    reader.run("verify", "app.bin", "--key", "ci.key.pub")
    before = reader.run("--json", "history", TOOL).json
    with sqlite3.connect(root / "ledger.db") as con:
        rows_before = con.execute("SELECT leaf, tx, key, revision, value FROM entries ORDER BY leaf").fetchall()
        txs_before = con.execute("SELECT tx, time_us, tree_size, root FROM txs ORDER BY tx").fetchall()

    admin = Notary(root, state_dir=root / "admin-state")
    result = admin.run("ledger", "upgrade")
    assert "upgraded to notary.ledger/v2" in result.out
    assert "already" in admin.run("ledger", "upgrade").out

    with sqlite3.connect(root / "ledger.db") as con:
        assert con.execute("SELECT leaf, tx, key, revision, value FROM entries ORDER BY leaf").fetchall() == rows_before
        assert con.execute("SELECT tx, time_us, tree_size, root FROM txs ORDER BY tx").fetchall() == txs_before
    # the reader moves forward from its v1 trusted state (same size, same root, now with the index root)
    after = reader.run("--json", "history", TOOL).json
    assert [(v["revision"], v["status"]) for s in after["subjects"] for v in s["versions"]] == \
        [(v["revision"], v["status"]) for s in before["subjects"] for v in s["versions"]] == \
        [(1, "notarized"), (2, "notarized"), (3, "revoked")]
    reader.run("verify", "tool.bin", "--key", "ci.key.pub", expect=1)
    reader.run("verify", "app.bin", "--key", "ci.key.pub")
    info = reader.run("--json", "ledger", "info").json
    assert info["details"]["key_index"] is True and info["head"]["tree_size"] == txs_before[-1][2]
    admin.run("ledger", "audit")
    # and now the fixture's revocation cannot be hidden any more
    _sql(root / "ledger.db", f"DELETE FROM entries WHERE key LIKE 'subject/{TOOL}/%' AND revision = 2")
    reader.run("verify", "tool.bin", "--key", "ci.key.pub", expect=3)


def test_first_write_upgrades_a_v1_ledger_announced(tmp_path: Path) -> None:
    root = _v1_copy(tmp_path)
    notary = Notary(root)
    (root / "new.bin").write_bytes(b"new")
    result = notary.run("notarize", "new.bin", "--job-id", "104", "--key", "ci.key")
    assert "upgraded ledger" in result.err
    notary.run("verify", "new.bin", "--key", "ci.key.pub")
    notary.run("verify", "tool.bin", "--key", "ci.key.pub", expect=1)
    notary.run("ledger", "audit")


def test_v1_ledger_with_a_deleted_row_refuses_to_upgrade(tmp_path: Path) -> None:
    """An upgrade signs an index over the log: it must never bake an omission into a signature."""
    root = _v1_copy(tmp_path)
    _sql(root / "ledger.db", f"DELETE FROM entries WHERE key LIKE 'subject/{TOOL}/%' AND revision = 2")
    notary = Notary(root)
    result = notary.run("ledger", "upgrade", expect=3)
    assert "missing" in result.err
    with sqlite3.connect(root / "ledger.db") as con:
        assert con.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()[0] == "notary.ledger/v1"
