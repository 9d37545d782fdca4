"""immudb heads as C2SP checkpoints (docs/audit.md, "Checkpoints of an immudb ledger").

immudb's binary linking tree is an RFC 6962 Merkle tree whose leaves are the transactions' Alh (each Alh
commits to its transaction's entries and to every transaction before it): the root over transactions 1..N is
what the header of transaction N+1 carries as BlRoot, and what immudb's own dual proofs walk. So the checkpoint
of an immudb ledger at transaction N is size N and that root, computed by the client from its verified mirror
(every Alh re-derived from the entries and chained to the trusted state), and a witness checks it with the
plain RFC 6962 consistency proofs it checks for any log.

The checkpoint also carries notary's key index of the ledger at that size (notary/ledger/immudb/key_index.py) as
the extension line `notary-key-index <base64>`, as an embedded checkpoint does: the root evidence bundles prove
completeness and absence against. A checkpoint without it (made before it existed) still checks as a log head.

Who signs: immudb's state signature is ECDSA over immudb's own state message, not a signed-note key, so an
immudb checkpoint is signed by an operator's Ed25519 key (`--sign-key`), named by the ledger id. The key
vouches only that its holder saw this head; the tree is the ledger's.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from notary import merkle
from notary.audit import note as notes
from notary.environment import Environment
from notary.errors import ProofError, UsageError
from notary.ledger.base import Ledger, TreeHead
from notary.ledger.immudb import key_index
from notary.ledger.immudb.key_index import KeyIndex
from notary.ledger.immudb.key_index_store import KeyIndexStore, StoredIndex

if TYPE_CHECKING:
    from notary.ledger.immudb.mirror import Mirror


class ImmudbLog:
    """An immudb ledger's transactions as the leaves of its binary linking tree, from the verified mirror."""

    def __init__(self, ledger: Ledger) -> None:
        mirror: Mirror | None = getattr(ledger, "mirror", None)  # a mirrored immudb ledger's
        if mirror is None:
            raise UsageError("a checkpoint of an immudb ledger is computed from the verified mirror, which is off",
                             hint="unset NOTARY_IMMUDB_MIRROR=0 / [immudb] mirror = false")
        self.mirror = mirror
        self.head: TreeHead = ledger.info().head  # catches the mirror up to the verified head
        self.origin = self.head.ledger_id
        self.leaves = [merkle.leaf_hash(alh) for alh in mirror.alhs(self.head.tx)]
        self._store: KeyIndexStore | None = None

    def key_index(self, size: int | None = None) -> KeyIndex | StoredIndex:
        """The key index at size (default: the verified head), from the store kept beside the mirror."""
        return self._index_store().at(len(self.leaves) if size is None else size)

    def key_index_root(self, size: int) -> bytes:
        return self._index_store().root_at(size)

    def _index_store(self) -> KeyIndexStore:
        if self._store is None:
            self._store = KeyIndexStore.open(self.mirror)
        return self._store

    def checkpoint(self, size: int | None = None) -> notes.Checkpoint:
        size = len(self.leaves) if size is None else size
        ext = (notes.KEY_INDEX_EXTENSION + base64.b64encode(self.key_index(size).root).decode(),)
        return notes.Checkpoint(self.origin, size, merkle.root(self.leaves[:size]), ext)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return merkle.consistency_proof(self.leaves[:new], old)

    def check(self, checkpoint: notes.Checkpoint) -> None:
        """ProofError unless checkpoint is this ledger's tree at its size: recomputed from the verified
        transactions, which is stronger than a consistency proof (there is no one to trust for it)."""
        if checkpoint.origin != self.origin:
            raise ProofError(f"the checkpoint is of {checkpoint.origin!r}, this ledger is {self.origin!r}")
        if checkpoint.size > len(self.leaves):
            raise ProofError(f"the checkpoint is at size {checkpoint.size}, beyond this client's verified head "
                             f"(tx {len(self.leaves)}): read the ledger again, or it was shown another history")
        check_tree(self.mirror, checkpoint, self.leaves[:checkpoint.size], self.key_index_root)


def check_tree(mirror: Mirror, checkpoint: notes.Checkpoint, leaves: list[bytes] | None = None,
               index_root: Callable[[int], bytes] | None = None, *, with_index: bool = True) -> None:
    """ProofError unless the checkpoint's root is the binary linking tree over the mirror's first `size`
    transactions and its key-index line (if any: the only extension an immudb checkpoint may carry) the key
    index recomputed at that size. A wrong key index is a split view even when the log agrees: it is what
    evidence bundles prove completeness against. with_index=False (the resident gate, which decides from the
    mirror and must not stall for a whole-ledger build) checks the log only; audits check both."""
    size = checkpoint.size
    if any(not line.startswith(notes.KEY_INDEX_EXTENSION) for line in checkpoint.extensions) or len(
            checkpoint.extensions) > 1:
        raise ProofError("an immudb checkpoint carries no extension line but its key-index root: this one is "
                         "not the ledger's")
    if leaves is None:
        leaves = [merkle.leaf_hash(alh) for alh in mirror.alhs(size)]
    if merkle.root(leaves) != checkpoint.root:
        raise ProofError(f"split view: the checkpoint at size {size} carries another root than this "
                         f"ledger's binary linking tree over its first {size} transactions")
    claimed = checkpoint.key_index_root
    if claimed is not None and with_index:
        built = index_root(size) if index_root is not None else key_index.build(mirror, size).root
        if built != claimed:
            raise ProofError(f"split view of the key index: the checkpoint at size {size} carries another "
                             f"key-index root than this ledger's keys as of transaction {size}")


def operator_key(path: str, env: Environment | None = None) -> Ed25519PrivateKey:
    from notary import keys

    return keys.load_ed25519_key(path, "checkpoint key", "a signed note's key type 0x01", env)


def verifier(origin: str, public: Ed25519PublicKey) -> notes.Verifier:
    return notes.verifier(origin, notes.ED25519, public)
