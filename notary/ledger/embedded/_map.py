"""The embedded ledger's key index: a sparse Merkle tree from every key to its newest version.

The RFC 9162 log proves that a version *exists*; this map proves which version is the *newest* (or that a
key was never written), so a deleted or renamed row cannot hide a revocation. Its root is signed in every
tree head beside the log root (docs/proofs.md, "The key index").

Shape: a binary tree of depth 256 addressed by SHA-256(key), bit 0 = the most significant bit of the first
byte, 0 = left. A subtree holding no key hashes to 32 zero bytes; a subtree holding exactly one key hashes to
that key's leaf hash (the leaf sits as high as it is alone, as in the compact trees of Dahlberg, Pulls and
Peeters); any other subtree is an interior node. So a proof is one sibling hash per level down to the leaf,
about log2(n) hashes, and the root depends only on the set of (key, value) pairs, never on insertion order.

    leaf     = SHA-256(0x02 || key_hash (32) || value (48))
    interior = SHA-256(0x03 || left (32) || right (32))
    value    = u64 revision || u64 log leaf index || log leaf hash (32)

Everything here is pure (no I/O): storage hands nodes in through a loader and takes changed nodes back.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple, cast

from notary.errors import ProofError

DEPTH = 256
HASH_SIZE = 32
EMPTY = bytes(HASH_SIZE)
LEAF_PREFIX = b"\x02"
NODE_PREFIX = b"\x03"
_VALUE = struct.Struct(">QQ32s")
VALUE_SIZE = _VALUE.size  # 48

_sha256 = hashlib.sha256


class MapValue(NamedTuple):
    """What the index says about a key: its newest revision and where that version sits in the log."""

    revision: int
    leaf_index: int
    leaf_hash: bytes

    def encode(self) -> bytes:
        return _VALUE.pack(self.revision, self.leaf_index, self.leaf_hash)

    @classmethod
    def decode(cls, data: bytes) -> MapValue:
        if len(data) != VALUE_SIZE:
            raise ProofError(f"key index value has {len(data)} bytes, expected {VALUE_SIZE}")
        revision, leaf_index, leaf_hash = _VALUE.unpack(data)
        return cls(revision, leaf_index, leaf_hash)


def key_hash(key: str) -> bytes:
    return _sha256(key.encode("ascii")).digest()


def leaf_hash(khash: bytes, value: bytes) -> bytes:
    return _sha256(LEAF_PREFIX + khash + value).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(NODE_PREFIX + left + right).digest()


def bit(khash_int: int, depth: int) -> int:
    """The branch a key takes below a node at `depth` (0 = left)."""
    return (khash_int >> (DEPTH - 1 - depth)) & 1


# ------------------------------------------------------------------------------------------------ proofs


class MapProof(NamedTuple):
    """Siblings from the root's children down to the node the walk ended at, and what that node holds.

    leaf is None: the walk ended at an empty subtree (the key is absent). Otherwise (key_hash, value) of the
    one key in that subtree: the asked key (present) or another key sharing the path (the asked key is absent).
    """

    siblings: tuple[bytes, ...]
    leaf: tuple[bytes, bytes] | None

    def to_json(self) -> dict[str, object]:
        return {
            "siblings": [s.hex() for s in self.siblings],
            "leaf": None if self.leaf is None else {"key_hash": self.leaf[0].hex(), "value": self.leaf[1].hex()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> MapProof:
        # The casts only name the shape the operations below expect: any other shape makes them raise one of
        # the errors caught here, so a malformed proof from a file or the wire is a ProofError either way.
        try:
            sibs = tuple(bytes.fromhex(str(s)) for s in cast("Iterable[object]", data["siblings"]))
            raw = cast("Mapping[str, str] | None", data.get("leaf"))
            leaf = None if raw is None else (bytes.fromhex(raw["key_hash"]), bytes.fromhex(raw["value"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProofError(f"malformed key index proof: {exc}") from exc
        return cls(sibs, leaf)


def verify(root: bytes, key: str, proof: MapProof) -> MapValue | None:
    """The key's newest version as the map with this root says, or None if the map proves it absent.

    Raises ProofError unless the proof leads from the key's path to root. Checked first: lengths, that a
    leaf of another key really lies on this key's path (else it would prove nothing about this key).
    """
    khash = key_hash(key)
    depth = len(proof.siblings)
    if (depth > DEPTH or len(root) != HASH_SIZE
            or any(not isinstance(s, bytes) or len(s) != HASH_SIZE for s in proof.siblings)):
        raise ProofError(f"key index proof for {key!r} has a malformed shape")
    kint = int.from_bytes(khash, "big")
    found: MapValue | None = None
    if proof.leaf is None:
        h = EMPTY
    else:
        other, value = proof.leaf
        if (not isinstance(other, bytes) or not isinstance(value, bytes) or len(other) != HASH_SIZE
                or len(value) != VALUE_SIZE):
            raise ProofError(f"key index proof for {key!r} has a malformed leaf")
        if other == khash:
            found = MapValue.decode(value)
        elif (int.from_bytes(other, "big") ^ kint) >> (DEPTH - depth) != 0:
            raise ProofError(f"key index proof for {key!r} ends at a key off its path")
        h = leaf_hash(other, value)
    for d in range(depth - 1, -1, -1):
        s = proof.siblings[d]
        h = node_hash(s, h) if bit(kint, d) else node_hash(h, s)
    if h != root:
        raise ProofError(f"key index proof for {key!r} does not lead to the signed index root")
    return found


# ------------------------------------------------------------------------------------------- node storage

# A node is numbered as in a heap: the root is 1, the children of n are 2n (left) and 2n + 1 (right), so the
# node at depth d on the path of a key hash k is (1 << d) | (k >> (256 - d)), its sibling is n ^ 1, its parent
# n >> 1. Storage keys are that number: an SQLite integer below 2**63 (depths up to 62, which is every node
# in practice: two keys sharing 62 bits of SHA-256 are a one-in-2**31 event even at a billion keys), else
# its 33 big-endian bytes. Integer keys make the key index's B-tree about a third faster than blob keys.
NodeId = int
ROOT: NodeId = 1
# What a stored node holds: its hash, and for a one-key subtree that key's (key_hash, value).
Node = tuple[bytes, "tuple[bytes, bytes] | None"]


_INT_KEYS = 1 << 63


def node_key(nid: NodeId) -> int | bytes:
    return nid if nid < _INT_KEYS else nid.to_bytes(33, "big")


def key_node(key: object) -> NodeId:
    if type(key) is int and 1 <= key < _INT_KEYS:
        return key
    if isinstance(key, bytes) and len(key) == 33 and _INT_KEYS <= (nid := int.from_bytes(key, "big")) < 1 << 257:
        return nid
    raise ProofError(f"malformed key index node number {key!r}")


def depth_of(nid: NodeId) -> int:
    return nid.bit_length() - 1


def path_ids(kint: int, lo: int, hi: int) -> list[NodeId]:
    """Nodes a proof or update of key hash kint may touch at depths [lo, hi): path nodes and siblings."""
    out = []
    for d in range(max(lo, 0), min(hi, DEPTH + 1)):
        n = (1 << d) | (kint >> (DEPTH - d))
        out.append(n)
        if d:
            out.append(n ^ 1)
    return out


def proof_ids(khash: bytes, lo: int, hi: int) -> list[NodeId]:
    return path_ids(int.from_bytes(khash, "big"), lo, hi)


def prove(khash: bytes, nodes: Mapping[NodeId, Node | None]) -> MapProof | None:
    """Walk from the root along khash through nodes; None if the walk needs nodes that were not loaded
    (the caller loads deeper levels and asks again). A node missing from a loaded level is empty."""
    kint = int.from_bytes(khash, "big")
    siblings: list[bytes] = []
    for d in range(DEPTH + 1):
        here = (1 << d) | (kint >> (DEPTH - d))
        if here not in nodes:
            return None
        node = nodes[here]
        if node is None or node[1] is not None:  # empty, or the one key of this subtree
            return MapProof(tuple(siblings), None if node is None else node[1])
        if d == DEPTH:
            raise ProofError("key index has an interior node at full depth")
        sib = ((here << 1) | ((kint >> (DEPTH - d - 1)) & 1)) ^ 1
        if sib not in nodes:
            return None
        s = nodes[sib]
        siblings.append(EMPTY if s is None else s[0])
    raise ProofError("key index walk did not end")  # pragma: no cover - loop always returns


# ------------------------------------------------------------------------------------------------ updates


class MapUpdate:
    """In-memory changes to the map, over nodes loaded from storage.

    load(ids) returns the stored nodes among ids (absent ones are empty). Every node on the path of a key
    about to be set, and every sibling of those, is loaded and *checked* against the signed root before
    anything is changed (prefetch), so an edited or deleted stored node cannot steer a write. Hashes and
    one-key leaves live in two flat dicts (a node missing from `hashes` is empty): this is the writer's hot
    loop, about 20 hashes per key written.
    """

    def __init__(self, root: bytes, load: Callable[[list[NodeId]], Mapping[NodeId, Node]]) -> None:
        self.signed_root = root
        self._load = load
        self.hashes: dict[NodeId, bytes] = {}
        self.leaves: dict[NodeId, tuple[bytes, bytes]] = {}
        self.changed: set[NodeId] = set()
        self._loaded: set[NodeId] = set()
        self._ready: set[bytes] = set()
        # positions taken to be empty without being read (below a one-key leaf that a new key split): the
        # signed index says they are empty, so a stored row there is tampering; the writer checks before commit
        self.assumed_empty: set[NodeId] = set()
        self._walked: tuple[bytes, int, NodeId] | None = None  # the last get()'s walk, until the tree changes

    def _fetch(self, ids: list[NodeId]) -> None:
        want = [i for i in ids if i not in self._loaded]
        if want:
            self._loaded.update(want)
            for n, (h, leaf) in self._load(want).items():
                self.hashes[n] = h
                if leaf is not None:
                    self.leaves[n] = leaf

    def prefetch(self, khashes: Iterable[bytes]) -> None:
        """Load the paths (and siblings) of these keys level by level, one storage call per level, then
        check every loaded path node against its children and the root against the signed one."""
        hashes, leaves = self.hashes, self.leaves
        wanted = set(khashes)
        self._fetch([ROOT])
        interior: list[NodeId] = []
        ends: list[NodeId] = []
        active = sorted({int.from_bytes(k, "big") for k in wanted})
        level = {ROOT} if active else set()
        d = 0
        while level:
            inner = set()
            for n in level:
                if n in leaves:
                    ends.append(n)
                elif n in hashes:
                    inner.add(n)
            if not inner:
                break
            interior.extend(inner)
            self._fetch([c for n in inner for c in (2 * n, 2 * n + 1)])
            d += 1
            shift, top = DEPTH - d, 1 << d
            active = [k for k in active if ((k >> shift) | top) >> 1 in inner]
            level = {(k >> shift) | top for k in active}
        self._check(interior, ends)
        self._ready |= wanted

    def _check(self, interior: list[NodeId], ends: list[NodeId]) -> None:
        hashes, leaves = self.hashes, self.leaves
        if hashes.get(ROOT, EMPTY) != self.signed_root:
            raise ProofError("stored key index root does not match the signed head")
        for n in interior:
            if node_hash(hashes.get(2 * n, EMPTY), hashes.get(2 * n + 1, EMPTY)) != hashes[n]:
                raise ProofError(f"stored key index node at depth {depth_of(n)} does not match its children")
        for n in ends:
            leaf, d = leaves[n], depth_of(n)
            if (not isinstance(leaf[0], bytes) or len(leaf[0]) != HASH_SIZE or not isinstance(leaf[1], bytes)
                    or len(leaf[1]) != VALUE_SIZE or leaf_hash(*leaf) != hashes[n]):
                raise ProofError(f"stored key index leaf at depth {d} does not match its hash")
            if (int.from_bytes(leaf[0], "big") >> (DEPTH - d)) | (1 << d) != n:
                raise ProofError(f"stored key index leaf at depth {d} is off its path")

    def _walk(self, khash: bytes) -> tuple[int, NodeId]:
        """(depth, node) where the walk along khash ends: an empty node or a one-key leaf."""
        if khash not in self._ready:
            raise KeyError("key index path not loaded: prefetch first")  # a caller bug
        kint = int.from_bytes(khash, "big")
        hashes, leaves = self.hashes, self.leaves
        d, n = 0, ROOT
        while n in hashes and n not in leaves:
            d += 1
            n = (1 << d) | (kint >> (DEPTH - d))
        return d, n

    def get(self, khash: bytes) -> MapValue | None:
        """The current value of a prefetched key (None: absent). The walk is kept for a set() of the same
        key that follows (the writer reads a key's revision, then sets it: one walk, not two)."""
        d, n = self._walk(khash)
        self._walked = (khash, d, n)
        leaf = self.leaves.get(n)
        return MapValue.decode(leaf[1]) if leaf is not None and leaf[0] == khash else None

    def set(self, khash: bytes, value: MapValue) -> None:
        """Point khash at value and rehash its path up to the root (eagerly: one pass, each node once)."""
        walked, self._walked = self._walked, None
        d, n = walked[1:] if walked is not None and walked[0] == khash else self._walk(khash)
        kint = int.from_bytes(khash, "big")
        hashes, leaves, changed = self.hashes, self.leaves, self.changed
        other = leaves.get(n)
        if other is not None and other[0] != khash:  # another key alone here: push both down to where they part
            other_int, other_hash = int.from_bytes(other[0], "big"), hashes[n]
            del leaves[n]
            while (other_int >> (DEPTH - 1 - d)) & 1 == (kint >> (DEPTH - 1 - d)) & 1:
                d += 1
                n = (1 << d) | (kint >> (DEPTH - d))
            d += 1
            n = (1 << d) | (kint >> (DEPTH - d))
            hashes[n ^ 1] = other_hash
            leaves[n ^ 1] = other
            changed.add(n ^ 1)
        encoded = value.encode()
        h = leaf_hash(khash, encoded)
        hashes[n] = h
        leaves[n] = (khash, encoded)
        changed.add(n)
        while n > 1:
            if n ^ 1 not in hashes and n ^ 1 not in self._loaded:
                self.assumed_empty.add(n ^ 1)
            s = hashes.get(n ^ 1, EMPTY)
            h = _sha256(NODE_PREFIX + s + h if n & 1 else NODE_PREFIX + h + s).digest()
            n >>= 1
            hashes[n] = h
            changed.add(n)

    def root(self) -> bytes:
        return self.hashes.get(ROOT, EMPTY)

    def changes(self) -> Iterator[tuple[NodeId, Node]]:
        """Every node that changed, with what storage must now hold for it."""
        for n in self.changed:
            yield n, (self.hashes[n], self.leaves.get(n))


# --------------------------------------------------------------------------------------------- full build


def build(items: Sequence[tuple[bytes, bytes]], emit: Callable[[NodeId, Node], None] | None = None) -> bytes:
    """Root of the map holding items ((key_hash, encoded value), sorted by key_hash, unique), in O(n) hashes.
    emit receives every non-empty node: what storage must hold (upgrade) or be compared with (audit)."""
    ints = [int.from_bytes(k, "big") for k, _ in items]

    def sub(depth: int, lo: int, hi: int) -> bytes:
        if hi == lo:
            return EMPTY
        nid = (1 << depth) | (ints[lo] >> (DEPTH - depth))
        if hi - lo == 1:
            h = leaf_hash(*items[lo])
            if emit:
                emit(nid, (h, items[lo]))
            return h
        a, b = lo, hi  # first index in [lo, hi) whose bit at depth is 1
        while a < b:
            m = (a + b) // 2
            if (ints[m] >> (DEPTH - 1 - depth)) & 1:
                b = m
            else:
                a = m + 1
        h = node_hash(sub(depth + 1, lo, a), sub(depth + 1, a, hi))
        if emit:
            emit(nid, (h, None))
        return h

    for i in range(1, len(items)):
        if items[i - 1][0] >= items[i][0]:
            raise ValueError("key index items must be sorted and unique")
    return sub(0, 0, len(items))
