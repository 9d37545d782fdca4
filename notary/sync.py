"""Verified sync: every transaction of one ledger copied to another, the signed envelopes byte for byte: an
embedded ledger (an edge device's, a laptop's) up to the centre's immudb, or the centre's down to a device
(notary.sync_sources: what each kind of source proves). What came from the destination is not copied back.

Why it can be killed at any moment and run again without losing or duplicating anything: consecutive source
transactions are packed into one destination transaction (as long as no key repeats in it, so every version
of every key arrives, in order), and that transaction also writes the cursor `sync/<hash of the source ledger id>`: the
last source transaction it carries, and the source's signed head after it. The cursor moves only with the
data it describes, atomically, so the destination's newest cursor (a proven read; on immudb the verified
mirror proves it newest) says exactly where to resume. Packing is what makes a centre's immudb, which commits
each transaction to disk, take thousands of records a second rather than one transaction's commit each.

Why a tampered source writes nothing: the source's range is read with `changes`, which proves every entry
included in a head consistent with the trusted state and the range complete, before the first write; each
cursor's head is the one the source's ledger key signed at that size, proven a prefix of the verified head. A
destination cursor whose head the source does not have (the source was rewritten after an earlier sync, or
another ledger took its name) is an integrity error. Each write is verified by the destination as every
write is."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import NamedTuple

from notary import jsonsafe
from notary.errors import IntegrityError, UsageError
from notary.ledger.base import Entry, Ledger, TreeHead
from notary.ledger.partitioned._route import LAYOUT_KEY
from notary.ledger.partitioned.guard import refuse_member_write
from notary.sync_sources import EmbeddedPoints, ImmudbPoints, points_for

Points = EmbeddedPoints | ImmudbPoints

CURSOR_PREFIX = "sync/"
CURSOR_SCHEMA = "notary.sync-cursor/v1"
DEFAULT_BATCH = 64
MAX_BATCH = 4096
MAX_CURSOR = 4096
# entries per destination transaction when consecutive source transactions are packed into one (immudb takes
# 1024 by default; one is the cursor)
MAX_PACKED = 1000


@dataclass(frozen=True)
class Cursor:
    """Where the destination stands: source transactions 1..tx are in it, the source's head then being head."""

    source: str
    tx: int
    tree_size: int
    root: bytes

    def to_bytes(self) -> bytes:
        return json.dumps({"schema": CURSOR_SCHEMA, "source": self.source, "tx": self.tx,
                           "tree_size": self.tree_size, "root": self.root.hex()},
                          sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, raw: bytes, source: str, where: str) -> Cursor:
        """A cursor as the destination holds it: anything off its shape is an integrity error, not a restart."""
        if len(raw) > MAX_CURSOR:
            raise IntegrityError(f"{where} is larger than a sync cursor can be")
        data = jsonsafe.parse(raw, where, error=IntegrityError)
        try:
            if not isinstance(data, dict) or data.get("schema") != CURSOR_SCHEMA or data.get("source") != source:
                raise ValueError("not a sync cursor of this source")
            tx, size, root_hex = data["tx"], data["tree_size"], data["root"]
            if not isinstance(root_hex, str):  # what bytes.fromhex says of any other JSON value
                raise TypeError(f"fromhex() argument must be str, not {'None' if root_hex is None else type(root_hex).__name__}")
            root = bytes.fromhex(root_hex)
            if type(tx) is not int or type(size) is not int or not 1 <= tx <= size or len(root) != 32:
                raise ValueError("its transaction, size or root is out of shape")
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{where} is not a sync cursor: {exc}") from exc
        return cls(source, tx, size, root)


@dataclass
class Progress:
    """What a run did so far, for a progress line and the final report."""

    source_head: TreeHead
    start_tx: int  # the destination held source transactions 1..start_tx when the run began
    done_tx: int
    entries: int = 0
    transactions: int = 0  # source transactions copied
    written: int = 0  # destination transactions


def cursor_key(source_id: str) -> str:
    """sync/<first 32 hex of the SHA-256 of the source's ledger id>: any id (an immudb one has a /) names one
    key; the cursor's value holds the id itself."""
    if not source_id or len(source_id) > 512:
        raise UsageError("the source ledger's id cannot name a sync cursor")
    return CURSOR_PREFIX + hashlib.sha256(source_id.encode()).hexdigest()[:32]


def _ids(source: Ledger, destination: Ledger) -> tuple[TreeHead, str]:
    """(the source's verified head, the destination's ledger id), refusing one ledger twice."""
    head = source.info().head
    dest_id = str(getattr(destination, "ledger_id", "") or destination.info().ledger_id)
    if head.ledger_id == dest_id or source.url == destination.url:
        raise UsageError("sync needs two different ledgers", hint="--from and --to name the same one")
    return head, dest_id


def destination_cursor(points: Points, destination: Ledger, head: TreeHead) -> Cursor | None:
    """The destination's newest cursor for the source, checked against it: None when nothing was synced."""
    key = cursor_key(head.ledger_id)
    entry = destination.get(key)
    if entry is None:
        return None
    cursor = Cursor.parse(entry.value, head.ledger_id, f"sync cursor {key} (destination tx {entry.tx})")
    if not points.holds(cursor.tx, cursor.tree_size, cursor.root):
        raise IntegrityError(
            f"the destination holds source transactions 1..{cursor.tx} (tree size {cursor.tree_size}), but the "
            "source's verified history has another head there or none: the source was rewritten after the last "
            "sync, or another ledger uses its id")
    return cursor


