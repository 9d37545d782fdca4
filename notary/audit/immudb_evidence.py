"""Evidence bundles of an immudb ledger: a subject's status, proven against a signed immudb checkpoint.

An immudb bundle answers the same reads as an embedded one (notary/audit/evidence.py) and the same decision
code runs on them; only the proofs differ. Its head is an immudb checkpoint (notary/audit/immudb_checkpoints.py)
signed by the operator key: size N, the root of immudb's binary linking tree over the Alh of transactions
1..N, and notary's key index of the ledger at N (notary/ledger/immudb/key_index.py). Each version of a key the
decision reads is proven by three steps an auditor re-hashes without immudb:

    value -> immudb's entry digest (key, no metadata, sha256 of the stored value)
          -> its transaction's entries tree (RFC 6962 inclusion to the header's eH)
          -> the header's Alh (immudb's accumulative hash of header and previous Alh)
          -> the binary linking tree (RFC 6962 inclusion of the Alh at tx-1 in size N, to the checkpoint root)

and its history is complete because the key index names its newest version (revision, tx, entry digest) and
the bundle holds revisions 1..R in transaction order; a key the decision found empty carries the key index's
proof that it is absent. A deleted, expiring or metadata-carrying version is refused: notary never writes one.

Who vouches for the key index is the operator key that signs the checkpoint, as the ledger key does for an
embedded ledger; anyone with a verified mirror recomputes it (`notary audit checkpoint --log-vkey`), and a
wrong one is a split view of the key index there.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from notary import keys, merkle
from notary.audit import checkpoints
from notary.audit import note as notes
from notary.audit.bundle_fields import integer, listed, mapping, string
from notary.audit.evidence import (
    FORMAT,
    MAX_VERSIONS,
    BundleReplay,
    about,
    anchored,
    attested_by,
    refuse_member,
    required_decision,
)
from notary.errors import InputError, IntegrityError, ProofError, UsageError
from notary.ledger.base import Entry, Ledger, LedgerInfo, TreeHead
from notary.ledger.embedded import _codec as codec

if TYPE_CHECKING:
    from notary.attest.require import Requirement
    from notary.ledger.immudb.key_index import KeyIndex
    from notary.ledger.immudb.key_index_store import StoredIndex
    from notary.ledger.immudb.mirror import Mirror
from notary.ledger.embedded import _map
from notary.ledger.immudb._replay import EMPTY_ALH, SET_KEY_PREFIX, TxRow, alh, entry_digest, value_hash
from notary.ledger.partitioned._route import LAYOUT_KEY
from notary.status import as_trusted
from notary.verify import TrustedKey, verify_digest

BACKEND = "immudb"
MAX_TXS = 8192


class _AsOf:
    """The ledger's answers as of transaction `size` (each history proven complete to the ledger's newest head,
    so its prefix up to `size` is complete there too), recorded for the bundle."""

    def __init__(self, inner: Ledger, head: TreeHead) -> None:
        self.inner, self.head = inner, head
        self.histories: dict[str, list[Entry]] = {}

    def history(self, key: str) -> list[Entry]:
        found = [e for e in self.inner.history(key) if e.tx <= self.head.tx]
        self.histories[key] = found
        return found

    def info(self) -> LedgerInfo:
        return LedgerInfo(self.inner.url, BACKEND, self.head.ledger_id, self.head, None)


def export(ledger: Ledger, digests: Sequence[str], trusted: Sequence[keys.PublicKey | TrustedKey], subject: str, *,
           operator: Ed25519PrivateKey, checkpoint_notes: Sequence[notes.Note] = (),
           require: Sequence[Requirement] = ()) -> dict[str, object]:
    """The bundle of what verify_digest reads for each digest, as of the verified head, under a checkpoint of
    that head signed by the operator key. Each auditor checkpoint (signed by that key) is first checked
    against the ledger (a split view is a ProofError), then a consistency proof to it goes in."""
    from notary.audit.immudb_checkpoints import ImmudbLog, verifier

    imlog = ImmudbLog(ledger)
    log = verifier(imlog.origin, operator.public_key())
    size = len(imlog.leaves)
    if size == 0:
        raise UsageError("the immudb ledger holds no transaction yet: there is nothing to prove")
    index = imlog.key_index(size)
    cp = imlog.checkpoint(size)
    head = TreeHead(imlog.origin, size, cp.root, size, imlog.head.time, None, index.root)
    tks = as_trusted(trusted)
    rec = _AsOf(ledger, head)
    refuse_member(rec)
    decisions = [required_decision(rec, verify_digest(rec, d, tks), tks, require) for d in digests]
    attested = [a for d in digests for a in attested_by(rec, d, tks, require)]
    consistency = []
    for n in checkpoint_notes:
        old, _ = checkpoints.check(n, log, [], 0)
        imlog.check(old)
        path = imlog.consistency_proof(old.size, size) if 0 < old.size < size else []
        consistency.append({"size": old.size, "root_hash": old.root.hex(), "path": [p.hex() for p in path]})
    histories, txs = _histories(imlog.mirror, rec.histories, index)
    txs.add(size)
    if len(txs) > MAX_TXS:
        raise UsageError(f"the decision reads versions in {len(txs)} transactions, more than a bundle holds "
                         f"({MAX_TXS})")
    alh_paths = merkle.inclusion_proofs(imlog.leaves, [t - 1 for t in sorted(txs)])
    return {
        **about(subject, digests, tks, decisions, require, attested),
        "ledger": {"ledger_id": imlog.origin, "backend": BACKEND, "log_vkey": log.vkey()},
        "head": {"tree_size": size, "tx": size, "root_hash": cp.root.hex(), "key_index_root": index.root.hex(),
                 "checkpoint": checkpoints.signed(cp, lambda text: operator.sign(text.encode()), log).encode().decode()},
        "transactions": {str(t): _tx_json(imlog.mirror, t, alh_paths[t - 1]) for t in sorted(txs)},
        "histories": histories,
        "absent": {k: index.prove(k).to_json() for k, v in sorted(rec.histories.items()) if not v},
        "consistency": consistency,
    }


def _histories(mirror: Mirror, histories: Mapping[str, list[Entry]],
               index: KeyIndex | StoredIndex) -> tuple[dict[str, list[dict[str, object]]], set[int]]:
    out: dict[str, list[dict[str, object]]] = {}
    txs: set[int] = set()
    for key, entries in sorted(histories.items()):
        if not entries:
            continue
        items = [_entry_json(mirror, e) for e in entries]
        items[-1]["key_index"] = index.prove(key).to_json()
        out[key] = items
        txs.update(e.tx for e in entries)
    return out, txs


def _entry_json(mirror: Mirror, e: Entry) -> dict[str, object]:
    """One version and the path from its digest to its transaction's eH, from the mirror's replayed rows."""
    raw = bytes([SET_KEY_PREFIX]) + e.key.encode("ascii")
    rows = mirror.tx_entries(e.tx)
    at = next((i for i, r in enumerate(rows) if r.key == raw), None)
    if at is None or rows[at].hvalue != value_hash(e.value):
        raise ProofError(f"the verified mirror holds no entry of {e.key} with these bytes at tx {e.tx}")
    if rows[at].md:
        raise ProofError(f"{e.key} at tx {e.tx} carries entry metadata (a deletion or expiry): notary never "
                         "writes one, and a bundle cannot stand on it")
    version = mirror.header(e.tx).version
    leaves = [merkle.leaf_hash(entry_digest(version, r)) for r in rows]
    return {"tx": e.tx, "value": base64.b64encode(e.value).decode(), "entry_index": at,
            "entry_path": [p.hex() for p in merkle.inclusion_proof(leaves, at)]}


def _tx_json(mirror: Mirror, tx: int, alh_path: list[bytes]) -> dict[str, object]:
    h = mirror.header(tx)
    prev = mirror.header(tx - 1).alh if tx > 1 else EMPTY_ALH
    return {"ts": h.ts, "version": h.version, "md": h.md.hex(), "nentries": h.nentries, "eh": h.eh.hex(),
            "bl_tx": h.bl_tx, "bl_root": h.bl_root.hex(), "prev_alh": prev.hex(),
            "alh_path": [p.hex() for p in alh_path]}


class ImmudbReplay(BundleReplay):
    """An immudb bundle's answers, every one checked at load against its signed checkpoint; nothing else."""

    def __init__(self, bundle: Mapping[str, object], ledger_id: str | None = None,
                 log_vkey: str | None = None) -> None:

        try:
            if bundle.get("format") != FORMAT:
                raise ValueError(f"it is not a {FORMAT} bundle (format {bundle.get('format')!r})")
            ledger = mapping(bundle["ledger"])
            self.log = notes.parse_vkey(log_vkey if log_vkey is not None else string(ledger["log_vkey"]))
            self.pinned = log_vkey is not None
            self.head = self._head(mapping(bundle["head"]), string(ledger["ledger_id"]), ledger_id)
            self._txs = self._transactions(mapping(bundle["transactions"]))
            if self.head.tx not in self._txs:
                raise ValueError("it holds no header of its head's transaction")
            self.head = self.head._replace(time=self._txs[self.head.tx][1])
            self._read_answers(bundle)
            if self._histories.get(LAYOUT_KEY) != []:  # proven absent: exported from no partition member
                raise ProofError("the bundle does not prove that its ledger is no member of a partitioned ledger "
                                 "(one member cannot prove what the others hold)")
        except (ProofError, UsageError):
            raise
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error, IntegrityError, InputError,
                struct.error, OverflowError, OSError) as exc:
            raise ProofError(f"the evidence bundle is malformed: {getattr(exc, 'message', exc)}") from exc

    def _head(self, h: Mapping[str, object], claimed: str, pinned: str | None) -> TreeHead:
        note = notes.parse_note(string(h["checkpoint"]).encode())
        cp, _ = checkpoints.check(note, self.log, [], 0)  # the operator's signature, under the key it names
        if cp.origin != claimed:
            raise ProofError(f"the bundle's checkpoint is of {cp.origin!r}, the bundle says {claimed!r}")
        if pinned is not None and cp.origin != pinned:
            raise ProofError(f"the bundle is from ledger {cp.origin}, not {pinned}")
        root = cp.key_index_root
        if root is None:
            raise ProofError("the bundle's checkpoint carries no key-index root: it cannot prove completeness")
        if cp.size < 1:
            raise ValueError("its checkpoint is of an empty ledger")
        return TreeHead(cp.origin, cp.size, cp.root, cp.size, None, None, root)

    def _transactions(self, raw: Mapping[str, object]) -> dict[int, tuple[TxRow, datetime]]:
        if len(raw) > MAX_TXS:
            raise ValueError(f"it holds more than {MAX_TXS} transactions")
        out: dict[int, tuple[TxRow, datetime]] = {}
        for name, item in raw.items():
            t = mapping(item)
            tx = int(name)
            if str(tx) != name or not 1 <= tx <= self.head.tx:
                raise ProofError(f"the bundle holds a transaction {name!r} outside its checkpoint's 1..{self.head.tx}")
            row = TxRow(tx, integer(t["ts"]), integer(t["version"]), bytes.fromhex(string(t["md"])),
                        integer(t["nentries"]), _hash(t["eh"]), integer(t["bl_tx"]), _hash(t["bl_root"]), b"")
            if row.nentries >= (1 << (32 if row.version else 16)) or len(row.md) >= 1 << 16:
                raise ValueError(f"its transaction {tx} has fields wider than immudb's header holds")
            link = alh(row, _hash(t["prev_alh"]))  # ProofError for a format this client does not know
            path = [_hash(p) for p in listed(t["alh_path"])]
            try:
                merkle.verify_inclusion(merkle.leaf_hash(link), tx - 1, self.head.tx, path, self.head.root)
            except ProofError as exc:
                raise ProofError(f"the bundle's transaction {tx} is not in its checkpoint's tree: {exc.message}") from None
            out[tx] = (row, datetime.fromtimestamp(row.ts, timezone.utc))
        return out

    def _history(self, key: str, items: Sequence[object]) -> list[Entry]:
        codec.check_key(key)
        if not items or len(items) > MAX_VERSIONS:
            raise ValueError(f"its history of {key!r} has {len(items)} versions")
        entries, digest, last_tx = [], b"", 0
        raw = bytes([SET_KEY_PREFIX]) + key.encode("ascii")
        for revision, item in enumerate(map(mapping, items), start=1):
            tx = integer(item["tx"])
            if tx not in self._txs:
                raise ProofError(f"the bundle's version of {key!r} at tx {tx} comes without its transaction")
            if tx <= last_tx:
                raise ProofError(f"the bundle's history of {key!r} is not in transaction order")
            row, when = self._txs[tx]
            value = base64.b64decode(string(item["value"]), validate=True)
            digest = entry_digest(row.version, (raw, b"", value_hash(value), len(value) + 1))
            path = [_hash(p) for p in listed(item["entry_path"])]
            try:
                merkle.verify_inclusion(merkle.leaf_hash(digest), integer(item["entry_index"]), row.nentries, path,
                                        row.eh)
            except ProofError as exc:
                raise ProofError(f"the bundle's version of {key!r} at tx {tx} is not in that transaction: "
                                 f"{exc.message}") from None
            entries.append(Entry(key, value, tx, when, revision, {"tx": tx, "entry_digest": digest.hex()}))
            last_tx = tx
        newest = self._absent(key, mapping(mapping(items[-1])["key_index"]))
        if newest is None or (newest.revision, newest.leaf_index, newest.leaf_hash) != (len(entries), last_tx, digest):
            raise ProofError(f"the signed key index names another newest version of {key!r}: versions are missing")
        return entries

    def _absent(self, key: str, proof: Mapping[str, object]) -> _map.MapValue | None:
        assert self.head.map_root is not None
        return _map.verify(self.head.map_root, key, _map.MapProof.from_json(proof))

    def check_checkpoint(self, note: notes.Note, witnesses: list[notes.Verifier], min_witnesses: int) -> int:
        """Prove the bundle's head extends a checkpoint the auditor trusts (signed by the operator key,
        cosigned by min_witnesses of witnesses); returns its size. Not a prefix: a split view, ProofError."""
        cp, _ = checkpoints.check(note, self.log, witnesses, min_witnesses)
        if cp.size == self.head.tree_size and cp.key_index_root not in (None, self.head.map_root):
            raise ProofError(f"split view of the key index: the checkpoint at size {cp.size} carries another "
                             "key-index root than the bundle's")
        return anchored(cp, self.head, self.consistency)


def _hash(v: object) -> bytes:
    raw = bytes.fromhex(string(v))
    if len(raw) != 32:
        raise ValueError("a 32-byte hash was expected")
    return raw
