"""immudb's transaction hashing, re-implemented on plain bytes so a replay can check every transaction itself.

A replay trusts nothing the server says about a transaction except bytes it can re-hash: each entry's digest
(key, KV metadata, sha256 of the stored value) goes into the transaction's entries hash tree, whose root must be
the header's eH; the header's fields give its inner hash; and the accumulative linear hash
Alh(n) = sha256(u64 n || Alh(n-1) || innerHash(n)) chains every header to the one before. A chain that ends at a
state this client trusts therefore fixes every header and every entry digest from transaction 1 on: a server
cannot omit, reorder or alter one without changing the Alh it must match.

The functions here mirror immudb v1.10.0's embedded/store (tx.go, kv_metadata.go, tx_metadata.go, htree); they
work on tuples rather than immudb-py's classes because a replay hashes every transaction of a ledger (immudb-py's
TxHeader/HTree objects cost about ten times more per transaction), and because the mirror re-hashes its own
SQLite rows with the same code. `tests/test_immudb_mirror.py` checks them against immudb-py and a live server.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from notary.errors import ProofError

SET_KEY_PREFIX = 0  # immudb prefixes a plain key/value key with this byte inside transactions
PLAIN_VALUE_PREFIX = b"\x00"  # and stores a plain value behind this byte (a reference behind \x01)
EMPTY_ALH = hashlib.sha256(b"").digest()  # the "previous Alh" of transaction 1

_LEAF, _NODE = b"\x00", b"\x01"
_U64_MASK = (1 << 64) - 1
_sha = hashlib.sha256
_U16 = struct.Struct(">H").pack


class TxRow(NamedTuple):
    """One transaction header, as stored in the mirror (the previous Alh is the row before it)."""

    id: int
    ts: int
    version: int
    md: bytes  # the header metadata as immudb serializes it for hashing
    nentries: int
    eh: bytes
    bl_tx: int
    bl_root: bytes
    alh: bytes


class EntryRow(NamedTuple):
    """One transaction entry: the raw key (with its 1-byte kind prefix), KV metadata bytes, value hash, length."""

    key: bytes
    md: bytes
    hvalue: bytes
    vlen: int


class ScannedTx(NamedTuple):
    """One transaction as a scan returns it (from either transport), before it is checked: its header row, its
    entries, and the previous Alh the server claims it chains on."""

    row: TxRow
    entries: list[EntryRow]
    prev_alh: bytes


# KV metadata attribute codes (embedded/store/kv_metadata.go)
MD_DELETED, MD_EXPIRES, MD_NON_INDEXABLE = 0, 1, 2


def entry_digest(version: int, e: tuple[bytes, bytes, bytes, int]) -> bytes:
    """immudb's TxEntryDigest (v1: u16 len(md) || md || u16 len(key) || key || hValue); e is an EntryRow or any
    tuple laid out like one (the mirror passes its SQLite rows as they come)."""
    key, md, hvalue = e[0], e[1], e[2]
    if version == 1:
        return _sha(_U16(len(md)) + md + _U16(len(key)) + key + hvalue).digest()
    if version == 0:
        if md:
            raise ProofError("immudb transaction of format 0 carries entry metadata, which that format cannot hold")
        return _sha(key + hvalue).digest()
    raise ProofError(f"immudb transaction format {version} is unknown to this client")


def entries_root(version: int, entries: list[Any]) -> bytes:
    """Root of immudb's entries hash tree (htree): leaves sha256(0 || digest), nodes sha256(1 || l || r),
    an odd node promoted unchanged."""
    if not entries:
        raise ProofError("immudb transaction without entries (immudb cannot commit one)")
    level = [_sha(_LEAF + entry_digest(version, e)).digest() for e in entries]
    while len(level) > 1:
        nxt = [_sha(_NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def inner_hash(t: TxRow) -> bytes:
    if t.version == 0:
        counts = struct.pack(">QHH", t.ts & _U64_MASK, 0, t.nentries)
    elif t.version == 1:
        counts = struct.pack(">QHH", t.ts & _U64_MASK, 1, len(t.md)) + t.md + struct.pack(">I", t.nentries)
    else:
        raise ProofError(f"immudb transaction format {t.version} is unknown to this client")
    return _sha(counts + t.eh + struct.pack(">Q", t.bl_tx) + t.bl_root).digest()


def alh(t: TxRow, prev_alh: bytes) -> bytes:
    return _sha(struct.pack(">Q", t.id) + prev_alh + inner_hash(t)).digest()


def check_tx(t: TxRow, entries: list[Any], prev_alh: bytes) -> TxRow:
    """Re-hash one transaction on top of the previous Alh and return it with its Alh filled in.

    Raises ProofError when its entries do not hash to its eH or their count is not the header's.
    """
    if len(entries) != t.nentries:
        raise ProofError(f"immudb transaction {t.id} has {len(entries)} entries, its header says {t.nentries}")
    if entries_root(t.version, entries) != t.eh:
        raise ProofError(f"immudb transaction {t.id}: its entries do not hash to its header's entries hash")
    return t._replace(alh=alh(t, prev_alh))


def key_of(raw: bytes) -> str | None:
    """The notary key of a raw immudb entry key, or None if it is no plain key/value entry (sorted sets, SQL)."""
    if not raw or raw[0] != SET_KEY_PREFIX:
        return None
    return raw[1:].decode("utf-8", "surrogateescape")


def value_hash(value: bytes) -> bytes:
    """The hValue immudb records for a plain value (it hashes the stored bytes, prefix included)."""
    return _sha(PLAIN_VALUE_PREFIX + value).digest()


def holds_exactly(rows: Sequence[EntryRow], kvs: Mapping[bytes, bytes]) -> bool:
    """Whether a transaction's entries are exactly the plain key/values notary wrote: each key with its plain
    prefix, no metadata, the value's hash and length, nothing more (both transports' writes check this)."""
    wrote = {(bytes([SET_KEY_PREFIX]) + k, b"", value_hash(v), len(v) + 1) for k, v in kvs.items()}
    return len(rows) == len(wrote) and {(r.key, r.md, r.hvalue, r.vlen) for r in rows} == wrote


def md_flags(md: bytes) -> tuple[bool, bool, bool]:
    """(deleted, expires, non_indexable) from serialized KV metadata."""
    deleted = expires = non_indexable = False
    i = 0
    while i < len(md):
        code = md[i]
        i += 1
        if code == MD_DELETED:
            deleted = True
        elif code == MD_EXPIRES:
            expires = True
            i += 8
        elif code == MD_NON_INDEXABLE:
            non_indexable = True
        else:
            raise ProofError(f"immudb entry metadata has an unknown attribute {code}")
    return deleted, expires, non_indexable


def replay(txs: Iterable[ScannedTx], first: int, prev_alh: bytes,
           trusted: tuple[int, bytes]) -> Iterator[tuple[TxRow, list[EntryRow]]]:
    """Check each scanned transaction in turn: the next id, chained on the previous Alh, entries hashing to its
    eH, and passing through the trusted (tx, Alh). Yields the checked rows (Alh filled in)."""
    expected = first
    for row, entries, claimed_prev in txs:
        if row.id != expected:
            raise ProofError(f"immudb answered a scan from tx {expected} with tx {row.id}")
        if claimed_prev != prev_alh:
            raise ProofError(f"immudb transaction {row.id} does not chain on transaction {row.id - 1}")
        row = check_tx(row, entries, prev_alh)
        if row.id == trusted[0] and row.alh != trusted[1]:
            raise ProofError(
                f"immudb's transaction {row.id} is not the one this client trusts: the ledger was rewritten"
            )
        yield row, entries
        prev_alh, expected = row.alh, expected + 1
