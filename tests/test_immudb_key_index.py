"""notary's key index of an immudb ledger, kept beside the verified mirror: caught up transaction by transaction,
it must equal a whole build from the mirror at every size, and a store someone edited must never be believed."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from notary.errors import ProofError
from notary.ledger import open_immudb
from notary.ledger.embedded import _map
from notary.ledger.immudb import ImmudbLedger, key_index, key_index_store
from notary.ledger.trust import TrustStore
from tests.support.immudb import ImmudbServer, fresh_immudb_url


@pytest.fixture
def ledger(immudb_server: ImmudbServer, tmp_path: Path) -> Iterator[ImmudbLedger]:
    opened = open_immudb(fresh_immudb_url(immudb_server), trust=TrustStore(tmp_path / "state"),
                               password=os.environ["NOTARY_IMMUDB_PASSWORD"], mirror=True)
    try:
        yield opened
    finally:
        opened.close()


def _fill(ledger: ImmudbLedger) -> None:
    """Keys written once, keys written again in later transactions, many keys in one transaction."""
    ledger.write_batch([{f"k/{t}/{i}": f"v{t}.{i}".encode() for i in range(t % 4 + 1)} for t in range(12)])
    ledger.write_batch([{"k/0/0": b"again", "k/3/1": b"again", "new/x": b"1"}, {"k/0/0": b"third"}])
    ledger.write({f"bulk/{i}": b"b" for i in range(300)})


@pytest.mark.parametrize("batch", [20_000, 8], ids=["paths", "whole-build-first-then-one-tx-batches"])
def test_the_stored_index_equals_a_whole_build_at_every_size(ledger: ImmudbLedger, batch: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(key_index_store, "_BATCH", batch)
    _fill(ledger)
    mirror = ledger.mirror  # type: ignore[attr-defined]
    store = key_index_store.KeyIndexStore.open(mirror)
    try:
        head = mirror.last_tx
        for step in (4, 5, 9, head) if batch < 100 else (1, 4, 5, head):  # uneven steps, then to the head
            store.catch_up(min(step, head))
        for size in range(0, head + 1):  # from the stored roots, or (before a whole build) built again
            assert store.root_at(size) == (key_index.build(mirror, size).root if size else _map.EMPTY), size
        stored = store.at(head)
        built = key_index.build(mirror, head)
        assert isinstance(stored, key_index_store.StoredIndex) and stored.root == built.root
        for key in ("k/0/0", "k/3/1", "bulk/7", "new/x", "never/written"):
            proof = stored.prove(key)
            assert proof == built.prove(key)
            value = _map.verify(built.root, key, proof)
            if key == "k/0/0":
                assert value is not None and value.revision == 3
            if key == "never/written":
                assert value is None
    finally:
        store.close()


def _store_conn(mirror: object) -> sqlite3.Connection:
    return sqlite3.connect(key_index_store.store_path(mirror))  # type: ignore[arg-type]


def test_an_edited_node_in_the_store_is_dropped_and_built_again(ledger: ImmudbLedger) -> None:
    _fill(ledger)
    mirror = ledger.mirror  # type: ignore[attr-defined]
    store = key_index_store.KeyIndexStore.open(mirror)
    store.catch_up(mirror.last_tx - 1)
    store.close()
    with _store_conn(mirror) as conn:
        conn.execute("UPDATE nodes SET hash = ? WHERE node = (SELECT max(node) FROM nodes WHERE leaf IS NULL)",
                     (bytes(32),))
    store = key_index_store.KeyIndexStore.open(mirror)
    try:
        assert store.root_at(mirror.last_tx) == key_index.build(mirror, mirror.last_tx).root
    finally:
        store.close()


def test_a_store_forged_whole_to_another_map_is_caught_by_verify(ledger: ImmudbLedger) -> None:
    """Nodes and root replaced consistently by a map that lacks a key: the paths check against the forged root,
    so only a whole rebuild from the mirror (`ledger audit`) tells; it does, and drops the store."""
    _fill(ledger)
    mirror = ledger.mirror  # type: ignore[attr-defined]
    store = key_index_store.KeyIndexStore.open(mirror)
    store.catch_up(mirror.last_tx)
    store.close()
    rows: list[tuple[int, bytes, bytes | None]] = []
    forged = _map.build([(bytes(32), bytes(_map.VALUE_SIZE))],
                        lambda n, node: rows.append((n, node[0], None if node[1] is None else node[1][0] + node[1][1])))
    with _store_conn(mirror) as conn:
        conn.execute("DELETE FROM nodes")
        conn.executemany("INSERT INTO nodes VALUES (?, ?, ?)", rows)
        conn.execute("UPDATE meta SET value = ? WHERE name = 'root'", (forged,))
    store = key_index_store.KeyIndexStore.open(mirror)
    try:
        with pytest.raises(ProofError, match="did not match the mirror"):
            store.verify()
        assert store.root_at(mirror.last_tx) == key_index.build(mirror, mirror.last_tx).root
    finally:
        store.close()


def test_a_store_of_another_mirror_or_garbage_is_built_again(ledger: ImmudbLedger) -> None:
    _fill(ledger)
    mirror = ledger.mirror  # type: ignore[attr-defined]
    key_index_store.store_path(mirror).write_bytes(b"not a database at all" * 100)
    store = key_index_store.KeyIndexStore.open(mirror)
    try:
        assert store.root_at(mirror.last_tx) == key_index.build(mirror, mirror.last_tx).root
    finally:
        store.close()
    with _store_conn(mirror) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE name = 'last_alh'", (bytes(32),))
    store = key_index_store.KeyIndexStore.open(mirror)
    try:
        assert store.root_at(mirror.last_tx) == key_index.build(mirror, mirror.last_tx).root
    finally:
        store.close()
