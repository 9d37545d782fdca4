"""Attacks on the ledger file under a reader that stays open (a resident gate holds its ledger for days).

An open SQLite handle keeps reading a file that was moved away or deleted: without a check, a hook server with
`fail = "closed"` kept allowing what the file it once read said, while a one-shot `verify` said exit 3. Every
read and write now compares the file at the path with the one the handle reads."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from notary.errors import RollbackError
from notary.ledger.embedded import EmbeddedLedger
from tests.support.local_ledger import ledger_path, open_local


def _resident(tmp_path: Path) -> EmbeddedLedger:
    ledger = open_local(tmp_path)
    ledger.write({"k": b"v1"})
    assert ledger.get("k") is not None
    return ledger


def _snapshot_copy(path: Path, dest: Path) -> None:
    """A consistent copy of a live WAL-mode ledger (what a backup or a sync would leave)."""
    src, out = sqlite3.connect(path), sqlite3.connect(dest)
    try:
        src.backup(out)
    finally:
        src.close()
        out.close()


def _swap_in(src: Path, path: Path) -> None:
    """Put src in place of the ledger file, with its own write-ahead log (none): the whole file set, as an
    attacker or a restore would; a stale -wal left next to a new file would be read as part of it."""
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.replace(src, path)


def _refused(ledger: EmbeddedLedger, match: str) -> None:
    for read in (lambda: ledger.get("k"), lambda: ledger.history("k"), ledger.info,
                 lambda: ledger.write({"k": b"after"})):
        with pytest.raises(RollbackError, match=match) as info:
            read()
        assert info.value.exit_code == 3


def test_ledger_moved_away_under_a_resident_reader_is_an_integrity_error(tmp_path: Path) -> None:
    with _resident(tmp_path) as ledger:
        path = ledger_path(tmp_path)
        path.rename(path.with_name("elsewhere.db"))
        _refused(ledger, "was replaced: .* the file is gone")
        assert not path.exists(), "a refused write must not recreate the file"


def test_ledger_deleted_under_a_resident_reader_is_an_integrity_error(tmp_path: Path) -> None:
    with _resident(tmp_path) as ledger:
        path = ledger_path(tmp_path)
        for p in path.parent.glob(path.name + "*"):
            p.unlink()
        _refused(ledger, "the file is gone")


def test_directory_put_in_place_of_a_resident_ledger_is_refused(tmp_path: Path) -> None:
    with _resident(tmp_path) as ledger:
        path = ledger_path(tmp_path)
        path.rename(path.with_name("elsewhere.db"))
        path.mkdir()
        _refused(ledger, "the file now holds something else")


def test_another_ledger_swapped_in_under_a_resident_reader_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other"
    with open_local(other, state=tmp_path / "other-state") as forged:
        forged.write({"k": b"attacker"})
    with _resident(tmp_path) as ledger:
        _swap_in(ledger_path(other), ledger_path(tmp_path))
        _refused(ledger, r"now holds file:sha256:")


def test_older_copy_of_the_same_ledger_swapped_in_is_a_rollback(tmp_path: Path) -> None:
    """The same key, an older file (a revocation written since is missing from it): the usual proofs catch it."""
    with _resident(tmp_path) as ledger:
        path = ledger_path(tmp_path)
        _snapshot_copy(path, tmp_path / "old.db")
        ledger.write({"k": b"revoked"})
        assert ledger.get("k").value == b"revoked"
        _swap_in(tmp_path / "old.db", path)
        with pytest.raises(RollbackError) as info:
            ledger.get("k")
        assert info.value.exit_code == 3


def test_current_copy_of_the_same_ledger_is_read_on(tmp_path: Path) -> None:
    """A restore or sync that puts the same ledger back (same key, consistent with trust) is not an attack."""
    with _resident(tmp_path) as ledger:
        path = ledger_path(tmp_path)
        _snapshot_copy(path, tmp_path / "copy.db")
        _swap_in(tmp_path / "copy.db", path)
        assert ledger.get("k").value == b"v1"
        ledger.write({"k": b"v2"})
    with open_local(tmp_path, create=False) as fresh:
        assert fresh.get("k").value == b"v2"


def test_moved_back_ledger_is_read_on(tmp_path: Path) -> None:
    with _resident(tmp_path) as ledger:
        path = ledger_path(tmp_path)
        moved = path.with_name("elsewhere.db")
        path.rename(moved)
        _refused(ledger, "is gone")
        shutil.move(moved, path)
        assert ledger.get("k").value == b"v1"
