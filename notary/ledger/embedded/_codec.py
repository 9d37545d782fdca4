"""Byte formats of the embedded ledger: leaf data, the signed tree head message, and its Ed25519 key files.

These are the formats an auditor recomputes by hand (docs/proofs.md), so they are fixed-width big-endian
integers and length-prefixed strings: one byte string has exactly one decoding. Keys are handled as raw
Ed25519 bytes wrapped in their fixed DER prefixes, which keeps cryptography's heavier serialization module
off the `notary verify` path.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from notary.errors import InputError, ProofError

LEAF_MAGIC = b"notary-leaf-v1"
HEAD_MAGIC = b"notary-head-v1"
HEAD_MAGIC_V2 = b"notary-head-v2"  # v1 plus the key index root
_LEAF_FIXED = struct.Struct(">QqQI")  # tx, time_us, revision, key length
_VALUE_LEN = struct.Struct(">Q")
_HEAD = struct.Struct(">Q32sQq")  # tree_size, root, tx, time_us

MAX_KEY_LENGTH = 1024
_KEY_RE = re.compile(r"[\x20-\x7e]+")

# DER prefixes of an Ed25519 SubjectPublicKeyInfo (RFC 8410) and of an unencrypted PKCS#8 private key.
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def check_key(key: object) -> str:
    """Ledger keys are printable ASCII so they sort, print and encode one way only."""
    if not isinstance(key, str):
        raise InputError(f"ledger key must be a string, got {type(key).__name__}")
    if not key or len(key) > MAX_KEY_LENGTH or not _KEY_RE.fullmatch(key):
        shown = key if len(key) <= 80 else key[:77] + "..."
        raise InputError(
            f"invalid ledger key {shown!r}: use 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )
    return key


def check_value(key: str, value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise InputError(f"value of ledger key {key!r} must be bytes, got {type(value).__name__}")


def _leaf_header(tx: int, time_us: int, key: str, revision: int) -> bytes:
    k = key.encode("ascii")
    return LEAF_MAGIC + _LEAF_FIXED.pack(tx, time_us, revision, len(k)) + k


def encode_leaf(tx: int, time_us: int, key: str, revision: int, value: bytes) -> bytes:
    """leaf_data = magic || u64 tx || i64 time_us || u64 revision || u32 len(key) || key || u64 len(value) || value."""
    return _leaf_header(tx, time_us, key, revision) + _VALUE_LEN.pack(len(value)) + value


def leaf_hash_of(tx: int, time_us: int, key: str, revision: int, value: bytes) -> bytes:
    """RFC 9162 leaf hash of encode_leaf(...), without copying a large value into one buffer."""
    h = hashlib.sha256(b"\x00")
    h.update(_leaf_header(tx, time_us, key, revision))
    h.update(_VALUE_LEN.pack(len(value)))
    h.update(value)
    return h.digest()


def decode_leaf(data: bytes) -> tuple[int, int, str, int, bytes]:
    """(tx, time_us, key, revision, value) of leaf data; ProofError unless it is exactly one encoded leaf."""
    try:
        if not data.startswith(LEAF_MAGIC):
            raise ValueError("wrong magic")
        pos = len(LEAF_MAGIC)
        tx, time_us, revision, klen = _LEAF_FIXED.unpack_from(data, pos)
        pos += _LEAF_FIXED.size
        key = data[pos : pos + klen].decode("ascii")
        if len(key) != klen:
            raise ValueError("key truncated")
        pos += klen
        (vlen,) = _VALUE_LEN.unpack_from(data, pos)
        pos += _VALUE_LEN.size
        if len(data) != pos + vlen:
            raise ValueError("value length does not match")
        return tx, time_us, key, revision, bytes(data[pos:])
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise ProofError(f"malformed leaf data: {exc}") from exc


def head_message(tree_size: int, root: bytes, tx: int, time_us: int, map_root: bytes | None = None) -> bytes:
    """What the ledger key signs: magic || u64 tree_size || root (32) || u64 tx || i64 time_us, and with a key
    index (format v2) the v2 magic and its root (32) at the end. The magic says which: one message, one reading."""
    if map_root is None:
        return HEAD_MAGIC + _HEAD.pack(tree_size, root, tx, time_us)
    return HEAD_MAGIC_V2 + _HEAD.pack(tree_size, root, tx, time_us) + map_root


def to_time_us(when: datetime) -> int:
    if when.tzinfo is None:
        raise InputError(f"time {when.isoformat()} has no time zone: give it in UTC (e.g. ...Z)")
    return (when - EPOCH) // timedelta(microseconds=1)


def from_time_us(time_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=time_us)


def spki_der(public_raw: bytes) -> bytes:
    return _SPKI_PREFIX + public_raw


def ledger_id_for(public_raw: bytes) -> str:
    """The ledger's identity is its key: a replaced ledger file cannot keep the old identity."""
    return "file:sha256:" + hashlib.sha256(spki_der(public_raw)).hexdigest()


def _pem(label: str, der: bytes) -> str:
    b64 = base64.b64encode(der).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def public_pem(public_raw: bytes) -> str:
    return _pem("PUBLIC KEY", spki_der(public_raw))


def private_pem(seed: bytes) -> str:
    return _pem("PRIVATE KEY", _PKCS8_PREFIX + seed)


def parse_private_pem(text: str, source: str) -> bytes:
    """The 32-byte Ed25519 seed of a PKCS#8 PEM written by private_pem (or by openssl genpkey)."""
    body = "".join(
        line.strip() for line in text.strip().splitlines() if line.strip() and not line.startswith("-----")
    )
    if "BEGIN PRIVATE KEY" not in text:
        raise ProofError(f"ledger signing key {source} is not an unencrypted PKCS#8 PEM key")
    try:
        der = base64.b64decode(body, validate=True)
    except ValueError as exc:
        raise ProofError(f"ledger signing key {source} is not valid base64 PEM") from exc
    if len(der) != len(_PKCS8_PREFIX) + 32 or not der.startswith(_PKCS8_PREFIX):
        raise ProofError(f"ledger signing key {source} is not an Ed25519 key")
    return der[len(_PKCS8_PREFIX) :]


def check_kvs(kvs: Mapping[str, bytes]) -> list[tuple[str, bytes]]:
    """One transaction's keys and values, checked, in key order (the order their leaves take)."""
    if not isinstance(kvs, Mapping):
        raise InputError(f"a ledger transaction must map keys to values, got {type(kvs).__name__}")
    if not kvs:
        raise InputError("refusing to write an empty transaction")
    for k in kvs:
        check_key(k)
    return [(k, check_value(k, kvs[k])) for k in sorted(kvs)]
