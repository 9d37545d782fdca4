"""Stored complete subtrees of the embedded ledger's RFC 9162 tree.

Every complete, aligned subtree (level l, index i covers leaves [i*2^l, (i+1)*2^l)) gets its hash stored once,
when its last leaf is appended, and never changes. Any range that appears in an inclusion or consistency
proof splits into at most ~log2(n) such subtrees, so a proof is a handful of point reads. Node ids pack
(level, index) into one integer so SQLite can keep them in its rowid B-tree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from notary import merkle
from notary.errors import ProofError

_LEVEL_SHIFT = 48


def node_id(level: int, index: int) -> int:
    return (level << _LEVEL_SHIFT) | index


def describe(nid: int) -> str:
    return f"(level {nid >> _LEVEL_SHIFT}, index {nid & ((1 << _LEVEL_SHIFT) - 1)})"


def range_ids(lo: int, hi: int) -> list[int]:
    return [node_id(level, index) for level, index in merkle.subtrees(lo, hi)]


class Frontier:
    """The right edge of the tree (one complete subtree per set bit of size): all an append needs."""

    def __init__(self, size: int, hashes: Sequence[bytes]) -> None:
        self.size = size
        self.levels = [lvl for lvl, _ in merkle.subtrees(0, size)]
        self.hashes = list(hashes)

    @staticmethod
    def ids(size: int) -> list[int]:
        return range_ids(0, size)

    def append(self, leaf: bytes, out: list[tuple[int, bytes]]) -> None:
        """Add one leaf hash; append every subtree it completes (and the leaf itself) to out as (id, hash)."""
        index = self.size
        out.append((index, leaf))  # node_id(0, index) == index
        h, level = leaf, 0
        while self.levels and self.levels[-1] == level:
            self.levels.pop()
            h = merkle.node_hash(self.hashes.pop(), h)
            level += 1
            out.append((node_id(level, index >> level), h))
        self.levels.append(level)
        self.hashes.append(h)
        self.size += 1

    def root(self) -> bytes:
        return merkle.fold_right(self.hashes)


class ProofPlan:
    """The node ids several proofs need, so one query fetches them all; then each proof is assembled."""

    def __init__(self) -> None:
        self.ids: set[int] = set()

    def ranges(self, ranges: Iterable[tuple[int, int]]) -> list[list[int]]:
        parts = [range_ids(lo, hi) for lo, hi in ranges]
        for ids in parts:
            self.ids.update(ids)
        return parts

    def inclusion(self, index: int, size: int) -> list[list[int]]:
        return self.ranges(merkle.inclusion_ranges(index, size))

    def consistency(self, size1: int, size2: int) -> list[list[int]]:
        return self.ranges(merkle.consistency_ranges(size1, size2))

    def frontier(self, size: int) -> list[int]:
        ids = Frontier.ids(size)
        self.ids.update(ids)
        return ids


def assemble(parts: Sequence[Sequence[int]], nodes: Mapping[int, bytes]) -> list[bytes]:
    """Proof path hashes from planned parts; a missing node means the ledger file lost part of its tree."""
    out = []
    for ids in parts:
        try:
            out.append(merkle.fold_right([nodes[i] for i in ids]))
        except KeyError as exc:
            raise ProofError(f"ledger tree node {describe(exc.args[0])} is missing") from None
    return out
