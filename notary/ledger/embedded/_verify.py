"""Client-side checks of the embedded ledger: pure functions of what was read and what the client trusts.

No I/O and no trusted-state writes here: every check takes bytes and rows in and either returns a verified
value or raises an IntegrityError subclass naming the attack it stops (rollback, fork, downgrade, forged
head, edited, deleted or renamed entry). `next_state` computes the state to trust next; the ledger persists it
(TrustKeeper.advance) only after every check of an operation passed, the way python-tuf's trusted
metadata set sits inside its updater.

The checks of one read, in order (docs/proofs.md, "What the client checks, every time"):
  1. which ledger: the location pin (_location.py), before anything is read;
  2. head signature (check_head), over the log root and, from format v2, the key index root;
  3. consistency with trust (check_trust): RFC 9162 section 2.1.4 proof from the trusted size; no rollback,
     no fork, no downgrade of the key index;
  4. newest version or absence (check_index, check_named, check_newest, absent): the key index proof, docs/proofs.md
     "The key index";
  5. inclusion (check_entry, check_leaf): the leaf recomputed from the row, RFC 9162 section 2.1.3 proof;
  6. next_state: what the ledger then persists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypedDict

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from notary import merkle
from notary.errors import IntegrityError, ProofError, RollbackError
from notary.ledger.base import Entry, TreeHead
from notary.ledger.embedded import _codec as codec
from notary.ledger.embedded import _map
from notary.ledger.embedded._store import EntryRow, HeadRow
from notary.ledger.trust import TrustedState

INDEX_ROOT = "key_index_root"  # trusted-state extra: the key index root of the trusted head (format v2)


class Consistency(TypedDict):
    """The consistency part of an entry's proof JSON (docs/proofs.md): from the trusted state to the head."""

    from_size: int
    from_root: str
    to_size: int
    to_root: str
    path: list[str]


