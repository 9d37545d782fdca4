"""SQLite storage of the embedded ledger: schema, connection, error mapping and every query.

Nothing here verifies anything: rows come back as the file holds them and their readers (_view, _reads,
_range, the writer and the upgrader) prove them with _verify. Errors are mapped once: a file that is not a
ledger (wrong schema, malformed image, bad values) is an IntegrityError (exit 3, someone or something changed
it); a file that cannot be reached (missing, locked, I/O) is a LedgerUnavailableError (exit 4).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from notary.errors import IntegrityError, LedgerUnavailableError
from notary.fsio import atomic_write
from notary.ledger.embedded import _codec as codec
from notary.ledger.embedded import _map

FORMAT = "notary.ledger/v2"  # v1 plus the key index (map_nodes, txs.map_root)
FORMAT_V1 = "notary.ledger/v1"
BUSY_TIMEOUT_MS = 15_000
_CHUNK = 900  # bound on SQL parameters per statement

SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE txs (
    tx INTEGER PRIMARY KEY, time_us INTEGER NOT NULL, first_leaf INTEGER NOT NULL,
    leaf_count INTEGER NOT NULL, tree_size INTEGER NOT NULL, root BLOB NOT NULL, signature BLOB NOT NULL);
CREATE INDEX txs_time ON txs (time_us);
CREATE TABLE entries (
    leaf INTEGER PRIMARY KEY, tx INTEGER NOT NULL, key TEXT NOT NULL, revision INTEGER NOT NULL,
    value BLOB NOT NULL);
CREATE UNIQUE INDEX entries_key ON entries (key, revision);
CREATE TABLE nodes (id INTEGER PRIMARY KEY, hash BLOB NOT NULL);
"""
# Format v2: the key index. Applied on top of SCHEMA at creation, or by the upgrade of a v1 file.
SCHEMA_V2 = """
ALTER TABLE txs ADD COLUMN map_root BLOB;
CREATE TABLE map_nodes (node PRIMARY KEY, hash BLOB NOT NULL, leaf BLOB) WITHOUT ROWID;
"""

_STRUCTURAL = ("not a database", "malformed", "no such table", "no such column", "corrupt", "constraint")


class HeadRow(NamedTuple):
    tx: int
    time_us: int
    first_leaf: int
    leaf_count: int
    tree_size: int
    root: bytes
    signature: bytes
    map_root: bytes | None = None  # None: a head signed without a key index (format v1)


class EntryRow(NamedTuple):
    leaf: int
    tx: int
    key: str
    revision: int
    value: bytes
    time_us: int


