"""Reads of a format v2 embedded ledger: every answer proven complete by the signed key index (and the read of
which transaction stood at a time, proven by the hashed times around it).

Inclusion (the log) proves a version exists; the key index proves which version is the newest, or that a key
was never written. Together: `get` returns the newest version or a proven absence, `get` as of a transaction
returns the newest version at that point with the next version proven later, and `history` returns revisions
1..N, all of them. A row the index names that is missing, renamed or altered is a ProofError (exit 3), never
"not found" (docs/proofs.md, "The key index").
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from notary.errors import ProofError
from notary.ledger.base import Entry
from notary.ledger.embedded import _codec as codec
from notary.ledger.embedded import _map
from notary.ledger.embedded import _store as store

if TYPE_CHECKING:
    from notary.ledger.embedded._view import View as _View

_SHALLOW = 40  # depths fetched first: a random key's leaf sits at about log2(keys) + 1


def index_proofs(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, _map.MapProof | None]:
    """Key index proofs of keys as the file holds them (unverified: the caller checks them against a head).
    Two queries at most: the shallow levels of every path, then the rest for paths that go deeper."""
    load = store.map_loader(conn)
    out: dict[str, _map.MapProof | None] = {}
    pending = list(dict.fromkeys(keys))
    for hi in (_SHALLOW, _map.DEPTH + 1):
        if not pending:
            break
        ids = [i for key in pending for i in _map.proof_ids(_map.key_hash(key), 0, hi)]
        got = load(ids)
        nodes = {i: got.get(i) for i in ids}
        deeper = []
        for key in pending:
            proof = _map.prove(_map.key_hash(key), nodes)
            if proof is None and hi <= _map.DEPTH:
                deeper.append(key)
            out[key] = proof
        pending = deeper
    return out


def get(view: _View, key: str, at_tx: int | None) -> Entry | None:
    proof = view.read(lambda c: index_proofs(c, [key]))[key]
    newest = view.verifier.check_index(key, proof, view.head)
    if newest is None:
        view.verifier.absent(key, view.read(lambda c: store.latest_entry(c, key, None)))
        return None
    assert proof is not None  # check_index refused a missing proof
    row, top = view.read(lambda c: (store.entry_at(c, newest.leaf_index), store.latest_entry(c, key, None)))
    named = view.verifier.check_named(key, row, newest)
    entry = view.verifier.check_newest(key, view.entry(key, named), newest, proof)
    if top is not None and (top.revision, top.leaf) != (newest.revision, newest.leaf_index):
        raise ProofError(f"ledger {view.verifier.path} holds a revision {top.revision} of {key!r} (leaf {top.leaf}) "
                         "that the signed key index does not know: a record was moved or forged")
    if at_tx is None:
        return entry
    if entry.tx <= at_tx:  # the version as of at_tx is still the newest: the key index proves nothing came after
        return Entry(entry.key, entry.value, entry.tx, entry.time, entry.revision,
                     {**entry.proof, "as_of_tx": at_tx, "next_version": None})
    return _as_of(view, key, at_tx, entry, newest)


def _as_of(view: _View, key: str, at_tx: int, newest_entry: Entry,
           newest: _map.MapValue) -> Entry | None:
    """The newest version written in a transaction <= at_tx: that version, and the one after it proven to
    come later (revisions of a key only ever grow with transactions; `ledger audit` checks that rule)."""
    older = view.read(lambda c: store.latest_entry(c, key, at_tx))
    revision = older.revision if older is not None else 0
    if type(revision) is not int or revision >= newest.revision:
        raise ProofError(f"ledger {view.verifier.path} holds revision {revision} of {key!r} at or before tx {at_tx}, "
                         f"but the newest version (revision {newest.revision}) is from tx {newest_entry.tx}")
    if revision + 1 == newest.revision:
        following = newest_entry
    else:
        row = view.read(lambda c: store.entry_of(c, key, revision + 1))
        if row is None:
            raise ProofError(f"revision {revision + 1} of {key!r} is missing from ledger {view.verifier.path}: "
                             "a record was deleted")
        following = view.entries(key, [row])[0]
    if following.tx <= at_tx:
        raise ProofError(f"revision {following.revision} of {key!r} is from tx {following.tx}, not after tx {at_tx}")
    next_version = {k: following.proof[k] for k in ("leaf_index", "leaf_hash", "leaf_data", "audit_path")}
    if older is None:
        return None
    entry = view.entries(key, [older])[0]
    if entry.tx > at_tx:
        raise ProofError(f"revision {entry.revision} of {key!r} is from tx {entry.tx}, after tx {at_tx}")
    extra = {"as_of_tx": at_tx, "next_version": next_version, "key_index": newest_entry.proof["key_index"]}
    return Entry(entry.key, entry.value, entry.tx, entry.time, entry.revision, {**entry.proof, **extra})


def history(view: _View, key: str, rows: Sequence[store.EntryRow]) -> list[Entry]:
    proof = view.read(lambda c: index_proofs(c, [key]))[key]
    newest = view.verifier.check_index(key, proof, view.head)
    if newest is None:
        view.verifier.absent(key, rows[0] if rows else None)
        return []
    entries = view.entries(key, rows)
    revisions = [e.revision for e in entries]
    if revisions != list(range(1, newest.revision + 1)):
        raise ProofError(f"the signed key index says {key!r} has {newest.revision} versions, the ledger holds "
                         f"revisions {revisions}: a record was deleted or renamed")
    assert proof is not None  # check_index refused a missing proof
    view.verifier.check_named(key, rows[-1], newest)
    return [*entries[:-1], view.verifier.check_newest(key, entries[-1], newest, proof)]


def absence(view: _View, key: str, at_tx: int | None) -> dict[str, object] | None:
    """The proof that key had no version (as of at_tx), in the JSON docs/proofs.md gives ("Absence"); None
    if it has one. Never written: the key index proof whose path ends away from the key. Written only after
    at_tx: that key index proof names the newest version, and its revision 1 is proven included with a tx
    after at_tx (revisions only grow with transactions)."""
    proof = view.read(lambda c: index_proofs(c, [key]))[key]
    newest = view.verifier.check_index(key, proof, view.head)
    assert proof is not None  # check_index refused a missing proof
    out: dict[str, object] = {"key": key, "method": "key-index", "as_of_tx": at_tx, "head": view.head.to_json(),
                           "key_index": {"key_hash": _map.key_hash(key).hex(), **proof.to_json()},
                           "first_version": None}
    if newest is None:
        view.verifier.absent(key, view.read(lambda c: store.latest_entry(c, key, None)))
        return out
    if at_tx is None:
        return None
    row = view.read(lambda c: store.entry_of(c, key, 1))
    if row is None:
        raise ProofError(f"revision 1 of {key!r} is missing from ledger {view.verifier.path}: a record was deleted")
    first = view.entries(key, [row])[0]
    if first.tx <= at_tx:
        return None
    out["first_version"] = {"tx": first.tx, **{k: first.proof[k] for k in ("leaf_index", "leaf_hash", "leaf_data",
                                                                             "audit_path")}}
    return out


def tx_at_time(view: _View, when: datetime) -> int | None:
    """The last tx with time <= when, proven by the hashed times of its first leaf and of the next tx's (so a
    transaction left out around `when` is a ProofError, not an earlier answer)."""
    when_us = codec.to_time_us(when)
    found = view.read(lambda c: store.last_tx_at_or_before(c, when_us, view.v2))
    after = view.read(lambda c: store.tx_row(c, found.tx + 1 if found else 1, view.v2))
    if after is None and (found.tx if found else 0) != view.head.tx:
        raise ProofError(f"transaction {(found.tx if found else 0) + 1} is missing from the ledger")
    for txrow in (r for r in (found, after) if r is not None):
        erow = view.read(partial(store.entry_at, leaf=txrow.first_leaf))
        if erow is None:
            raise ProofError(f"first entry of tx {txrow.tx} (leaf {txrow.first_leaf}) is missing")
        entry = view.entry(erow.key, erow)
        assert entry.time is not None  # embedded entries always carry their transaction's time
        at_or_before = codec.to_time_us(entry.time) <= when_us
        if entry.tx != txrow.tx or at_or_before != (txrow is found):
            raise ProofError(f"transaction times around {when.isoformat()} do not match the proven leaves")
    return found.tx if found else None
