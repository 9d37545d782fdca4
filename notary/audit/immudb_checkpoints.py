"""immudb heads as C2SP checkpoints (docs/audit.md, "Checkpoints of an immudb ledger").

immudb's binary linking tree is an RFC 6962 Merkle tree whose leaves are the transactions' Alh (each Alh
commits to its transaction's entries and to every transaction before it): the root over transactions 1..N is
what the header of transaction N+1 carries as BlRoot, and what immudb's own dual proofs walk. So the checkpoint
of an immudb ledger at transaction N is size N and that root, computed by the client from its verified mirror
(every Alh re-derived from the entries and chained to the trusted state), and a witness checks it with the
plain RFC 6962 consistency proofs it checks for any log.

Who signs: immudb's state signature is ECDSA over immudb's own state message, not a signed-note key, so an
immudb checkpoint is signed by an operator's Ed25519 key (`--sign-key`), named by the ledger id. The key
vouches only that its holder saw this head; the tree is the ledger's.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from notary import merkle
from notary.audit import note as notes
from notary.errors import ProofError, UsageError
from notary.ledger.base import Ledger, TreeHead


class ImmudbLog:
    """An immudb ledger's transactions as the leaves of its binary linking tree, from the verified mirror."""

    def __init__(self, ledger: Ledger) -> None:
        mirror: Any = getattr(ledger, "mirror", None)
        if mirror is None:
            raise UsageError("a checkpoint of an immudb ledger is computed from the verified mirror, which is off",
                             hint="unset NOTARY_IMMUDB_MIRROR=0 / [immudb] mirror = false")
        self.head: TreeHead = ledger.info().head  # catches the mirror up to the verified head
        self.origin = self.head.ledger_id
        self.leaves = [merkle.leaf_hash(alh) for alh in mirror.alhs(self.head.tx)]

    def checkpoint(self) -> notes.Checkpoint:
        return notes.Checkpoint(self.origin, len(self.leaves), merkle.root(self.leaves), ())

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
        if checkpoint.extensions:
            raise ProofError("an immudb checkpoint carries no extension lines")
        if merkle.root(self.leaves[:checkpoint.size]) != checkpoint.root:
            raise ProofError(f"split view: the checkpoint at size {checkpoint.size} carries another root than this "
                             f"ledger's binary linking tree over its first {checkpoint.size} transactions")


def operator_key(path: str) -> Ed25519PrivateKey:
    from notary import keys

    return keys.load_ed25519_key(path, "checkpoint key", "a signed note's key type 0x01")


def verifier(origin: str, public: Ed25519PublicKey) -> notes.Verifier:
    return notes.verifier(origin, notes.ED25519, public)
