"""Which ledger lives at a path: pinned in the trust store the first time a client opens it.

Trusted states are kept per ledger identity (its key). Without a pin per *path*, a ledger file deleted and
replaced by a fresh one (a new key) would look like a first use, and be trusted anew. So the first ledger a
client meets at a path is pinned, and any other ledger there later, or none, is a RollbackError (exit 3).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from notary import merkle
from notary.errors import RollbackError
from notary.ledger.embedded import _store as store
from notary.ledger.embedded._codec import ledger_id_for
from notary.ledger.trust import TrustedState, TrustStore

Identity = tuple[int, int]  # (st_dev, st_ino) of the file an open connection reads


def location_id(path: Path) -> str:
    return f"location:{path.as_uri()}"


def pinned(trust: TrustStore, path: Path) -> TrustedState | None:
    """The pin of path, if this client has met a ledger there."""
    return trust.load(location_id(path))


def replaced(trust: TrustStore, path: Path, pin: TrustedState | None, now_id: str | None) -> RollbackError:
    was = pin.extra.get("ledger_id", "?") if pin is not None else "the ledger it opened"
    now = f"now holds {now_id}" if now_id else "is gone"
    return RollbackError(
        f"ledger at {path} was replaced: this client trusts {was} there, the file {now}",
        hint=f"if the replacement is intended, remove {trust.path_for(location_id(path))}",
    )


def gone(trust: TrustStore, path: Path, pin: TrustedState | None) -> RollbackError:
    """No ledger file at path where one was met: deleted, or a directory or something else in its place."""
    return replaced(trust, path, pin, None if not path.exists() else "something else")


def pin(trust: TrustStore, path: Path, existing: TrustedState | None, ledger_id: str, ledger_key: str) -> None:
    """Pin ledger_id at path on first contact; refuse any other ledger where one is pinned."""
    if existing is None:
        trust.save(TrustedState(
            ledger_id=location_id(path), tree_size=0, root_hash=merkle.EMPTY_ROOT.hex(), tx=0,
            ledger_key=ledger_key, extra={"ledger_id": ledger_id, "path": str(path)},
        ))
    elif existing.extra.get("ledger_id") != ledger_id:
        raise replaced(trust, path, existing, ledger_id)


def identity(path: Path) -> Identity | None:
    """Which file is at path now (None: nothing, or not a regular file)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def reopen(trust: TrustStore, path: Path, public_raw: bytes) -> tuple[sqlite3.Connection, Identity]:
    """A connection to the file now at path, which must hold the same ledger (the same key).

    An open SQLite handle keeps reading a file that was moved away or deleted, and a resident gate holds its
    handle for days: so readers compare the file at path with the one they read, and a file gone, or another
    ledger in its place, is a RollbackError (exit 3) there too, as it is for a one-shot open. A copy of the
    same ledger (restored, synced) is read on, still checked against the trusted state: an older copy is a
    rollback by the usual proofs."""
    pin = pinned(trust, path)
    if identity(path) is None:
        raise gone(trust, path, pin)
    conn = store.connect(path, create=False)
    try:
        now_raw, _, _ = store.load_or_create(conn, path, False)
        if now_raw != public_raw:
            raise replaced(trust, path, pin, ledger_id_for(now_raw) if now_raw else "nothing (it is empty)")
        now = identity(path)
        if now is None:
            raise replaced(trust, path, pin, None)
    except BaseException:
        conn.close()
        raise
    return conn, now