@contextlib.contextmanager
def guard(path: Path) -> Iterator[None]:
    """Translate sqlite3 failures into the exit-code contract."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        if any(s in text.lower() for s in _STRUCTURAL):
            raise IntegrityError(f"ledger {path} is damaged or not a notary ledger: {text}") from exc
        raise LedgerUnavailableError(f"cannot use ledger {path}: {text}") from exc
    except (TypeError, ValueError) as exc:  # a row of the wrong type or shape
        raise IntegrityError(f"ledger {path} holds a malformed row: {exc}") from exc


def connect(path: Path, *, create: bool) -> sqlite3.Connection:
    uri = path.as_uri() + ("?mode=rwc" if create else "?mode=rw")
    with guard(path):
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if create:
            conn.execute("PRAGMA journal_mode = WAL")  # persistent in the file; a no-op once set
        # FULL: a commit this client then trusts must survive a power cut, or the trusted state would be
        # ahead of the file and every later read would (rightly) look like a rollback.
        conn.execute("PRAGMA synchronous = FULL")
        # Up to 64 MiB of page cache (allocated only as used): a batch of writes touches key index pages
        # all over the file, and the default 2 MiB cache turns that into re-reads (about 25% of append time).
        conn.execute("PRAGMA cache_size = -65536")
        return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, path: Path, *, write: bool = False) -> Iterator[sqlite3.Connection]:
    """One snapshot (reads) or one atomic, exclusive-writer transaction (writes)."""
    with guard(path):
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def has_schema(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
    return bool(row[0])


def create_schema(conn: sqlite3.Connection, public_raw: bytes, created_us: int) -> None:
    for statement in (SCHEMA + SCHEMA_V2).split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.executemany(
        "INSERT INTO meta (name, value) VALUES (?, ?)",
        [("format", FORMAT), ("public_key", public_raw), ("created_us", created_us)],
    )


def is_v2(conn: sqlite3.Connection) -> bool:
    """Whether this snapshot of the file has the key index (another process may upgrade it at any time)."""
    row = conn.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()
    if row is None or row[0] not in (FORMAT, FORMAT_V1):
        raise IntegrityError(f"ledger has unknown format {row[0] if row else None!r} in its meta table")
    return bool(row[0] == FORMAT)


def read_meta(conn: sqlite3.Connection) -> dict[str, object]:
    return dict(conn.execute("SELECT name, value FROM meta").fetchall())


def _tx_cols(v2: bool) -> str:
    return "tx, time_us, first_leaf, leaf_count, tree_size, root, signature" + (", map_root" if v2 else "")


def head(conn: sqlite3.Connection, v2: bool) -> HeadRow | None:
    row = conn.execute(f"SELECT {_tx_cols(v2)} FROM txs ORDER BY tx DESC LIMIT 1").fetchone()
    return HeadRow(*row) if row else None


def tx_row(conn: sqlite3.Connection, tx: int, v2: bool) -> HeadRow | None:
    row = conn.execute(f"SELECT {_tx_cols(v2)} FROM txs WHERE tx = ?", (tx,)).fetchone()
    return HeadRow(*row) if row else None


def tx_ending_at(conn: sqlite3.Connection, size: int, v2: bool) -> HeadRow | None:
    """The transaction whose head has tree size `size` (each writes at least one leaf: at most one does)."""
    row = conn.execute(f"SELECT {_tx_cols(v2)} FROM txs WHERE tree_size = ? ORDER BY tx LIMIT 1", (size,)).fetchone()
    return HeadRow(*row) if row else None


def last_tx_at_or_before(conn: sqlite3.Connection, time_us: int, v2: bool) -> HeadRow | None:
    row = conn.execute(
        f"SELECT {_tx_cols(v2)} FROM txs WHERE time_us <= ? ORDER BY time_us DESC, tx DESC LIMIT 1", (time_us,)
    ).fetchone()
    return HeadRow(*row) if row else None


_ENTRY_SQL = (
    "SELECT e.leaf, e.tx, e.key, e.revision, e.value, t.time_us FROM entries e "
    "LEFT JOIN txs t ON t.tx = e.tx "
)


def _entry(row: Sequence[object] | None) -> EntryRow | None:
    if row is None:
        return None
    leaf, tx, key, revision, value, time_us = row
    if time_us is None:
        time_us = -1  # its transaction row is gone: the leaf cannot verify, which is the right outcome
    # the row's types are checked where it is proven (Verifier.check_entry): a wrong type is an IntegrityError
    return EntryRow(leaf, tx, key, revision, value, time_us)  # type: ignore[arg-type]


def latest_entry(conn: sqlite3.Connection, key: str, at_tx: int | None) -> EntryRow | None:
    if at_tx is None:
        row = conn.execute(_ENTRY_SQL + "WHERE e.key = ? ORDER BY e.revision DESC LIMIT 1", (key,)).fetchone()
    else:
        row = conn.execute(
            _ENTRY_SQL + "WHERE e.key = ? AND e.tx <= ? ORDER BY e.revision DESC LIMIT 1", (key, at_tx)
        ).fetchone()
    return _entry(row)


def entries_of(conn: sqlite3.Connection, key: str) -> list[EntryRow]:
    rows = conn.execute(_ENTRY_SQL + "WHERE e.key = ? ORDER BY e.revision", (key,)).fetchall()
    return [e for e in map(_entry, rows) if e is not None]


def entry_at(conn: sqlite3.Connection, leaf: int) -> EntryRow | None:
    return _entry(conn.execute(_ENTRY_SQL + "WHERE e.leaf = ?", (leaf,)).fetchone())


def entry_of(conn: sqlite3.Connection, key: str, revision: int) -> EntryRow | None:
    return _entry(conn.execute(_ENTRY_SQL + "WHERE e.key = ? AND e.revision = ?", (key, revision)).fetchone())


def iter_entries(conn: sqlite3.Connection) -> Iterator[EntryRow]:
    for row in conn.execute(_ENTRY_SQL + "ORDER BY e.leaf"):
        entry = _entry(row)
        assert entry is not None
        yield entry


def entries_between(conn: sqlite3.Connection, lo: int, hi: int) -> list[EntryRow]:
    """The rows of leaves lo..hi-1, by leaf (a gap shows as a missing leaf: the caller proves contiguity)."""
    rows = conn.execute(_ENTRY_SQL + "WHERE e.leaf >= ? AND e.leaf < ? ORDER BY e.leaf", (lo, hi)).fetchall()
    return [e for e in map(_entry, rows) if e is not None]


def iter_txs(conn: sqlite3.Connection, v2: bool) -> Iterator[HeadRow]:
    for row in conn.execute(f"SELECT {_tx_cols(v2)} FROM txs ORDER BY tx"):
        yield HeadRow(*row)


def keys_with_prefix(conn: sqlite3.Connection, prefix: str) -> list[str]:
    # Keys are printable ASCII (< 0x7f), so prefix + "\x7f" bounds every key that starts with prefix.
    rows = conn.execute(
        "SELECT DISTINCT key FROM entries WHERE key >= ? AND key < ? ORDER BY key", (prefix, prefix + "\x7f")
    ).fetchall()
    return [r[0] for r in rows]


def count_rows(conn: sqlite3.Connection, table: str) -> int:
    assert table in ("entries", "nodes", "txs", "map_nodes")
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def fetch_nodes(conn: sqlite3.Connection, ids: Iterable[int]) -> dict[int, bytes]:
    wanted = sorted(set(ids))
    out: dict[int, bytes] = {}
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        out.update(conn.execute(f"SELECT id, hash FROM nodes WHERE id IN ({marks})", chunk).fetchall())
    return out


def fetch_map_nodes(conn: sqlite3.Connection, keys: Sequence[int | bytes]) -> dict[object, tuple[bytes, bytes | None]]:
    """Stored key index nodes among keys: key -> (hash, leaf content or None for an interior node)."""
    out: dict[object, tuple[bytes, bytes | None]] = {}
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i : i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        for node, h, leaf in conn.execute(f"SELECT node, hash, leaf FROM map_nodes WHERE node IN ({marks})", chunk):
            out[node] = (h, leaf)
    return out


def map_nodes_cursor(conn: sqlite3.Connection) -> sqlite3.Cursor:
    """Every key index node in node number order (integers sort before blobs, and the 33-byte blobs hold
    only numbers above every integer key). A cursor, so the caller can close it when it stops early."""
    return conn.execute("SELECT node, hash, leaf FROM map_nodes ORDER BY node")


def insert(
    conn: sqlite3.Connection,
    entries: Sequence[tuple[int, int, str, int, bytes]],
    nodes: Sequence[tuple[int, bytes]],
    txs: Sequence[tuple[int, int, int, int, int, bytes, bytes, bytes | None]],
    map_nodes: Iterable[tuple[int | bytes, bytes, bytes | None]] = (),
) -> None:
    conn.executemany("INSERT INTO entries (leaf, tx, key, revision, value) VALUES (?, ?, ?, ?, ?)", entries)
    conn.executemany("INSERT INTO nodes (id, hash) VALUES (?, ?)", nodes)
    conn.executemany(
        "INSERT INTO txs (tx, time_us, first_leaf, leaf_count, tree_size, root, signature, map_root) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        txs,
    )
    # Key index nodes change in place (a path's newest hash); every change is under a new signed map root.
    conn.executemany("INSERT INTO map_nodes (node, hash, leaf) VALUES (?, ?, ?) "
                     "ON CONFLICT (node) DO UPDATE SET hash = excluded.hash, leaf = excluded.leaf", map_nodes)


def upgrade_schema(conn: sqlite3.Connection) -> None:
    """Add the key index to a v1 file (inside the caller's write transaction; the caller fills it)."""
    for statement in SCHEMA_V2.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("UPDATE meta SET value = ? WHERE name = 'format'", (FORMAT,))


def resign_head(conn: sqlite3.Connection, tx: int, map_root: bytes, signature: bytes) -> None:
    conn.execute("UPDATE txs SET map_root = ?, signature = ? WHERE tx = ?", (map_root, signature, tx))


def load_or_create(conn: sqlite3.Connection, path: Path, create: bool) -> tuple[bytes | None, bool, str]:
    """(the ledger's public key (None: an empty file), whether it was created now, its format), creating
    schema and key first when create is set."""
    created = False
    with transaction(conn, path) as c:
        meta = read_meta(c) if has_schema(c) else None
    if meta is None:
        if not create:
            return None, False, FORMAT
        with transaction(conn, path, write=True) as c:
            if not has_schema(c):
                key = Ed25519PrivateKey.generate()
                public_raw = key.public_key().public_bytes_raw()
                write_key_file(Path(f"{path}.key"), key.private_bytes_raw())
                create_schema(c, public_raw, time.time_ns() // 1000)
                created = True
            meta = read_meta(c)
    raw = meta.get("public_key")
    fmt = meta.get("format")
    if fmt not in (FORMAT, FORMAT_V1) or not isinstance(raw, bytes) or len(raw) != 32:
        raise IntegrityError(f"ledger {path} has unknown format or a malformed public key in its meta table")
    public_raw = raw
    Ed25519PublicKey.from_public_bytes(public_raw)
    return public_raw, created, str(fmt)


def write_key_file(key_path: Path, seed: bytes) -> None:
    try:
        atomic_write(key_path, codec.private_pem(seed).encode("ascii"), 0o600)
    except OSError as exc:
        raise LedgerUnavailableError(f"cannot write ledger signing key {key_path}: {exc.strerror}") from exc


def map_loader(conn: sqlite3.Connection) -> Callable[[list[_map.NodeId]], Mapping[_map.NodeId, _map.Node]]:
    """Fetch key index nodes by id from the file (absent ones are empty subtrees)."""

    def load(ids: list[_map.NodeId]) -> Mapping[_map.NodeId, _map.Node]:
        found = fetch_map_nodes(conn, [_map.node_key(n) for n in ids])
        return {_map.key_node(k): (h, None if leaf is None else (leaf[:32], leaf[32:]))
                for k, (h, leaf) in found.items()}

    return load