def status(source: Ledger, destination: Ledger) -> tuple[TreeHead, Cursor | None]:
    """(the source's verified head, the destination's checked cursor): how far the two are proven to agree."""
    head, _ = _ids(source, destination)
    return head, destination_cursor(points_for(source, head), destination, head)


def _transactions(source: Ledger, after: Cursor | None, upto: TreeHead) -> Iterator[tuple[int, list[Entry]]]:
    """Each source transaction's entries, as the source proves them (what is copied of them: _copied)."""
    entries = source.changes(after.tx if after else 0, upto.tx)
    for tx, group in groupby(entries, key=lambda e: e.tx):
        yield tx, list(group)


def _copied(entries: list[Entry], echo: str) -> list[Entry]:
    """What of one source transaction goes to the destination: nothing of a transaction that came from the
    destination itself (it carries the destination's cursor: an earlier sync the other way), no cursor, and no
    partition layout (a member's own place, not a record: docs/partitions.md)."""
    if any(e.key == echo for e in entries):
        return []
    return [e for e in entries if not e.key.startswith(CURSOR_PREFIX) and e.key != LAYOUT_KEY]


def sync(source: Ledger, destination: Ledger, *, batch: int = DEFAULT_BATCH,
         on_batch: Callable[[Progress], None] | None = None) -> Progress:
    """Copy every source transaction the destination lacks, `batch` source transactions per batch."""
    if not 1 <= batch <= MAX_BATCH:
        raise UsageError(f"--batch must be 1..{MAX_BATCH}, not {batch}")
    refuse_member_write(destination)
    head, dest_id = _ids(source, destination)
    points = points_for(source, head)
    cursor = destination_cursor(points, destination, head)
    done = Progress(head, cursor.tx if cursor else 0, cursor.tx if cursor else 0)
    if cursor is not None and cursor.tx == head.tx:
        return done
    echo = cursor_key(dest_id)
    plan = _plan(source, points, cursor, head, batch, echo)  # read and proven first: a tampered source writes nothing
    key = cursor_key(head.ledger_id)
    chunk: list[dict[str, bytes]] = []  # destination transactions of this batch
    packing: dict[str, bytes] = {}  # the one being filled
    taken = 0  # source transactions in chunk and packing
    # the second pass proves the range again as it streams: constant memory, whatever the source's size
    for (tx, entries), step in zip(_transactions(source, cursor, head), plan, strict=True):
        copied = _copied(entries, echo)
        if tx != step.tx or len(copied) != step.entries:
            raise IntegrityError(f"the source changed between its two reads (transaction {tx})")
        packing.update((e.key, e.value) for e in copied)
        taken += 1
        done.entries += len(copied)
        if step.root is not None:  # the last source tx of a destination tx: its cursor moves with it
            packing[key] = Cursor(head.ledger_id, tx, step.size, step.root).to_bytes()
            chunk.append(packing)
            packing = {}
        if step.batch_end:
            destination.write_batch(chunk)
            done.done_tx, done.written, done.transactions = tx, done.written + len(chunk), done.transactions + taken
            chunk, taken = [], 0
            if on_batch is not None:
                on_batch(done)
    return done


class _Step(NamedTuple):
    tx: int
    entries: int  # entries copied (after _copied)
    size: int  # the source's tree size after tx
    root: bytes | None  # the source's root there, proven its own, where tx ends a destination transaction
    batch_end: bool


@dataclass
class _Planned:
    """A _Step while the plan is made: whether it ends a destination transaction is known one step later."""

    tx: int
    entries: int
    size: int
    ends: bool = False
    batch_end: bool = False


def _plan(source: Ledger, points: Points, cursor: Cursor | None, head: TreeHead, batch: int,
          echo: str) -> list[_Step]:
    """Every transaction to copy, each entry proven and the range proven complete, and where each destination
    transaction and batch ends: a destination transaction takes consecutive source transactions while no key
    repeats and it stays under MAX_PACKED entries; a batch takes `batch` source transactions."""
    expected, size = (cursor.tx if cursor else 0) + 1, cursor.tree_size if cursor else 0
    steps: list[_Planned] = []
    packed: set[str] = set()
    taken = 0
    for tx, entries in _transactions(source, cursor, head):  # one snapshot: no other read of source inside
        if tx != expected:
            raise IntegrityError(f"source transaction {expected} is missing from the proven range")
        copied = _copied(entries, echo)
        keys = {e.key for e in copied}
        if len(keys) != len(copied):
            raise IntegrityError(f"source transaction {tx} writes a key twice")
        if steps and (taken == 0 or len(packed) + len(keys) >= MAX_PACKED or not packed.isdisjoint(keys)):
            steps[-1].ends = True  # the previous source tx ends a destination transaction
            packed = set()
        size = points.size_after(tx, size, len(entries))
        packed |= keys
        taken += 1
        steps.append(_Planned(tx, len(copied), size, batch_end=taken == batch))
        taken %= batch
        expected += 1
    if expected != head.tx + 1:
        raise IntegrityError(f"the proven range ends at source transaction {expected - 1}, not {head.tx}")
    if steps:
        steps[-1].ends = steps[-1].batch_end = True
    return [_Step(p.tx, p.entries, p.size, points.root(p.tx, p.size) if p.ends else None, p.batch_end)
            for p in steps]


def report(progress: Progress) -> dict[str, object]:
    """The run or the status as JSON (docs/json.md, notary.sync/v1)."""
    head = progress.source_head
    return {"source_ledger_id": head.ledger_id, "source_head": head.to_json(), "synced_tx": progress.done_tx,
            "behind": head.tx - progress.done_tx, "started_at_tx": progress.start_tx,
            "transactions_copied": progress.transactions, "transactions_written": progress.written,
            "entries_copied": progress.entries}
