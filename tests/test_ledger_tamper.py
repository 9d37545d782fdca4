"""Attacks on the embedded ledger file. Each must fail with the exact integrity error (exit 3) and must leave
the client's trusted state byte-for-byte unchanged: a failed check never moves trust."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from notary.errors import IntegrityError, ProofError, RollbackError, TrustStoreError
from notary.ledger.embedded import EmbeddedLedger
from notary.ledger.embedded._tree import node_id
from notary.ledger.trust import TrustStore
from tests.support.local_ledger import ledger_path, open_local, sql, trust_bytes, trust_file


def _ledger_with_history(tmp_path: Path, txs: int = 5) -> bytes:
    """A ledger of `txs` transactions (keys k and other/i), trusted at its head; returns the trust file."""
    with open_local(tmp_path) as ledger:
        for i in range(txs):
            ledger.write({"k": f"v{i}".encode(), f"other/{i}": b"x"})
        ledger.get("k")
        return trust_bytes(ledger)


def _refused(tmp_path: Path, error: type[IntegrityError], match: str, *, op: str = "get") -> IntegrityError:
    """Reopen as a fresh process would, run op, and check the error type, exit code and untouched trust."""
    before = {p.name: p.read_bytes() for p in (tmp_path / "state").glob("*.json")}
    with pytest.raises(error, match=match) as info:
        ledger = open_local(tmp_path, create=False)
        with ledger:
            if op == "get":
                ledger.get("k")
            elif op == "history":
                ledger.history("k")
            elif op == "write":
                ledger.write({"k": b"attacker-chosen"})
            elif op == "audit":
                ledger.audit()
            else:
                ledger.info()
    assert type(info.value) is error
    assert info.value.exit_code == 3
    assert "\n" not in info.value.one_line()
    after = {p.name: p.read_bytes() for p in (tmp_path / "state").glob("*.json")}
    assert after == before, "a failed verification must not move the trusted state"
    return info.value


def test_edited_entry_value_is_refused(tmp_path: Path) -> None:
    _ledger_with_history(tmp_path)
    sql(ledger_path(tmp_path), "UPDATE entries SET value = ? WHERE key = 'k' AND revision = 5", b"evil")
    _refused(tmp_path, ProofError, "entry 'k' revision 5 .* not in the signed tree")


def test_edited_old_version_is_refused_in_history(tmp_path: Path) -> None:
    _ledger_with_history(tmp_path)
    sql(ledger_path(tmp_path), "UPDATE entries SET value = ? WHERE key = 'k' AND revision = 2", b"evil")
    _refused(tmp_path, ProofError, "revision 2", op="history")


def test_entry_moved_to_another_key_is_refused(tmp_path: Path) -> None:
    _ledger_with_history(tmp_path)
    sql(ledger_path(tmp_path), "UPDATE entries SET key = 'k', revision = 6 WHERE key = 'other/4'")
    _refused(tmp_path, ProofError, "revision 6 .* the signed key index does not know")
    _refused(tmp_path, ProofError, "not in the signed tree", op="history")


def test_deleted_middle_version_is_refused_in_history(tmp_path: Path) -> None:
    _ledger_with_history(tmp_path)
    sql(ledger_path(tmp_path), "DELETE FROM entries WHERE key = 'k' AND revision = 3")
    _refused(tmp_path, ProofError, "has 5 versions, the ledger holds revisions \\[1, 2, 4, 5\\]", op="history")


def test_truncated_ledger_tail_is_refused_as_rollback(tmp_path: Path) -> None:
    _ledger_with_history(tmp_path)
    path = ledger_path(tmp_path)
    sql(path, "DELETE FROM txs WHERE tx > 2")
    sql(path, "DELETE FROM entries WHERE tx > 2")
    _refused(tmp_path, RollbackError, "older than size 10 .* rolled back or truncated")
    _refused(tmp_path, RollbackError, "rolled back", op="info")


def test_rollback_of_ledger_file_to_an_older_copy_is_refused(tmp_path: Path) -> None:
    path = ledger_path(tmp_path)
    _ledger_with_history(tmp_path, txs=2)  # closed: the WAL is checkpointed into the file
    shutil.copyfile(path, tmp_path / "old-copy.db")
    with open_local(tmp_path, create=False) as ledger:
        ledger.write({"k": b"revoked"})
        ledger.get("k")
    shutil.copyfile(tmp_path / "old-copy.db", path)
    _refused(tmp_path, RollbackError, "older than size 5")


def test_writing_onto_a_rolled_back_ledger_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    path = ledger_path(tmp_path)
    _ledger_with_history(tmp_path, txs=2)
    shutil.copyfile(path, tmp_path / "old-copy.db")
    with open_local(tmp_path, create=False) as ledger:
        ledger.write({"k": b"revoked"})
    shutil.copyfile(tmp_path / "old-copy.db", path)
    _refused(tmp_path, RollbackError, "rolled back", op="write")
    other = EmbeddedLedger.open(path.as_uri(), trust=TrustStore(tmp_path / "fresh"), create=False)
    assert other.info().head.tree_size == 4


def test_fork_signed_with_the_real_ledger_key_is_refused(tmp_path: Path) -> None:
    """Even someone holding the ledger's key cannot rewrite what a client already trusted."""
    path = ledger_path(tmp_path)
    _ledger_with_history(tmp_path, txs=2)
    shutil.copyfile(path, tmp_path / "old.db")
    with open_local(tmp_path, create=False) as ledger:
        ledger.write({"k": b"revoked"})
        ledger.get("k")  # the client now trusts size 5, with the revocation
    shutil.copyfile(tmp_path / "old.db", path)
    attacker = EmbeddedLedger.open(path.as_uri(), trust=TrustStore(tmp_path / "attacker"), create=False)
    attacker.write({"k": b"notarized-again"})  # same size 5, other content, validly signed
    attacker.close()
    _refused(tmp_path, RollbackError, "forked")
    attacker = EmbeddedLedger.open(path.as_uri(), trust=TrustStore(tmp_path / "attacker"), create=False)
    attacker.write({"padding": b"x"})  # grow past the trusted size: now the consistency proof must fail
    attacker.close()
    _refused(tmp_path, ProofError, "does not extend the trusted state at size 5")


