"""A local, fully verified mirror of one immudb database: completeness by replay.

immudb proves that a value is included in a transaction and that states are consistent; it cannot prove that a
value is the newest version of its key, that a key is absent, or that a history is complete. A client that has
replayed every transaction itself can: the mirror holds every transaction header and every entry digest from
transaction 1 to a state this client trusts, each re-hashed (entries -> eH -> header -> Alh chain), so "which
versions of this key exist up to tx N" is answered from bytes that the trusted Alh fixes, not from the server.

One SQLite file per ledger identity beside the trusted state (0600, rollback journal, one transaction per
catch-up). Only rows that chained to a trusted or proven-consistent state are ever committed. Rows are re-hashed
when a process opens the file and whenever another connection changed it (`PRAGMA data_version`), except those a
notary process sealed as checked in a file that has not changed since (`_seal`: the kernel's stamp of the
file), so an edited, truncated or swapped mirror is an integrity error, never a silent answer, and a warm open
re-hashes only what was appended. Nothing here talks to the server: `catch_up` takes the transactions from the
caller (ImmudbLedger's TxScan pages) and checks them.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct
from collections.abc import Callable, Iterable, Iterator
from itertools import groupby
from pathlib import Path
from typing import NamedTuple

from notary.errors import LedgerUnavailableError, ProofError, RollbackError, TrustStoreError
from notary.ledger.immudb import _seal
from notary.ledger.immudb._replay import (
    EMPTY_ALH,
    SET_KEY_PREFIX,
    EntryRow,
    ScannedTx,
    TxRow,
    check_tx,
    key_of,
    md_flags,
    replay,
)
from notary.ledger.immudb._sqlerrors import translated
from notary.ledger.trust import TrustStore

FORMAT = "notary.immudb-mirror/v1"
SCHEMA = {
    "meta": "CREATE TABLE meta (name TEXT PRIMARY KEY, value NOT NULL)",
    "txs": "CREATE TABLE txs (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, version INTEGER NOT NULL, "
           "md BLOB NOT NULL, nentries INTEGER NOT NULL, eh BLOB NOT NULL, bl_tx INTEGER NOT NULL, "
           "bl_root BLOB NOT NULL, alh BLOB NOT NULL)",
    "entries": "CREATE TABLE entries (tx INTEGER NOT NULL, i INTEGER NOT NULL, key BLOB NOT NULL, "
               "md BLOB NOT NULL, hvalue BLOB NOT NULL, vlen INTEGER NOT NULL, PRIMARY KEY (tx, i)) WITHOUT ROWID",
    "entries_by_key": "CREATE INDEX entries_by_key ON entries (key, tx)",
}
_TX_ROWS = "SELECT id, ts, version, md, nentries, eh, bl_tx, bl_root, alh FROM txs"  # laid out like TxRow
_REBUILD = "remove it to rebuild it from the server (notary ledger mirror --rebuild)"


class Version(NamedTuple):
    """One indexed version of a key, as the replay saw it (revision counts from 1, as immudb's does)."""

    revision: int
    tx: int
    hvalue: bytes
    vlen: int
    deleted: bool
    expires: bool


def mirror_path(trust: TrustStore, ledger_id: str) -> Path:
    """The mirror of a ledger lives beside its trusted state: ledger-<id hash>.mirror.db."""
    return trust.path_for(ledger_id).with_suffix(".mirror.db")


class Mirror:
    """The verified transactions of one immudb database, and the key index derived from them."""

    def __init__(self, path: Path, ledger_id: str, conn: sqlite3.Connection) -> None:
        self.path = path
        self.ledger_id = ledger_id
        self._db = conn
        self.last_tx = 0
        self.last_alh = EMPTY_ALH
        self.entries = 0
        self._seen_version = -1
        self._sealable = False
        self.rehashed = 0  # transactions re-hashed by the latest open or refresh (0: the seal covered all)

    @classmethod
    def open(cls, path: Path, ledger_id: str) -> Mirror:
        """Open (or create, 0600) the mirror at path and re-hash what no seal covers. TrustStoreError if altered."""
        created = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600))
                created = True
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerUnavailableError(f"cannot open the immudb mirror {path}: {exc}") from exc
        mirror = cls(path, ledger_id, conn)
        try:
            with mirror._sql("open"):
                mirror._sealable = _rollback_journal(conn)
                conn.execute("PRAGMA synchronous=FULL")
                if created or not conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                    mirror._create()
            mirror._load(full=False)
        except BaseException:
            conn.close()
            raise
        return mirror

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    # -- integrity -------------------------------------------------------------------------------------------

    def verify(self) -> None:
        """Re-hash every stored row, whatever the seal says (`notary ledger audit`), and seal the result."""
        self._load(full=True)

    def refresh(self) -> None:
        """Re-check if another connection (another notary process, or anyone) changed the file since."""
        with self._sql("check"):
            if self._data_version() != self._seen_version:
                self._load(full=False)

    def _load(self, *, full: bool) -> None:
        """Check the file and take its state: the rows the seal covers are trusted as checked, every other row
        is re-hashed (all of them without a matching seal, see _seal). Raises TrustStoreError if altered."""
        with self._sql("verify"), self._read_locked():
            self._check_schema()  # also takes the shared lock (and rolls back a hot journal) first
            meta = dict(self._db.execute("SELECT name, value FROM meta"))
            if meta.get("format") != FORMAT or meta.get("ledger_id") != self.ledger_id:
                raise self._altered(f"it belongs to {meta.get('ledger_id')!r} ({meta.get('format')!r})")
            now = _seal.stamp(self.path)
            sealed = None if full or not self._sealable else _seal.load(self.path, self.ledger_id)
            start = self._sealed_start(sealed, now, int(meta.get("last_tx", -1)))
            if start is None:
                check = self._db.execute("PRAGMA integrity_check(1)").fetchone()  # the index matches the rows
                if check is None or check[0] != "ok":
                    raise self._altered(f"SQLite integrity check: {check[0] if check else 'no answer'}")
                start = (0, EMPTY_ALH, 0)
            self.rehashed = self._rehash(*start, last=int(meta.get("last_tx", -1)))
            self._seen_version = self._data_version()  # inside the lock: no commit slips in unseen
        if self._sealable and (self.rehashed or sealed is None or sealed.stamp != now):
            _seal.save(self.path, self.ledger_id, _seal.Seal(self.last_tx, self.last_alh, self.entries, now))

    def _sealed_start(self, sealed: _seal.Seal | None, now: _seal.Stamp, last: int) -> tuple[int, bytes, int] | None:
        """Where re-hashing may start: after the sealed transaction, if the file is the one sealed."""
        if sealed is None or sealed.stamp != now or sealed.tx > last:
            return None
        if (self.header(sealed.tx).alh if sealed.tx else EMPTY_ALH) != sealed.alh:
            return None  # a seal that does not describe these rows: believe nothing of it
        if 0 < self.last_tx <= sealed.tx and self.header(self.last_tx).alh == self.last_alh:
            return self.last_tx, self.last_alh, self.entries  # resident: re-hash what the others appended
        return sealed.tx, sealed.alh, sealed.entries

    def _rehash(self, start_tx: int, start_alh: bytes, start_entries: int, *, last: int) -> int:
        """Re-hash the rows after start_tx: ids without gaps, each transaction's entries to its eH, each
        header onto the previous Alh, every stored Alh equal to the recomputed one. Returns how many.

        The rows a read uses (the entries index) are the rows hashed here, so a deleted, renamed or altered
        entry, a dropped transaction, or a file from another ledger cannot pass. Whether the chain ends at a
        state this client trusts is checked against the trusted state by `catch_up` (every read syncs first).
        """
        txs = self._db.execute(_TX_ROWS + " WHERE id > ? ORDER BY id", (start_tx,))
        entries = self._db.cursor().execute(
            "SELECT key, md, hvalue, vlen, tx FROM entries WHERE tx > ? ORDER BY tx, i", (start_tx,))
        groups = groupby(entries, key=lambda r: r[4])  # rows laid out like EntryRow, the tx last
        prev, expected, count = start_alh, start_tx + 1, start_entries
        pending = next(groups, None)
        for raw in txs:
            row = TxRow(*raw)
            if row.id != expected:
                raise self._altered(f"transaction {expected} is missing")
            if pending is None or pending[0] != row.id:
                raise self._altered(f"transaction {row.id} has no entries")
            ents = list(pending[1])
            try:
                computed = check_tx(row, ents, prev)
            except ProofError as exc:
                raise self._altered(exc.message) from None
            if computed.alh != row.alh:
                raise self._altered(f"transaction {row.id} does not hash to its stored Alh")
            prev, expected, count = row.alh, expected + 1, count + len(ents)
            pending = next(groups, None)
        if pending is not None:
            raise self._altered(f"it holds entries of transaction {pending[0]}, which it does not hold")
        if last != expected - 1:
            raise self._altered("its recorded last transaction is not its last row")
        self.last_tx, self.last_alh, self.entries = expected - 1, prev, count
        return expected - 1 - start_tx

    def _reseal(self) -> None:
        """Seal what this process just appended (and had checked), if nobody appended after it."""
        if not self._sealable:
            return
        with self._sql("seal"), self._read_locked():
            row = self._db.execute("SELECT value FROM meta WHERE name = 'last_tx'").fetchone()
            now = _seal.stamp(self.path)
        if row is not None and int(row[0]) == self.last_tx:
            _seal.save(self.path, self.ledger_id, _seal.Seal(self.last_tx, self.last_alh, self.entries, now))

    # -- catch-up --------------------------------------------------------------------------------------------

    def catch_up(self, fetch: Callable[[int, int], Iterable[ScannedTx]], *, trusted: tuple[int, bytes],
                 target: tuple[int, bytes]) -> int:
        """Replay transactions last+1..target from `fetch(first, last)` (ScannedTx, from either transport) and
        store them.

        trusted: (tx, Alh) this client already trusts; the replayed chain must pass through it. target: the
        server's current state (tx, Alh); the chain must end exactly there, which proves that state an
        extension of everything before it. Returns how many transactions were added. Nothing is stored
        unless the whole chain checks out.
        """
        for _ in range(3):  # another process may append while we wait for the write lock: re-verify, retry
            self.refresh()
            t_tx, t_alh = trusted
            if target[0] < self.last_tx:
                raise RollbackError(
                    f"immudb ledger {self.ledger_id} is at tx {target[0]}, but this client's verified mirror "
                    f"already holds tx {self.last_tx}: the ledger was rolled back or replaced"
                )
            if 0 < t_tx <= self.last_tx and self.header(t_tx).alh != t_alh:
                raise ProofError(
                    f"the verified mirror of {self.ledger_id} does not match the trusted state at tx {t_tx}: "
                    "the ledger or the mirror was rewritten", hint=f"if the mirror {self.path} was altered, {_REBUILD}"
                )
            if target[0] == self.last_tx:
                if self.last_alh != target[1]:
                    raise RollbackError(f"immudb ledger {self.ledger_id} forked at tx {target[0]}: other Alh")
                return 0
            added = self._append(fetch, trusted, target)
            if added is not None:
                return added
        raise LedgerUnavailableError(f"the immudb mirror {self.path} keeps changing under this process")

    def _append(self, fetch: Callable[[int, int], Iterable[ScannedTx]], trusted: tuple[int, bytes],
                target: tuple[int, bytes]) -> int | None:
        first = self.last_tx + 1
        prev_alh = self.last_alh
        with self._sql("update"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self._data_version() != self._seen_version:
                    self._db.execute("ROLLBACK")
                    return None
                tx_id, prev_alh, added = self._store(replay(fetch(first, target[0]), first, prev_alh, trusted),
                                                     target[0])
                if tx_id != target[0] or prev_alh != target[1]:
                    raise ProofError(
                        f"immudb's transactions {first}..{target[0]} do not chain to its own state at tx {target[0]}",
                        hint="the server's answers are inconsistent: the ledger was altered, or a proxy rewrites them",
                    )
                self._db.execute("UPDATE meta SET value = ? WHERE name = 'last_tx'", (tx_id,))
                seen = self._data_version()  # under the write lock; our own commit does not move it
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
            self.last_tx, self.last_alh = tx_id, prev_alh
            self.entries += added
            self._seen_version = seen
        self._reseal()
        return tx_id - first + 1

    def _store(self, rows: Iterator[tuple[TxRow, list[EntryRow]]], last: int) -> tuple[int, bytes, int]:
        tx_id, alh, added = self.last_tx, self.last_alh, 0
        batch_tx: list[TxRow] = []
        batch_entries: list[tuple[int, int, bytes, bytes, bytes, int]] = []
        for row, entries in rows:
            batch_tx.append(row)
            batch_entries.extend((row.id, i, e.key, e.md, e.hvalue, e.vlen) for i, e in enumerate(entries))
            tx_id, alh, added = row.id, row.alh, added + len(entries)
            if len(batch_entries) >= 5000 or tx_id == last:
                self._flush(batch_tx, batch_entries)
            if tx_id == last:
                break
        self._flush(batch_tx, batch_entries)
        return tx_id, alh, added

    def _flush(self, txs: list[TxRow], entries: list[tuple[int, int, bytes, bytes, bytes, int]]) -> None:
        self._db.executemany("INSERT INTO txs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", txs)
        self._db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)", entries)
        txs.clear()
        entries.clear()

    # -- the index -------------------------------------------------------------------------------------------

    def versions(self, key: str, as_of: int) -> list[Version]:
        """Every indexed version of key written up to transaction as_of, oldest first."""
        raw = bytes([SET_KEY_PREFIX]) + key.encode("utf-8")
        with self._sql("read"):
            rows = self._db.execute(
                "SELECT tx, md, hvalue, vlen FROM entries WHERE key = ? AND tx <= ? ORDER BY tx", (raw, as_of)
            ).fetchall()
        out: list[Version] = []
        for tx, md, hvalue, vlen in rows:
            deleted, expires, non_indexable = md_flags(md)
            if not non_indexable:  # immudb keeps such entries out of its index: no revision, no history
                out.append(Version(len(out) + 1, tx, bytes(hvalue), vlen, deleted, expires))
        return out

    def written(self, after_tx: int, upto_tx: int) -> Iterator[tuple[int, str, bool]]:
        """(tx, key, deleted) of every indexed entry notary can name in transactions after_tx+1..upto_tx, in
        order: the replayed rows, complete by the Alh chain (values are not kept here: read them proven)."""
        with self._sql("read"):
            rows = self._db.execute("SELECT tx, key, md FROM entries WHERE tx > ? AND tx <= ? ORDER BY tx, i",
                                    (after_tx, upto_tx)).fetchall()
        for tx, raw, md in rows:
            deleted, _, non_indexable = md_flags(md)
            name = key_of(bytes(raw))
            if name is not None and not non_indexable:
                yield tx, name, deleted

    def keys(self, prefix: str, as_of: int) -> list[str]:
        """Keys starting with prefix whose newest version up to as_of is not a deletion, sorted."""
        lo = bytes([SET_KEY_PREFIX]) + prefix.encode("utf-8")
        hi = _after_prefix(lo)
        with self._sql("read"):
            rows = self._db.execute(
                "SELECT key, md FROM entries WHERE key >= ? AND key < ? AND tx <= ? ORDER BY key, tx", (lo, hi, as_of)
            ).fetchall()
        found: list[str] = []
        for raw, group in groupby(rows, key=lambda r: bytes(r[0])):
            flags = [md_flags(md) for _, md in group]
            indexed = [f for f in flags if not f[2]]
            name = key_of(raw)
            if indexed and not indexed[-1][0] and name is not None:
                found.append(name)
        return sorted(found)

    def plain_entries(self, as_of: int) -> Iterator[tuple[bytes, int, bytes, bytes, int]]:
        """(raw key, tx, metadata, value hash, tx format) of every plain key/value entry up to as_of, ordered by
        key then tx: the rows notary's key index of this ledger is built from (key_index)."""
        with self._sql("read"):
            rows = self._db.execute(
                "SELECT e.key, e.tx, e.md, e.hvalue, t.version FROM entries e JOIN txs t ON t.id = e.tx "
                "WHERE e.key >= x'00' AND e.key < x'01' AND e.tx <= ? ORDER BY e.key, e.tx", (as_of,)).fetchall()
        for raw, tx, md, hvalue, version in rows:
            yield bytes(raw), int(tx), bytes(md), bytes(hvalue), int(version)

    def plain_entries_between(self, after_tx: int, upto_tx: int) -> list[tuple[int, bytes, bytes, bytes, int]]:
        """(tx, raw key, metadata, value hash, tx format) of the plain entries of transactions after_tx+1..upto_tx,
        in transaction order: what the key index store applies as it catches up."""
        with self._sql("read"):
            rows = self._db.execute(
                "SELECT e.tx, e.key, e.md, e.hvalue, t.version FROM entries e JOIN txs t ON t.id = e.tx "
                "WHERE e.tx > ? AND e.tx <= ? AND e.key >= x'00' AND e.key < x'01' ORDER BY e.tx, e.i",
                (after_tx, upto_tx)).fetchall()
        return [(int(tx), bytes(k), bytes(md), bytes(h), int(v)) for tx, k, md, h, v in rows]

    def tx_entries(self, tx: int) -> list[EntryRow]:
        """Every entry of transaction tx as the replay stored it (raw key, metadata, value hash, length)."""
        with self._sql("read"):
            rows = self._db.execute("SELECT key, md, hvalue, vlen FROM entries WHERE tx = ? ORDER BY i",
                                    (tx,)).fetchall()
        return [EntryRow(bytes(k), bytes(md), bytes(h), int(n)) for k, md, h, n in rows]

    def alhs(self, upto: int) -> list[bytes]:
        """The Alh of transactions 1..upto, in order: the leaves of immudb's binary linking tree."""
        with self._sql("read"):
            found = [bytes(r[0]) for r in self._db.execute("SELECT alh FROM txs WHERE id <= ? ORDER BY id", (upto,))]
        if len(found) != upto:
            raise self._altered(f"it holds {len(found)} of transactions 1..{upto}")
        return found

    def header(self, tx: int) -> TxRow:
        with self._sql("read"):
            row = self._db.execute(_TX_ROWS + " WHERE id = ?", (tx,)).fetchone()
        if row is None:
            raise self._altered(f"transaction {tx} is missing")
        return TxRow(*row)

    def last_tx_until(self, ts: float, last: int) -> int | None:
        """The last transaction up to `last` whose header time is <= ts (binary search, as ImmudbLedger does)."""
        if last < 1 or self.header(1).ts > ts:
            return None
        lo, hi = 1, last
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.header(mid).ts <= ts:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def key_count(self) -> int:
        with self._sql("read"):
            row = self._db.execute("SELECT count(DISTINCT key) FROM entries WHERE key >= x'00' AND key < x'01'")
            return int(row.fetchone()[0])

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.path, self.path.with_name(self.path.name + "-wal")) if p.exists())

    # -- plumbing --------------------------------------------------------------------------------------------

    def _create(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        for sql in SCHEMA.values():
            self._db.execute(sql)
        self._db.executemany("INSERT INTO meta VALUES (?, ?)",
                             [("format", FORMAT), ("ledger_id", self.ledger_id), ("last_tx", 0)])
        self._db.execute("COMMIT")

    def _check_schema(self) -> None:
        """Exactly our tables and index, as we created them: no trigger, view or altered index can change
        what a query returns without also changing what `verify` hashes."""
        rows = self._db.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_autoindex%'")
        found = {name: sql for _, name, sql in rows}
        if found != SCHEMA:
            raise self._altered("its schema is not the mirror's")

    @contextlib.contextmanager
    def _read_locked(self) -> Iterator[None]:
        """One read transaction: SQLite's shared lock from its first read to the end, so no writer commits
        between the rows read and the stamp taken."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("COMMIT")

    def _data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def _altered(self, why: str) -> TrustStoreError:
        return TrustStoreError(f"the immudb mirror {self.path} was altered or is corrupt: {why}",
                               hint=_REBUILD)

    def _sql(self, what: str) -> contextlib.AbstractContextManager[None]:
        return translated(what, f"the immudb mirror {self.path}", self._altered, (TypeError, ValueError, struct.error))


def _rollback_journal(conn: sqlite3.Connection) -> bool:
    """Use a rollback journal, not WAL: readers then never write the file, so its stamp holds still (_seal).

    A mirror an older notary made in WAL mode switches only when no other process has it open; until then it
    stays in WAL, unsealed (re-hashed in full on every open, as before), rather than wait for the others."""
    conn.execute("PRAGMA busy_timeout = 50")
    try:
        mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()
    except sqlite3.OperationalError:
        mode = None
    finally:
        conn.execute("PRAGMA busy_timeout = 60000")
    return bool(mode) and str(mode[0]).lower() == "delete"


def _after_prefix(prefix: bytes) -> bytes:
    """The smallest byte string greater than every string starting with prefix."""
    trimmed = prefix.rstrip(b"\xff")
    return trimmed[:-1] + bytes([trimmed[-1] + 1])
