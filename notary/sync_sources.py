"""What `notary sync` needs from its source, per backend: a point after each source transaction that the
destination's cursor can name (tree size and root), and the proof that a cursor's point is the source's own.

- Embedded (edge to centre): the size counts leaves; the root is the head the ledger key signed at that size,
  proven a prefix of the verified head by an RFC 9162 consistency proof (a signature alone would not do: the
  key sits beside the file it signs).
- immudb with the verified mirror (centre to an offline device): the size is the transaction id; the root is
  the transaction's Alh as the mirror replayed it, chained from the trusted state to the verified head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

from notary.errors import IntegrityError, UsageError
from notary.ledger.base import Ledger, TreeHead

if TYPE_CHECKING:
    from notary.ledger.immudb.mirror import Mirror


class SignedSizes(Protocol):
    """An embedded ledger as sync reads it: the head signed at each size, and consistency between sizes."""

    def head_at_size(self, size: int) -> TreeHead | None: ...

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]: ...


class Mirrored(Protocol):
    """An immudb ledger read with its verified mirror."""

    mirror: Mirror


class EmbeddedPoints:
    def __init__(self, ledger: SignedSizes, head: TreeHead) -> None:
        self.ledger, self.head = ledger, head

    def size_after(self, tx: int, size_before: int, entries: int) -> int:
        return size_before + entries

    def root(self, tx: int, size: int) -> bytes:
        signed = self.ledger.head_at_size(size)
        if signed is None or signed.tx != tx:
            raise IntegrityError(f"the source has no signed head for transaction {tx} at tree size {size}")
        self._prove_prefix(size, signed.root)
        return bytes(signed.root)

    def holds(self, tx: int, size: int, root: bytes) -> bool:
        signed = self.ledger.head_at_size(size) if size <= self.head.tree_size else None
        if signed is None or signed.tx != tx or signed.root != root:
            return False
        self._prove_prefix(size, root)
        return True

    def _prove_prefix(self, size: int, root: bytes) -> None:
        from notary import merkle
        from notary.errors import ProofError

        head = self.head
        try:
            merkle.verify_consistency(size, head.tree_size, root, head.root,
                                      self.ledger.consistency_proof(size, head.tree_size))
        except ProofError as exc:
            raise IntegrityError(f"the source's head at tree size {size} is not a prefix of its verified head: "
                                 f"{exc.message}") from exc


class ImmudbPoints:
    def __init__(self, ledger: Mirrored, head: TreeHead) -> None:
        self.ledger, self.head = ledger, head

    def size_after(self, tx: int, size_before: int, entries: int) -> int:
        return tx

    def root(self, tx: int, size: int) -> bytes:
        return bytes(self.ledger.mirror.header(tx).alh)  # the replayed chain, verified up to the head

    def holds(self, tx: int, size: int, root: bytes) -> bool:
        return size == tx <= self.head.tx and self.root(tx, size) == root


def points_for(ledger: Ledger, head: TreeHead) -> EmbeddedPoints | ImmudbPoints:
    if callable(getattr(ledger, "head_at_size", None)) and callable(getattr(ledger, "consistency_proof", None)):
        return EmbeddedPoints(cast(SignedSizes, ledger), head)  # both methods are there, checked above
    if getattr(ledger, "mirror", None) is not None:
        return ImmudbPoints(cast(Mirrored, ledger), head)
    raise UsageError("sync copies from an embedded ledger, or from immudb with its verified mirror",
                     hint="the mirror is on unless NOTARY_IMMUDB_MIRROR=0 / [immudb] mirror = false")