def test_different_ledger_at_the_same_path_is_refused(tmp_path: Path) -> None:
    path = ledger_path(tmp_path)
    _ledger_with_history(tmp_path)
    os.unlink(path)
    os.unlink(f"{path}.key")
    # someone creates a brand-new ledger (new key) in its place, trusted by their own client
    EmbeddedLedger.open(path.as_uri(), trust=TrustStore(tmp_path / "attacker"), create=True).write({"k": b"evil"})
    error = _refused(tmp_path, RollbackError, "was replaced")
    assert "remove" in (error.hint or "")


def test_deleted_ledger_is_not_silently_recreated(tmp_path: Path) -> None:
    path = ledger_path(tmp_path)
    _ledger_with_history(tmp_path)
    os.unlink(path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "state").glob("*.json")}
    with pytest.raises(RollbackError, match="is gone"):
        open_local(tmp_path, create=True)
    assert not path.exists()
    assert {p.name: p.read_bytes() for p in (tmp_path / "state").glob("*.json")} == before


def test_edited_stored_node_hash_is_refused(tmp_path: Path) -> None:
    _ledger_with_history(tmp_path)
    with open_local(tmp_path, create=False) as ledger:
        leaf = ledger.get("k").proof["leaf_index"]  # type: ignore[union-attr]
    sql(ledger_path(tmp_path), "UPDATE nodes SET hash = ? WHERE id = ?", b"\x42" * 32, node_id(0, leaf ^ 1))
    _refused(tmp_path, ProofError, "not in the signed tree")


def test_edited_inner_node_breaks_consistency_for_a_client_behind(tmp_path: Path) -> None:
    with open_local(tmp_path) as ledger:
        for i in range(3):
            ledger.write({"k": f"v{i}".encode()})  # the client trusts size 3
    with EmbeddedLedger.open(ledger_path(tmp_path).as_uri(), trust=TrustStore(tmp_path / "w"), create=False) as w:
        for i in range(5):
            w.write({f"more/{i}": b"x"})  # size 8 now; the first client has not seen it
    # the consistency proof 3 -> 8 needs the subtree (level 1, index 0) = leaves 0..1
    sql(ledger_path(tmp_path), "UPDATE nodes SET hash = ? WHERE id = ?", b"\x13" * 32, node_id(1, 0))
    _refused(tmp_path, ProofError, "does not extend the trusted state at size 3", op="info")


def test_forged_head_signature_is_refused(tmp_path: Path) -> None:
    _ledger_with_history(tmp_path)
    sql(ledger_path(tmp_path), "UPDATE txs SET signature = ? WHERE tx = 5", os.urandom(64))
    _refused(tmp_path, ProofError, "not signed by the ledger key")


