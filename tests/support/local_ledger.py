"""Helpers for tests of the embedded ledger: real SQLite files under tmp_path, real trusted-state files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from notary.ledger.embedded import EmbeddedLedger
from notary.ledger.trust import TrustStore


def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "ledgers" / "ledger.db"


def open_local(tmp_path: Path, *, create: bool = True, state: Path | None = None) -> EmbeddedLedger:
    """The ledger under tmp_path, trusted through the per-test NOTARY_STATE_DIR unless state is given."""
    trust = TrustStore(state) if state is not None else TrustStore()
    return EmbeddedLedger.open(ledger_path(tmp_path).as_uri(), trust=trust, create=create)


def trust_file(ledger: EmbeddedLedger) -> Path:
    return ledger.trust.path_for(ledger.ledger_id)


def trust_bytes(ledger: EmbeddedLedger) -> bytes:
    return trust_file(ledger).read_bytes()


def sql(path: Path, statement: str, *args: object) -> None:
    """Edit the ledger file behind the library's back, as an attacker with write access would."""
    conn = sqlite3.connect(path)
    try:
        conn.execute(statement, args)
        conn.commit()
    finally:
        conn.close()
