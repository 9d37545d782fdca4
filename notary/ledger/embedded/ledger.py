"""The embedded ledger: one SQLite file (WAL), an RFC 9162 Merkle tree over its entries, heads signed by the
ledger's own Ed25519 key, and every read proven on the client against its trusted state.

What is proven on every read: the entry's leaf (recomputed from the row, docs/proofs.md) is included in the
current signed head; that head is signed by the ledger key pinned on first use; and it extends (RFC 9162
consistency) the head this client trusted before. Only then does the trusted state move forward. Writes
check the same before writing (never extend a ledger this client cannot trust) and again after committing.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from notary.errors import (
    InputError,
    IntegrityError,
    LedgerUnavailableError,
    ProofError,
    RollbackError,
    UsageError,
)
from notary.ledger.base import Entry, LedgerInfo, TreeHead, WriteReceipt
from notary.ledger.embedded import _codec as codec
from notary.ledger.embedded import _store as store
from notary.ledger.embedded._tree import Frontier, ProofPlan, assemble
from notary.ledger.embedded._verify import Verifier
from notary.ledger.trust import TrustedState, TrustStore

if TYPE_CHECKING:
    from notary.ledger.embedded._audit import AuditReport


def path_from_url(url: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise UsageError(f"not an embedded ledger URL: {url!r}", hint="use file:///absolute/path/ledger.db")
    raw = unquote(parts.path)
    if not raw.startswith("/") or raw.endswith("/"):
        raise UsageError(f"ledger URL {url!r} must name a file by absolute path", hint="file:///path/ledger.db")
    return Path(os.path.abspath(raw)).resolve()


@dataclass(frozen=True)
class _Snap:
    row: store.HeadRow | None
    size: int
    tx: int
    cons: list[list[int]]
    plan: ProofPlan


class EmbeddedLedger(Verifier):
    """Ledger protocol over one SQLite file. Thread-safe (one lock); processes serialize through SQLite and
    a lock file beside the trusted state, so concurrent clients never move trust out of order."""

    backend = "file"

    def __init__(self, url: str, path: Path, conn: sqlite3.Connection, trust: TrustStore, public_raw: bytes):
        super().__init__(path, trust, public_raw)
        self.url = url
        self.notices: list[str] = []
        self._conn = conn
        self._lock = threading.RLock()
        self._signer: Ed25519PrivateKey | None = None
        self.key_path = Path(f"{path}.key")

    # -- opening ------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, trust: TrustStore | None = None, create: bool = True) -> EmbeddedLedger:
        """Open (or with create=True, create) the ledger at url; refuses a ledger replaced at that path."""
        path = path_from_url(url)
        trust = trust if trust is not None else TrustStore()
        pinned = Verifier.location_pin(trust, path)
        if not path.exists():
            if not create:
                raise LedgerUnavailableError(f"no ledger at {path}", hint="check --ledger / NOTARY_LEDGER")
            if pinned is not None:
                raise Verifier.replaced(trust, path, pinned, None)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerUnavailableError(f"cannot create ledger directory {path.parent}: {exc.strerror}") from exc
        conn = store.connect(path, create=create)
        try:
            public_raw, created = store.load_or_create(conn, path, create and pinned is None)
            if public_raw is None:
                if pinned is not None:
                    raise Verifier.replaced(trust, path, pinned, "nothing (it is empty)")
                raise LedgerUnavailableError(f"no ledger at {path} (the file is empty)")
        except BaseException:
            conn.close()
            raise
        ledger = cls(url, path, conn, trust, public_raw)
        try:
            ledger.pin_location(pinned)
            if created:
                with ledger._trust_lock():
                    ledger.advance(None, ledger.empty_head(), first_use_notice=False)
                ledger.notices.append(f"created new ledger {ledger.ledger_id} at {path}")
        except BaseException:
            conn.close()
            raise
        return ledger

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.close()

    def __enter__(self) -> EmbeddedLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------------------

    def write(self, kvs: Mapping[str, bytes]) -> WriteReceipt:
        return self._write([_check_kvs(kvs)], prove_each=True)[0]

    def write_batch(self, txs: Sequence[Mapping[str, bytes]]) -> list[WriteReceipt]:
        if not isinstance(txs, Sequence) or isinstance(txs, (str, bytes)):
            raise InputError(f"write_batch takes a list of transactions, got {type(txs).__name__}")
        checked = [_check_kvs(kvs) for kvs in txs]
        return self._write(checked, prove_each=False) if checked else []

    def _write(self, txs: list[list[tuple[str, bytes]]], *, prove_each: bool) -> list[WriteReceipt]:
        signer = self._signing_key()
        with self._trust_lock():
            trusted = self.trust.load(self.ledger_id)
            with store.transaction(self._conn, self.path, write=True) as conn:
                before = self._verified_head(conn, trusted)  # never extend a ledger we cannot trust
                plan = ProofPlan()
                ids = plan.frontier(before.tree_size)
                nodes = store.fetch_nodes(conn, plan.ids)
                frontier = Frontier(before.tree_size, assemble([[i] for i in ids], nodes))
                if frontier.root() != before.root:
                    raise ProofError(f"stored tree of ledger {self.path} does not match its signed head")
                written = self._append(conn, txs, frontier, before, signer)
            # Committed. Now prove it the way any reader would, against whatever head is current.
            last = written[-1]
            with store.transaction(self._conn, self.path) as conn:
                snap = self._read_head(conn, trusted)
                if snap.size < last["tree_size"]:
                    raise RollbackError(f"ledger {self.path} lost the transaction just written to it")
                leaves = [(i, h) for w in written for i, h in w["leaves"]] if prove_each else []
                parts = [snap.plan.inclusion(i, snap.size) for i, _ in leaves]
                tail = [] if prove_each else snap.plan.consistency(last["tree_size"], snap.size)
                nodes = store.fetch_nodes(conn, snap.plan.ids)
            head, _ = self._finish(snap, trusted, nodes)
            for (index, leaf), path in zip(leaves, parts, strict=True):
                self.check_leaf(leaf, index, head, assemble(path, nodes), what=f"written leaf {index}")
            if not prove_each:
                self.check_extension(last["tree_size"], last["root"], head, assemble(tail, nodes))
            self.advance(trusted, head)
        return [
            WriteReceipt(
                tx=w["tx"], time=codec.from_time_us(w["time_us"]), keys=w["keys"],
                head=TreeHead(self.ledger_id, w["tree_size"], w["root"], w["tx"],
                              codec.from_time_us(w["time_us"]), w["signature"]),
            )
            for w in written
        ]

    def _append(self, conn: sqlite3.Connection, txs: list[list[tuple[str, bytes]]], frontier: Frontier,
                before: TreeHead, signer: Ed25519PrivateKey) -> list[dict[str, Any]]:
        now = max(time.time_ns() // 1000, codec.to_time_us(before.time) if before.time else 0)
        revisions: dict[str, int] = {}
        entry_rows: list[tuple[int, int, str, int, bytes]] = []
        node_rows: list[tuple[int, bytes]] = []
        tx_rows: list[tuple[int, int, int, int, int, bytes, bytes]] = []
        written = []
        tx = before.tx
        for items in txs:
            tx += 1
            first = frontier.size
            leaves = []
            for key, value in items:
                revision = revisions.get(key)
                if revision is None:
                    revision = store.max_revision(conn, key)
                revision += 1
                revisions[key] = revision
                leaf = codec.leaf_hash_of(tx, now, key, revision, value)
                leaves.append((frontier.size, leaf))
                entry_rows.append((frontier.size, tx, key, revision, value))
                frontier.append(leaf, node_rows)
            root = frontier.root()
            signature = signer.sign(codec.head_message(frontier.size, root, tx, now))
            tx_rows.append((tx, now, first, len(items), frontier.size, root, signature))
            written.append({"tx": tx, "time_us": now, "keys": tuple(k for k, _ in items), "leaves": leaves,
                            "tree_size": frontier.size, "root": root, "signature": signature})
        store.insert(conn, entry_rows, node_rows, tx_rows)
        return written

    def _signing_key(self) -> Ed25519PrivateKey:
        if self._signer is None:
            try:
                text = self.key_path.read_text(encoding="ascii")
            except FileNotFoundError:
                raise LedgerUnavailableError(
                    f"cannot write to ledger {self.path}: its signing key {self.key_path} is missing"
                ) from None
            except (OSError, UnicodeDecodeError) as exc:
                raise LedgerUnavailableError(f"cannot read ledger signing key {self.key_path}: {exc}") from exc
            key = Ed25519PrivateKey.from_private_bytes(codec.parse_private_pem(text, str(self.key_path)))
            if key.public_key().public_bytes_raw() != self.public_raw:
                raise IntegrityError(f"signing key {self.key_path} does not belong to ledger {self.ledger_id}")
            self._signer = key
        return self._signer

    # -- reading ------------------------------------------------------------------------------------------

    def get(self, key: str, *, at_tx: int | None = None) -> Entry | None:
        codec.check_key(key)
        if at_tx is not None and (isinstance(at_tx, bool) or not isinstance(at_tx, int) or at_tx < 1):
            raise InputError(f"transaction number must be a positive integer, got {at_tx!r}")
        with self._trust_lock():
            trusted = self.trust.load(self.ledger_id)
            with store.transaction(self._conn, self.path) as conn:
                snap = self._read_head(conn, trusted)
                if at_tx is not None and at_tx > snap.tx:
                    raise InputError(f"ledger {self.path} has no transaction {at_tx} yet (head is tx {snap.tx})")
                row = store.latest_entry(conn, key, at_tx)
                parts = snap.plan.inclusion(row.leaf, snap.size) if row and 0 <= row.leaf < snap.size else []
                nodes = store.fetch_nodes(conn, snap.plan.ids)
            head, cons = self._finish(snap, trusted, nodes)
            entry = self.check_entry(key, row, head, assemble(parts, nodes), cons) if row else None
            if entry is not None and at_tx is not None and entry.tx > at_tx:
                raise ProofError(f"ledger returned tx {entry.tx} for a read as of tx {at_tx}")
            self.advance(trusted, head)
        return entry

    def history(self, key: str) -> list[Entry]:
        codec.check_key(key)
        with self._trust_lock():
            trusted = self.trust.load(self.ledger_id)
            with store.transaction(self._conn, self.path) as conn:
                snap = self._read_head(conn, trusted)
                rows = store.entries_of(conn, key)
                parts = [snap.plan.inclusion(r.leaf, snap.size) if 0 <= r.leaf < snap.size else [] for r in rows]
                nodes = store.fetch_nodes(conn, snap.plan.ids)
            head, cons = self._finish(snap, trusted, nodes)
            entries = [self.check_entry(key, r, head, assemble(p, nodes), cons) for r, p in zip(rows, parts, strict=True)]
            revisions = [e.revision for e in entries]
            if revisions != list(range(1, len(entries) + 1)):
                raise ProofError(f"history of {key!r} has gaps or duplicates: revisions {revisions}")
            self.advance(trusted, head)
        return entries

    def keys(self, prefix: str) -> list[str]:
        if not isinstance(prefix, str):
            raise InputError("key prefix must be a string")
        with self._lock, store.transaction(self._conn, self.path) as conn:
            return store.keys_with_prefix(conn, prefix)

    def tx_at_time(self, when: datetime) -> int | None:
        """Last tx with time <= when, proven by the hashed times of its first leaf and of the next tx's."""
        when_us = codec.to_time_us(when)
        with self._trust_lock():
            trusted = self.trust.load(self.ledger_id)
            with store.transaction(self._conn, self.path) as conn:
                snap = self._read_head(conn, trusted)
                found = store.last_tx_at_or_before(conn, when_us)
                after = store.tx_row(conn, found.tx + 1 if found else 1)
                probes = [(r, store.entry_at(conn, r.first_leaf)) for r in (found, after) if r is not None]
                parts = [snap.plan.inclusion(e.leaf, snap.size) if e and 0 <= e.leaf < snap.size else []
                         for _, e in probes]
                nodes = store.fetch_nodes(conn, snap.plan.ids)
            head, cons = self._finish(snap, trusted, nodes)
            if after is None and (found.tx if found else 0) != head.tx:
                raise ProofError(f"transaction {(found.tx if found else 0) + 1} is missing from the ledger")
            for (txrow, erow), path in zip(probes, parts, strict=True):
                if erow is None:
                    raise ProofError(f"first entry of tx {txrow.tx} (leaf {txrow.first_leaf}) is missing")
                entry = self.check_entry(erow.key, erow, head, assemble(path, nodes), cons)
                at_or_before = codec.to_time_us(entry.time) <= when_us  # type: ignore[arg-type]
                if entry.tx != txrow.tx or at_or_before != (txrow is found):
                    raise ProofError(f"transaction times around {when.isoformat()} do not match the proven leaves")
            self.advance(trusted, head)
        return found.tx if found else None

    def info(self) -> LedgerInfo:
        with self._trust_lock():
            trusted = self.trust.load(self.ledger_id)
            with store.transaction(self._conn, self.path) as conn:
                snap = self._read_head(conn, trusted)
                nodes = store.fetch_nodes(conn, snap.plan.ids)
            head, _ = self._finish(snap, trusted, nodes)
            state = self.advance(trusted, head)
        return LedgerInfo(
            url=self.url, backend=self.backend, ledger_id=self.ledger_id, head=head, trusted=state.to_json(),
            entries=head.tree_size, transactions=head.tx,
            details={"path": str(self.path), "ledger_key": self.ledger_key, "format": store.FORMAT},
        )

    def audit(self, *, all_signatures: bool = True) -> AuditReport:
        """Recompute the whole tree from the entry rows (O(n)): finds rows deleted or edited anywhere, which
        per-read proofs cannot (docs/proofs.md, Limits). Then the head is checked against trust as usual."""
        from notary.ledger.embedded._audit import recompute  # auditors only: kept off the hook's start-up

        with self._trust_lock():
            trusted = self.trust.load(self.ledger_id)
            with store.transaction(self._conn, self.path) as conn:
                snap = self._read_head(conn, trusted)
                report = recompute(self, conn, all_signatures=all_signatures)
                nodes = store.fetch_nodes(conn, snap.plan.ids)
            head, _ = self._finish(snap, trusted, nodes)
            if head != report.head:
                raise ProofError("the audited head is not the current head")
            self.advance(trusted, head)
        return report

    # -- raw proof material (unverified: for auditors, tools and tests) ------------------------------------

    def tree_root(self, size: int) -> bytes:
        """Root of the first size leaves, from stored subtrees (any past tree size, not only tx heads)."""
        return self._material(lambda p: [p.frontier(size)], size)[0]

    def stored_leaf_hash(self, index: int) -> bytes:
        """The leaf hash the tree holds at index (level-0 node), as stored."""
        return self._material(lambda p: p.ranges([(index, index + 1)]), index + 1)[0]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 PATH(index, D[size]) from stored subtrees: O(log n) point reads."""
        if not 0 <= index < size:
            raise InputError(f"leaf {index} is outside a tree of size {size}")
        return self._material(lambda p: p.inclusion(index, size), size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 PROOF(size1, D[size2]) from stored subtrees, 0 < size1 <= size2."""
        if not 0 < size1 <= size2:
            raise InputError(f"no consistency proof from size {size1} to {size2}")
        return self._material(lambda p: p.consistency(size1, size2), size2)

    def _material(self, planner: Any, size: int) -> list[bytes]:
        with self._lock, store.transaction(self._conn, self.path) as conn:
            row = self.valid_row(store.head(conn))
            if size > (row.tree_size if row else 0):
                raise InputError(f"ledger {self.path} has fewer than {size} entries")
            plan = ProofPlan()
            parts = planner(plan)
            nodes = store.fetch_nodes(conn, plan.ids)
        return assemble(parts, nodes)

    # -- plumbing -----------------------------------------------------------------------------------------

    def _read_head(self, conn: sqlite3.Connection, trusted: TrustedState | None) -> _Snap:
        """The head row plus the plan of its consistency proof from the trusted state (same snapshot)."""
        row = self.valid_row(store.head(conn))
        plan = ProofPlan()
        size = row.tree_size if row else 0
        old = trusted.tree_size if trusted else 0
        cons = plan.consistency(old, size) if 0 < old < size else []
        return _Snap(row, size, row.tx if row else 0, cons, plan)

    def _finish(self, snap: _Snap, trusted: TrustedState | None,
                nodes: Mapping[int, bytes]) -> tuple[TreeHead, dict[str, Any]]:
        head = self.check_head(snap.row)
        return head, self.check_trust(trusted, head, assemble(snap.cons, nodes))

    def _verified_head(self, conn: sqlite3.Connection, trusted: TrustedState | None) -> TreeHead:
        snap = self._read_head(conn, trusted)
        return self._finish(snap, trusted, store.fetch_nodes(conn, snap.plan.ids))[0]

    @contextlib.contextmanager
    def _trust_lock(self) -> Iterator[None]:
        """Serialize load-verify-save of this ledger's trusted state across threads and processes."""
        with self._lock:
            fd = None
            try:
                self.trust.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(self.trust.path_for(self.ledger_id).with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                pass  # best effort: the forward-only TrustStore.save still refuses to move trust backwards
            try:
                yield
            finally:
                if fd is not None:
                    os.close(fd)


def _check_kvs(kvs: Mapping[str, bytes]) -> list[tuple[str, bytes]]:
    if not isinstance(kvs, Mapping):
        raise InputError(f"a ledger transaction must map keys to values, got {type(kvs).__name__}")
    if not kvs:
        raise InputError("refusing to write an empty transaction")
    for k in kvs:
        codec.check_key(k)
    return [(k, codec.check_value(k, kvs[k])) for k in sorted(kvs)]