def test_head_root_swapped_for_another_is_refused(tmp_path: Path) -> None:
    _ledger_with_history(tmp_path)
    sql(ledger_path(tmp_path), "UPDATE txs SET root = (SELECT root FROM txs WHERE tx = 4) WHERE tx = 5")
    _refused(tmp_path, ProofError, "not signed by the ledger key")


def test_replaced_ledger_public_key_is_refused(tmp_path: Path) -> None:
    _ledger_with_history(tmp_path)
    sql(ledger_path(tmp_path), "UPDATE meta SET value = ? WHERE name = 'public_key'", os.urandom(32))
    _refused(tmp_path, RollbackError, "was replaced")


def test_corrupt_trust_store_file_fails_closed(tmp_path: Path) -> None:
    _ledger_with_history(tmp_path)
    with open_local(tmp_path, create=False) as ledger:
        path = trust_file(ledger)
    path.write_bytes(b'{"format": "notary.trusted-state/v1", "tree_size": "many"')
    _refused(tmp_path, TrustStoreError, "corrupt")
    assert path.read_bytes() == b'{"format": "notary.trusted-state/v1", "tree_size": "many"'


def test_garbage_ledger_file_is_an_integrity_error(tmp_path: Path) -> None:
    path = ledger_path(tmp_path)
    _ledger_with_history(tmp_path)
    path.write_bytes(os.urandom(8192))
    with pytest.raises(IntegrityError) as info:
        open_local(tmp_path, create=False).get("k")
    assert info.value.exit_code == 3


def test_ledger_with_dropped_table_is_an_integrity_error(tmp_path: Path) -> None:
    _ledger_with_history(tmp_path)
    sql(ledger_path(tmp_path), "DROP TABLE nodes")
    _refused(tmp_path, IntegrityError, "damaged or not a notary ledger")


def test_ledger_file_emptied_is_refused_as_replaced(tmp_path: Path) -> None:
    _ledger_with_history(tmp_path)
    ledger_path(tmp_path).write_bytes(b"")
    _refused(tmp_path, RollbackError, "was replaced: .* now holds nothing")


def test_deleted_newest_version_is_refused_by_every_read(tmp_path: Path) -> None:
    """Omission of the newest version: the signed key index names it, so its absence is tampering."""
    _ledger_with_history(tmp_path)
    sql(ledger_path(tmp_path), "DELETE FROM entries WHERE key = 'k' AND revision = 5")
    _refused(tmp_path, ProofError, "revision 5 .* has no such entry: a record was deleted")
    _refused(tmp_path, ProofError, "has 5 versions", op="history")
    _refused(tmp_path, ProofError, "entry at leaf 8 .* is missing", op="audit")


@pytest.mark.parametrize(
    "statement, match",
    [
        ("UPDATE entries SET value = x'00' WHERE leaf = 3", "root of transaction 2 does not match"),
        ("UPDATE entries SET revision = 7 WHERE leaf = 4", "revision 7"),
        ("UPDATE txs SET time_us = time_us - 1000000000 WHERE tx = 3", "older than transaction 2"),
        ("DELETE FROM txs WHERE tx = 2", "transaction 2 is missing"),
    ],
)
def test_full_audit_finds_edits_anywhere(tmp_path: Path, statement: str, match: str) -> None:
    _ledger_with_history(tmp_path)
    sql(ledger_path(tmp_path), statement)
    _refused(tmp_path, ProofError, match, op="audit")


def test_hidden_transaction_cannot_shift_a_time_lookup(tmp_path: Path) -> None:
    _ledger_with_history(tmp_path)
    sql(ledger_path(tmp_path), "DELETE FROM txs WHERE tx = 4")
    before = {p.name: p.read_bytes() for p in (tmp_path / "state").glob("*.json")}
    with open_local(tmp_path, create=False) as ledger:
        third = ledger.get("other/2")  # written in tx 3
        assert third is not None and third.tx == 3 and third.time is not None
        with pytest.raises(ProofError, match="revision 4 .* belongs to a transaction that is missing"):
            ledger.get("k", at_tx=3)  # the version after tx 3 must be proven later: its tx is gone
        with pytest.raises(ProofError, match="transaction 4 is missing"):
            ledger.tx_at_time(third.time)
    assert {p.name: p.read_bytes() for p in (tmp_path / "state").glob("*.json")} == before