class Verifier:
    """The checks for one ledger (its public key); path is only for messages."""

    def __init__(self, path: Path, public_raw: bytes) -> None:
        self.path = path
        self.public_raw = public_raw
        self.ledger_id = codec.ledger_id_for(public_raw)
        self.ledger_key = codec.public_pem(public_raw)
        self._public = Ed25519PublicKey.from_public_bytes(public_raw)

    # -- heads -----------------------------------------------------------------------------------------------

    def empty_head(self, v2: bool = True) -> TreeHead:
        """Before the first transaction (nothing signed yet): the empty log, and the empty key index."""
        return TreeHead(self.ledger_id, 0, merkle.EMPTY_ROOT, 0, map_root=_map.EMPTY if v2 else None)

    def valid_row(self, row: HeadRow | None) -> HeadRow | None:
        """Reject a head row of the wrong shape before any of its numbers is used to plan a proof."""
        if row is None:
            return None
        ints = (row.tx, row.time_us, row.first_leaf, row.leaf_count, row.tree_size)
        if (
            not all(type(v) is int and v >= 0 for v in ints)
            or not isinstance(row.root, bytes) or len(row.root) != merkle.HASH_SIZE
            or not (row.map_root is None or (isinstance(row.map_root, bytes) and len(row.map_root) == 32))
            or not isinstance(row.signature, bytes) or len(row.signature) != 64
            or row.leaf_count < 1 or row.first_leaf + row.leaf_count != row.tree_size or row.tx < 1
        ):
            raise IntegrityError(f"ledger {self.path} has a malformed head row for tx {row.tx!r}")
        return row

    def check_head(self, row: HeadRow | None) -> TreeHead:
        if row is None:
            return self.empty_head()
        message = codec.head_message(row.tree_size, row.root, row.tx, row.time_us, row.map_root)
        try:
            self._public.verify(row.signature, message)
        except InvalidSignature:
            raise ProofError(
                f"tree head of tx {row.tx} (size {row.tree_size}) in {self.path} is not signed by the ledger key"
            ) from None
        return TreeHead(self.ledger_id, row.tree_size, row.root, row.tx, codec.from_time_us(row.time_us),
                        row.signature, row.map_root)

    def check_trust(self, trusted: TrustedState | None, head: TreeHead, path: Sequence[bytes]) -> Consistency:
        """Prove head extends the trusted state; returns the consistency part of the proof JSON."""
        if trusted is None:
            old_size, old_root = 0, merkle.EMPTY_ROOT
        else:
            if trusted.ledger_key and trusted.ledger_key != self.ledger_key:
                raise RollbackError(f"ledger {self.ledger_id} at {self.path} changed its signing key")
            old_size, old_root = trusted.tree_size, bytes.fromhex(trusted.root_hash)
            index_root = trusted.extra.get(INDEX_ROOT)
            if index_root and head.map_root is None:
                raise RollbackError(
                    f"ledger {self.path} lost its key index: this client already trusted a head with one, so it "
                    "can no longer prove completeness (a downgraded or replaced ledger)"
                )
            if index_root and head.tree_size == old_size and head.map_root != bytes.fromhex(index_root):
                raise RollbackError(f"ledger {self.path} forked: size {old_size} now has a different key index")
        if head.tree_size < old_size:
            raise RollbackError(
                f"ledger {self.path} is at size {head.tree_size}, older than size {old_size} this client "
                "already trusted: it was rolled back or truncated"
            )
        if head.tree_size == old_size and head.root != old_root:
            raise RollbackError(f"ledger {self.path} forked: size {old_size} now has a different root")
        if 0 < old_size < head.tree_size:
            try:
                merkle.verify_consistency(old_size, head.tree_size, old_root, head.root, path)
            except ProofError as exc:
                raise ProofError(
                    f"ledger {self.path} at size {head.tree_size} does not extend the trusted state at size "
                    f"{old_size}: {exc.message}"
                ) from exc
        return {
            "from_size": old_size, "from_root": old_root.hex(),
            "to_size": head.tree_size, "to_root": head.root.hex(),
            "path": [p.hex() for p in path] if 0 < old_size < head.tree_size else [],
        }

    def check_extension(self, size: int, root: bytes, head: TreeHead, path: Sequence[bytes]) -> None:
        """Prove the tree we just wrote (size, root) is a prefix of head (equal, or consistent with it)."""
        try:
            merkle.verify_consistency(size, head.tree_size, root, head.root, path)
        except ProofError as exc:
            raise ProofError(f"the transactions just written are not in ledger head {head.tree_size}: "
                             f"{exc.message}") from exc

    # -- leaves ----------------------------------------------------------------------------------------------

    def check_leaf(self, leaf: bytes, index: int, head: TreeHead, path: Sequence[bytes], *, what: str) -> None:
        try:
            merkle.verify_inclusion(leaf, index, head.tree_size, path, head.root)
        except ProofError as exc:
            raise ProofError(f"{what} is not in the signed tree of size {head.tree_size}: {exc.message}") from exc

    def check_entry(self, key: str, row: EntryRow, head: TreeHead, path: Sequence[bytes],
                    consistency: Mapping[str, object]) -> Entry:
        """Recompute the leaf from the row (with the key that was asked for) and prove it in head."""
        what = f"entry {key!r} revision {row.revision} (leaf {row.leaf})"
        if not isinstance(row.value, bytes) or type(row.tx) is not int or type(row.revision) is not int:
            raise IntegrityError(f"ledger {self.path} holds a malformed row for {what}")
        if row.time_us < 0:
            raise ProofError(f"{what} belongs to a transaction that is missing from the ledger")
        data = codec.encode_leaf(row.tx, row.time_us, key, row.revision, row.value)
        leaf = merkle.leaf_hash(data)
        self.check_leaf(leaf, row.leaf, head, path, what=what)
        proof = {
            "format": "rfc9162",
            "hash": "sha256",
            "ledger_id": self.ledger_id,
            "ledger_key": self.ledger_key,
            "leaf_index": row.leaf,
            "tree_size": head.tree_size,
            "leaf_hash": leaf.hex(),
            "leaf_data": data.hex(),
            "audit_path": [p.hex() for p in path],
            "root_hash": head.root.hex(),
            "head_tx": head.tx,
            "head_time_us": codec.to_time_us(head.time) if head.time else None,
            "head_signature": head.signature.hex() if head.signature else None,
            **({"key_index_root": head.map_root.hex()} if head.map_root is not None else {}),
            "consistency": consistency,
        }
        return Entry(key, row.value, row.tx, codec.from_time_us(row.time_us), row.revision, proof)

    # -- the key index (completeness) ------------------------------------------------------------------------

    def check_index(self, key: str, proof: _map.MapProof | None, head: TreeHead) -> _map.MapValue | None:
        """What the signed key index says is key's newest version (None: never written), proven to head."""
        if head.map_root is None:
            raise ProofError("internal: no key index in this head")  # callers check head.map_root first
        if proof is None:
            raise ProofError(f"key index path of {key!r} is missing from ledger {self.path}")
        return _map.verify(head.map_root, key, proof)

    def check_named(self, key: str, row: EntryRow | None, newest: _map.MapValue) -> EntryRow:
        """The row the index names must be exactly that version of key (its inclusion is checked next)."""
        if row is None:
            raise ProofError(f"{_named(key, newest)}, but the ledger has no such entry: a record was deleted")
        if row.key != key:
            raise ProofError(f"{_named(key, newest)}, but that entry is stored under {row.key!r}: a record was renamed")
        if row.revision != newest.revision or row.leaf != newest.leaf_index:
            raise ProofError(f"{_named(key, newest)}, but the stored entry is revision {row.revision} at leaf {row.leaf}")
        return row

    def check_newest(self, key: str, entry: Entry, newest: _map.MapValue, proof: _map.MapProof) -> Entry:
        """The included entry of the named row must hash to the leaf the index holds; attach the index proof."""
        if entry.proof["leaf_hash"] != newest.leaf_hash.hex():
            raise ProofError(f"{_named(key, newest)}, but the stored entry is another version")
        return with_index_proof(entry, key, proof)

    def absent(self, key: str, stray: EntryRow | None) -> None:
        """The index proved key absent: a stored row under that key can only be a renamed or forged one."""
        if stray is not None:
            raise ProofError(f"ledger {self.path} holds an entry under {key!r} (leaf {stray.leaf}), a key the "
                             "signed key index says was never written: a record was renamed or forged")

    # -- trust -----------------------------------------------------------------------------------------------

    def next_state(self, trusted: TrustedState | None, head: TreeHead) -> TrustedState:
        """The state to trust once every check against head passed (step 6). Pure: the caller persists it,
        and the TrustStore refuses to move it backwards or sideways whatever a caller does."""
        extra = dict(trusted.extra) if trusted else {}
        if head.map_root is not None:
            extra[INDEX_ROOT] = head.map_root.hex()
        return TrustedState(self.ledger_id, head.tree_size, head.root.hex(), head.tx, ledger_key=self.ledger_key,
                            extra=extra)


def _named(key: str, newest: _map.MapValue) -> str:
    return f"the signed key index says {key!r} is at revision {newest.revision} (leaf {newest.leaf_index})"


def with_index_proof(entry: Entry, key: str, proof: _map.MapProof) -> Entry:
    """Attach the key index proof (docs/proofs.md, "The key index") to an entry's proof JSON."""
    return Entry(entry.key, entry.value, entry.tx, entry.time, entry.revision,
                 {**entry.proof, "key_index": {"key_hash": _map.key_hash(key).hex(), **proof.to_json()}})
