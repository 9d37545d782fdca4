"""The key index of an immudb ledger, kept up to date beside the verified mirror instead of rebuilt each time.

A whole build (key_index.build) costs about a second per few tens of thousands of keys, so a checkpoint or an
evidence export of a large ledger would pay for every key ever written. This file holds the map's nodes and
the root after every transaction, and catches up with what the mirror replayed since: each new entry is one
path update (about 20 hashes), the nodes along it loaded and checked against the root held here first
(_map.MapUpdate.prefetch), as the embedded ledger's writer does.

It is a cache of what the mirror fixes, never a source of trust: its state names the mirror transaction and
Alh it was built to, and one that does not match the mirror (another ledger's, a mirror rebuilt, a row edited
so that a path no longer hashes to its root) is dropped and built again from the mirror. `verify()` (`notary
ledger audit`) rebuilds it whole and compares roots. One SQLite file, 0600, beside the mirror.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path

from notary.errors import LedgerUnavailableError, ProofError
from notary.ledger.embedded import _map
from notary.ledger.immudb import key_index
from notary.ledger.immudb._replay import EMPTY_ALH, entry_digest, md_flags
from notary.ledger.immudb._sqlerrors import translated
from notary.ledger.immudb.mirror import Mirror

FORMAT = "notary.immudb-key-index/v1"
_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value NOT NULL)",
    "CREATE TABLE nodes (node PRIMARY KEY, hash BLOB NOT NULL, leaf BLOB) WITHOUT ROWID",
    "CREATE TABLE roots (tx INTEGER PRIMARY KEY, root BLOB NOT NULL)",
)
_BATCH = 20_000  # entries applied per SQLite transaction: bounds the nodes held in memory
_CHUNK = 500


def store_path(mirror: Mirror) -> Path:
    return mirror.path.with_name(mirror.path.name.removesuffix(".db") + ".keyindex.db")


class StoredIndex:
    """The key index at the store's last transaction: its root, and proofs read from the stored nodes."""

    def __init__(self, store: KeyIndexStore, size: int, root: bytes) -> None:
        self._store, self.size, self.root = store, size, root
        self._built: key_index.KeyIndex | None = None

    def prove(self, key: str) -> _map.MapProof:
        """From the stored nodes while the store is still at this size; once another process caught it up
        further (its nodes are then the newer map's), from a whole build at this size."""
        if self._built is None:
            proof = self._store.prove(key, self.root, self.size)
            if proof is not None:
                return proof
            self._built = key_index.build(self._store.mirror, self.size)
        return self._built.prove(key)


