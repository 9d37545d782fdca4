"""immudb's gateway JSON, parsed strictly into the plain values _verify checks.

The gateway is grpc-gateway over immudb's protobuf API: 64-bit integers come as decimal strings, bytes as base64,
and fields holding their default value are left out. Anything else (a wrong type, a hash that is not 32 bytes,
a negative id, bad base64) is a ProofError: these bytes come from the server, and a server that sends a
malformed proof is treated like one that sends a false one.
"""

from __future__ import annotations

import binascii
import struct
from base64 import b64decode
from collections.abc import Mapping
from typing import Any

from notary.errors import ProofError
from notary.ledger.immudb._replay import MD_DELETED, MD_EXPIRES, MD_NON_INDEXABLE, EntryRow, TxRow, alh
from notary.ledger.immudb._verify import DualProof, EntryInclusion, LinearAdvanceProof, LinearProof

_MAX_U64 = (1 << 64) - 1


def obj(doc: Any, name: str) -> Mapping[str, Any]:
    value = doc.get(name) if isinstance(doc, Mapping) else None
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ProofError(f"immudb gateway answer: {name} is not an object")
    return value


def uint(doc: Mapping[str, Any], name: str, limit: int = _MAX_U64) -> int:
    value = doc.get(name, 0)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise ProofError(f"immudb gateway answer: {name} is not an unsigned integer")
    return value


def raw(doc: Mapping[str, Any], name: str) -> bytes:
    value = doc.get(name, "")
    if not isinstance(value, str):
        raise ProofError(f"immudb gateway answer: {name} is not base64 text")
    try:
        return b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProofError(f"immudb gateway answer: {name} is not base64") from None


def digest(doc: Mapping[str, Any], name: str) -> bytes:
    value = raw(doc, name)
    if len(value) != 32:
        raise ProofError(f"immudb gateway answer: {name} is not a SHA-256 digest")
    return value


def digests(doc: Mapping[str, Any], name: str, limit: int = 4096) -> list[bytes]:
    items = doc.get(name, [])
    if not isinstance(items, list) or len(items) > limit:
        raise ProofError(f"immudb gateway answer: {name} is not a list of digests")
    return [digest({name: item}, name) for item in items]


def flag(doc: Mapping[str, Any], name: str) -> bool:
    value = doc.get(name, False)
    if not isinstance(value, bool):
        raise ProofError(f"immudb gateway answer: {name} is not true or false")
    return value


def tx_metadata(md: Mapping[str, Any]) -> bytes:
    """TxMetadata.Bytes(): truncated-up-to tx (code 0, u64), then extra data (code 1, u16 length)."""
    out = b""
    truncated = uint(md, "truncatedTxID")
    if truncated:
        out += b"\x00" + struct.pack(">Q", truncated)
    extra = raw(md, "extra")
    if len(extra) > 0xFFFF:
        raise ProofError("immudb gateway answer: transaction metadata longer than immudb can store")
    if extra:
        out += b"\x01" + struct.pack(">H", len(extra)) + extra
    return out


def kv_metadata(md: Mapping[str, Any]) -> bytes:
    """KVMetadata.Bytes(): deleted, expires at (u64), not indexed, in that order."""
    out = b""
    if flag(md, "deleted"):
        out += bytes([MD_DELETED])
    if "expiration" in md:
        out += bytes([MD_EXPIRES]) + struct.pack(">Q", uint(obj(md, "expiration"), "expiresAt"))
    if flag(md, "nonIndexable"):
        out += bytes([MD_NON_INDEXABLE])
    return out


def header(doc: Mapping[str, Any]) -> TxRow:
    """A transaction header with its Alh computed from its own fields (the server's word for nothing)."""
    row = TxRow(uint(doc, "id"), uint(doc, "ts"), uint(doc, "version", 0xFFFF),
                tx_metadata(obj(doc, "metadata")), uint(doc, "nentries", 0xFFFFFFFF), digest(doc, "eH"),
                uint(doc, "blTxId"), digest(doc, "blRoot"), b"")
    if row.id == 0:
        raise ProofError("immudb gateway answer: a transaction header without an id")
    return row._replace(alh=alh(row, digest(doc, "prevAlh")))


def entries(tx: Mapping[str, Any]) -> list[EntryRow]:
    items = tx.get("entries", [])
    if not isinstance(items, list):
        raise ProofError("immudb gateway answer: entries is not a list")
    out = []
    for item in items:
        if not isinstance(item, Mapping):
            raise ProofError("immudb gateway answer: an entry is not an object")
        out.append(EntryRow(raw(item, "key"), kv_metadata(obj(item, "metadata")), digest(item, "hValue"),
                            uint(item, "vLen")))
    return out


def dual_proof(doc: Mapping[str, Any]) -> DualProof:
    linear = obj(doc, "linearProof")
    advance = obj(doc, "LinearAdvanceProof")
    inclusions = advance.get("inclusionProofs", [])
    if not isinstance(inclusions, list) or len(inclusions) > 1 << 16:
        raise ProofError("immudb gateway answer: LinearAdvanceProof.inclusionProofs is not a list")
    bl_alh = raw(doc, "targetBlTxAlh")
    if bl_alh and len(bl_alh) != 32:
        raise ProofError("immudb gateway answer: targetBlTxAlh is not a SHA-256 digest")
    return DualProof(
        source=header(obj(doc, "sourceTxHeader")),
        target=header(obj(doc, "targetTxHeader")),
        inclusion=digests(doc, "inclusionProof"),
        consistency=digests(doc, "consistencyProof"),
        target_bl_tx_alh=bl_alh,
        last_inclusion=digests(doc, "lastInclusionProof"),
        linear=LinearProof(uint(linear, "sourceTxId"), uint(linear, "TargetTxId"),
                           digests(linear, "terms", 1 << 20)),
        advance=LinearAdvanceProof(digests(advance, "linearProofTerms", 1 << 16),
                                   [digests(p if isinstance(p, Mapping) else {}, "terms") for p in inclusions]),
    )


def entry_inclusion(doc: Mapping[str, Any]) -> EntryInclusion:
    return EntryInclusion(uint(doc, "leaf", 1 << 31), uint(doc, "width", 1 << 31), digests(doc, "terms"))


def signature(doc: Mapping[str, Any]) -> bytes:
    return raw(obj(doc, "signature"), "signature")
