"""The open SQLite file of an embedded ledger: its connection, kept on the file that is at its path now.

Everything else reads and writes through here, so the one check that matters for a long-lived handle is in
one place: an open SQLite handle keeps reading a file moved away or deleted, so every transaction first
compares the file at the path with the one the connection reads, and reopens (or refuses) through
_location.reopen when they differ.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from notary.errors import LedgerUnavailableError, UsageError
from notary.ledger.embedded import _location
from notary.ledger.embedded import _store as store
from notary.ledger.trust import TrustedState, TrustStore


def path_from_url(url: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise UsageError(f"not an embedded ledger URL: {url!r}", hint="use file:///absolute/path/ledger.db")
    raw = unquote(parts.path)
    if not raw.startswith("/") or raw.endswith("/"):
        raise UsageError(f"ledger URL {url!r} must name a file by absolute path", hint="file:///path/ledger.db")
    return Path(os.path.abspath(raw)).resolve()


class LedgerFile:
    """One ledger file and its connection, under the ledger's lock (shared with the trusted state's keeper,
    so a read snapshot and a trust update never interleave between threads)."""

    def __init__(self, path: Path, conn: sqlite3.Connection, trust: TrustStore, public_raw: bytes,
                 lock: threading.RLock) -> None:
        self.path = path
        self.trust = trust  # where the location pin lives: a reopen checks the file against it
        self.public_raw = public_raw  # the ledger's public key, as its meta table holds it
        self.lock = lock
        self._conn = conn
        self._identity = _location.identity(path)

    @classmethod
    def open(cls, path: Path, trust: TrustStore, pinned: TrustedState | None, *, create: bool,
             lock: threading.RLock) -> tuple[LedgerFile, bool]:
        """The file at path (created when create is set and nothing is pinned there): (the file, whether
        this open created it). A ledger pinned at path that is gone or empty is a RollbackError."""
        if pinned is not None and not path.is_file():
            # A ledger this client already trusted does not vanish by accident: deleted, or a directory or
            # something else put in its place, is tampering (exit 3), so a fail-open gate cannot be opened
            # by removing the file.
            raise _location.gone(trust, path, pinned)
        if not path.exists():
            if not create:
                raise LedgerUnavailableError(f"no ledger at {path}", hint="check --ledger / NOTARY_LEDGER; to create "
                                             "one there: notary ledger init (or notarize --create)")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerUnavailableError(f"cannot create ledger directory {path.parent}: {exc.strerror}") from exc
        conn = store.connect(path, create=create)
        try:
            public_raw, created, _ = store.load_or_create(conn, path, create and pinned is None)
            if public_raw is None:
                if pinned is not None:
                    raise _location.replaced(trust, path, pinned, "nothing (it is empty)")
                raise LedgerUnavailableError(f"no ledger at {path} (the file is empty)")
        except BaseException:
            conn.close()
            raise
        return cls(path, conn, trust, public_raw, lock), created

    def live(self) -> sqlite3.Connection:
        """The connection, as long as the file at self.path is still the one it reads (_location.reopen)."""
        with self.lock:
            if _location.identity(self.path) != self._identity:
                conn, self._identity = _location.reopen(self.trust, self.path, self.public_raw)
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = conn
            return self._conn

    def transaction(self, *, write: bool = False) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One snapshot (reads) or one exclusive write transaction of the live file; the caller holds the
        lock it needs (the trusted state's, for anything proven against trust)."""
        return store.transaction(self.live(), self.path, write=write)

    @contextlib.contextmanager
    def read_snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read snapshot under the ledger's lock (for reads that prove nothing against trust)."""
        with self.lock, self.transaction() as conn:
            yield conn

    def close(self) -> None:
        with self.lock, contextlib.suppress(sqlite3.Error):
            self._conn.close()