class KeyIndexStore:
    def __init__(self, path: Path, mirror: Mirror, conn: sqlite3.Connection) -> None:
        self.path, self.mirror, self._db = path, mirror, conn

    @classmethod
    def open(cls, mirror: Mirror) -> KeyIndexStore:
        path = store_path(mirror)
        try:
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600))
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerUnavailableError(f"cannot open the key index {path}: {exc}") from exc
        return cls(path, mirror, conn)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    # -- reading ---------------------------------------------------------------------------------------------

    def at(self, size: int) -> StoredIndex | key_index.KeyIndex:
        """The index at transaction `size` (<= the mirror's head): the stored one when this store is (or can be
        caught up) exactly there, else a whole build (an older size, or a store another process moved on)."""
        last, root = self.catch_up(size)
        if last == size:
            return StoredIndex(self, size, root)
        return key_index.build(self.mirror, size)

    def root_at(self, size: int) -> bytes:
        """The root after transaction `size` (0: the empty map), catching up to it first if needed."""
        if size == 0:
            return _map.EMPTY
        last, root = self.catch_up(size)
        if last == size:
            return root
        with self._sql("read"):
            row = self._db.execute("SELECT root FROM roots WHERE tx = ?", (size,)).fetchone()
        return bytes(row[0]) if row is not None else key_index.build(self.mirror, size).root

    def prove(self, key: str, root: bytes, size: int) -> _map.MapProof | None:
        """The path of key under root, read from the stored nodes in one read transaction and checked to lead
        there; None if the store is no longer at `size` (another process caught it up: not tampering). A path
        that does not check is a ProofError, and the store is dropped to be built again."""
        khash = _map.key_hash(key)
        kint = int.from_bytes(khash, "big")
        nodes: dict[_map.NodeId, _map.Node | None] = {}
        proof: _map.MapProof | None = None
        try:
            with self._sql("read"):
                self._db.execute("BEGIN")  # one snapshot: the size checked and the nodes read agree
                try:
                    row = self._db.execute("SELECT value FROM meta WHERE name = 'last_tx'").fetchone()
                    if row is None or int(row[0]) != size:
                        return None
                    for lo in range(0, _map.DEPTH + 1, 32):
                        ids = _map.path_ids(kint, lo, lo + 32)
                        found = self._load(ids)
                        nodes.update({n: found.get(n) for n in ids})
                        proof = _map.prove(khash, nodes)
                        if proof is not None:
                            break
                finally:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("COMMIT")
            if proof is None:
                raise ProofError(f"it holds no end to the path of {key!r}")
            _map.verify(root, key, proof)
            return proof
        except ProofError as exc:
            self._reset()
            raise ProofError(f"the key index {self.path} did not prove {key!r} ({exc.message}); it was dropped",
                             hint="run the command again: the index is built again from the verified mirror") from None

    # -- catching up -----------------------------------------------------------------------------------------

    def catch_up(self, upto: int) -> tuple[int, bytes]:
        """Apply the mirror's transactions up to `upto` that this store lacks; (its last tx, root) after."""
        try:
            return self._catch_up(upto)
        except ProofError:  # a store that does not check against its own root: a cache, built again
            self._reset()
            return self._catch_up(upto)

    def _catch_up(self, upto: int) -> tuple[int, bytes]:
        with self._sql("update"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                last, root = self._state()
                if last < upto:
                    last, root = self._apply(last, root, upto)
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise
        return last, root

    def _state(self) -> tuple[int, bytes]:
        """(last tx, root) this store was built to, if that is the mirror's chain; else an empty store."""
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            for sql in _SCHEMA:
                self._db.execute(sql)
            self._set_meta(0, EMPTY_ALH, _map.EMPTY)
        meta = dict(self._db.execute("SELECT name, value FROM meta"))
        last = int(meta.get("last_tx", -1))
        ok = (meta.get("format") == FORMAT and meta.get("ledger_id") == self.mirror.ledger_id and
              0 <= last <= self.mirror.last_tx and
              bytes(meta.get("last_alh", b"")) == (self.mirror.header(last).alh if last else EMPTY_ALH))
        if not ok:
            raise ProofError("the key index was built for another mirror")
        return last, bytes(meta["root"])

    def _apply(self, last: int, root: bytes, upto: int) -> tuple[int, bytes]:
        if last == 0 and upto > 0:  # from nothing, a whole build is several times faster than path updates
            nodes: list[tuple[int | bytes, bytes, bytes | None]] = []
            built = key_index.build(self.mirror, upto, lambda n, node: nodes.append(
                (_map.node_key(n), node[0], None if node[1] is None else node[1][0] + node[1][1])))
            nodes.sort(key=_order)
            self._db.executemany("INSERT INTO nodes (node, hash, leaf) VALUES (?, ?, ?)", nodes)
            self._db.execute("INSERT OR REPLACE INTO roots VALUES (?, ?)", (upto, built.root))
            self._set_meta(upto, self.mirror.header(upto).alh, built.root)
            return upto, built.root
        while last < upto:
            stop = min(upto, last + max(1, _BATCH // 8))
            rows = self.mirror.plain_entries_between(last, stop)
            update = _map.MapUpdate(root, self._load)
            update.prefetch({_khash(r[1]) for r in rows})  # checks every loaded path against the root held here
            roots: list[tuple[int, bytes]] = []
            i = 0
            for tx in range(last + 1, stop + 1):
                while i < len(rows) and rows[i][0] == tx:
                    _, raw, md, hvalue, version = rows[i]
                    i += 1
                    if md_flags(md)[2]:
                        continue  # non-indexable: no version of its key
                    khash = _khash(raw)
                    newest = update.get(khash)
                    digest = entry_digest(version, (raw, md, hvalue, 0))
                    update.set(khash, key_index.value_of((newest.revision if newest else 0) + 1, tx, digest))
                roots.append((tx, update.root()))
            planted = self._load(sorted(update.assumed_empty - update.changed))
            if planted:
                raise ProofError("the key index holds nodes where its root says the map is empty")
            self._db.executemany(
                "INSERT INTO nodes (node, hash, leaf) VALUES (?, ?, ?) ON CONFLICT (node) DO UPDATE SET "
                "hash = excluded.hash, leaf = excluded.leaf",
                [(_map.node_key(n), h, None if leaf is None else leaf[0] + leaf[1])
                 for n, (h, leaf) in sorted(update.changes())])
            self._db.executemany("INSERT OR REPLACE INTO roots VALUES (?, ?)", roots)
            last, root = stop, update.root()
            self._set_meta(last, self.mirror.header(last).alh, root)
        return last, root

    def _set_meta(self, last: int, alh: bytes, root: bytes) -> None:
        self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                             [("format", FORMAT), ("ledger_id", self.mirror.ledger_id), ("last_tx", last),
                              ("last_alh", alh), ("root", root)])

    def _load(self, ids: list[_map.NodeId]) -> Mapping[_map.NodeId, _map.Node]:
        out: dict[_map.NodeId, _map.Node] = {}
        keys = [_map.node_key(n) for n in ids]
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for node, h, leaf in self._db.execute(f"SELECT node, hash, leaf FROM nodes WHERE node IN ({marks})",
                                                  chunk):
                blob = None if leaf is None else bytes(leaf)
                out[_map.key_node(node)] = (bytes(h), None if blob is None else (blob[:32], blob[32:]))
        return out

    def _reset(self) -> None:
        """Drop the store (a cache of the mirror): its file removed and created again, empty."""
        self.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}{suffix}")
        self._db = KeyIndexStore.open(self.mirror)._db

    def verify(self) -> None:
        """Rebuild the index whole from the mirror and compare: ProofError if the store's root differs."""
        last, root = self.catch_up(self.mirror.last_tx)
        if key_index.build(self.mirror, last).root != root:
            self._reset()
            raise ProofError(f"the key index {self.path} did not match the mirror (it was rebuilt)")

    def _sql(self, what: str) -> contextlib.AbstractContextManager[None]:
        return translated(what, f"the key index {self.path}",
                          lambda why: ProofError(f"the key index {self.path} is corrupt: {why}"),
                          (TypeError, ValueError, IndexError))


def _order(row: tuple[int | bytes, bytes, bytes | None]) -> tuple[int, int | bytes]:
    """Integer node keys before blob ones (as SQLite orders them), each kind in its own order."""
    return (0, row[0]) if isinstance(row[0], int) else (1, row[0])


def _khash(raw: bytes) -> bytes:
    import hashlib

    return hashlib.sha256(raw[1:]).digest()
