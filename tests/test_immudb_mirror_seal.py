"""The mirror's seal (notary/ledger/immudb/_seal.py): a warm open re-hashes only what was appended, and no way of
changing the file behind notary's back keeps the seal, against a real immudb.

Each attack edits the mirror the way someone with the file (not the trusted state) would, and must meet a full
re-hash: TrustStoreError (exit 3), the trusted state untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from notary.errors import TrustStoreError
from notary.ledger import open_immudb
from notary.ledger.immudb import ImmudbLedger
from notary.ledger.immudb._seal import seal_path
from notary.ledger.immudb.mirror import Mirror, mirror_path
from notary.ledger.trust import TrustStore
from tests.support.immudb_fixtures import fresh_database  # noqa: F401 - fixtures "url"


def _mirrored(url: str, store: TrustStore) -> ImmudbLedger:
    return open_immudb(url, trust=store, mirror=True)


def _mirror(ledger: ImmudbLedger) -> Mirror:
    mirror: Mirror = ledger.mirror  # type: ignore[attr-defined]
    return mirror


def _notarized_and_revoked(url: str, store: TrustStore) -> tuple[Path, int]:
    ledger = _mirrored(url, store)
    ledger.write_batch([{f"subject/{i}": b"notarized", f"job/{i}": b"{}"} for i in range(20)])
    revocation = ledger.write({"subject/3": b"revoked"}).tx
    ledger.write({"job/last": b"{}"})
    assert ledger.get("subject/3").value == b"revoked"  # type: ignore[union-attr]
    path = mirror_path(store, ledger.ledger_id)
    ledger.close()
    return path, revocation


def test_warm_open_rehashes_only_what_was_appended(url: str, tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "state")
    path, _ = _notarized_and_revoked(url, store)
    assert seal_path(path).stat().st_mode & 0o777 == 0o600

    warm = _mirrored(url, store)
    assert _mirror(warm).rehashed == 0 and _mirror(warm).last_tx == 22, "a sealed, untouched file is not re-hashed"
    assert warm.get("subject/3").value == b"revoked"  # type: ignore[union-attr]

    # another process on the same state directory appends two transactions; the resident one re-hashes just them
    other = _mirrored(url, store)
    other.write({"subject/0": b"revoked"})
    other.write({"subject/1": b"revoked"})
    assert other.get("subject/1").value == b"revoked"  # type: ignore[union-attr]
    assert warm.get("subject/0").value == b"revoked"  # type: ignore[union-attr]
    assert _mirror(warm).rehashed == 2 and _mirror(warm).last_tx == 24
    for ledger in (warm, other):
        ledger.close()

    assert _mirror(reopened := _mirrored(url, store)).rehashed == 0
    sealed_count = _mirror(reopened).entries
    _mirror(reopened).verify()
    assert _mirror(reopened).rehashed == 24 and _mirror(reopened).entries == sealed_count
    reopened.close()


def test_mirror_edited_with_its_times_restored_is_caught(url: str, tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "state")
    path, revocation = _notarized_and_revoked(url, store)
    trusted = store.path_for(open_immudb(url, trust=store).ledger_id).read_bytes()
    before = path.stat()
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM entries WHERE tx = ?", (revocation,))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime back; ctime cannot be set back
    assert path.stat().st_size == before.st_size
    with pytest.raises(TrustStoreError, match="mirror .* was altered"):
        _mirrored(url, store)
    assert store.path_for(open_immudb(url, trust=store).ledger_id).read_bytes() == trusted


def test_restored_old_seal_does_not_cover_an_edit(url: str, tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "state")
    path, revocation = _notarized_and_revoked(url, store)
    old_seal = seal_path(path).read_bytes()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE entries SET hvalue = zeroblob(32) WHERE tx = ?", (revocation,))
    seal_path(path).write_bytes(old_seal)  # the seal of the untouched file, put back
    with pytest.raises(TrustStoreError, match="mirror .* was altered"):
        _mirrored(url, store)


def test_mirror_swapped_for_an_edited_copy_with_a_forged_seal_position_is_caught(url: str, tmp_path: Path) -> None:
    """A copy of the file (other inode) with the seal pointing at it as of an earlier transaction: the seal
    names the stamp of the file it was written for, and a copy never has it."""
    store = TrustStore(tmp_path / "state")
    path, revocation = _notarized_and_revoked(url, store)
    edited = tmp_path / "edited.db"
    shutil.copyfile(path, edited)
    with sqlite3.connect(edited) as db:
        db.execute("DELETE FROM entries WHERE tx = ?", (revocation,))
    os.replace(edited, path)
    seal = json.loads(seal_path(path).read_text())
    seal["tx"], seal["entries"] = 0, 0
    seal["alh"] = "00" * 32
    seal_path(path).write_text(json.dumps(seal))
    with pytest.raises(TrustStoreError, match="mirror .* was altered"):
        _mirrored(url, store)


def test_foreign_or_corrupt_seal_means_a_full_rehash(url: str, tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "state")
    path, _ = _notarized_and_revoked(url, store)
    for forged in (b"\x00not json", b"{}", json.dumps({"format": "notary.immudb-mirror-seal/v1"}).encode(),
                   json.dumps({**json.loads(seal_path(path).read_text()), "ledger_id": "immudb:other/db"}).encode(),
                   b"[" * 100_000):
        seal_path(path).write_bytes(forged)
        ledger = _mirrored(url, store)
        assert _mirror(ledger).rehashed == 22, forged[:40]
        ledger.close()
    ledger = _mirrored(url, store)
    assert _mirror(ledger).rehashed == 0, "the full re-hash sealed the file again"
    ledger.close()


def test_audit_rehashes_everything_whatever_the_seal(url: str, tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "state")
    _notarized_and_revoked(url, store)
    ledger = _mirrored(url, store)
    assert _mirror(ledger).rehashed == 0
    report = ledger.audit()  # type: ignore[attr-defined]
    assert _mirror(ledger).rehashed == 22 and report.replayed == 22
    ledger.close()


def test_mirror_left_in_wal_mode_by_a_running_older_process_is_rehashed_not_waited_for(url: str,
                                                                                       tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "state")
    path, _ = _notarized_and_revoked(url, store)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
    older = sqlite3.connect(path)  # an older notary's resident connection keeps the file in WAL mode
    older.execute("SELECT count(*) FROM txs").fetchone()
    try:
        ledger = _mirrored(url, store)
        assert not _mirror(ledger)._sealable, "the switch would have waited for the older process"
        assert _mirror(ledger).rehashed == 22 and ledger.get("subject/3").value == b"revoked"  # type: ignore[union-attr]
        ledger.close()
    finally:
        older.close()
    ledger = _mirrored(url, store)  # alone now: switched to the rollback journal, sealed
    ledger.close()
    assert _mirror(again := _mirrored(url, store)).rehashed == 0
    again.close()
