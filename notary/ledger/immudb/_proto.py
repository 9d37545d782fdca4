"""immudb's protobuf answers (immudb-py's gRPC messages) as the plain values _verify checks, like _wire for the
gateway's JSON: the gRPC transport's edge, where an untyped message becomes typed proof data.

Headers get their Alh computed from their own fields and the previous Alh they name, exactly as _wire does, so a
proof through gRPC is checked by the same code as one through the gateway.
"""

from __future__ import annotations

import struct
from typing import Any

from notary.ledger.immudb._replay import (
    MD_DELETED,
    MD_EXPIRES,
    MD_NON_INDEXABLE,
    EntryRow,
    ScannedTx,
    TxRow,
    alh,
)
from notary.ledger.immudb._transport import TxProof
from notary.ledger.immudb._verify import DualProof, EntryInclusion, LinearAdvanceProof, LinearProof

Message = Any  # an immudb-py protobuf message: immudb-py ships no types
_U64_MASK = (1 << 64) - 1


def kv_metadata_bytes(md: Message | None) -> bytes:
    """immudb's KVMetadata.Bytes() from the protobuf message (None or unset: no metadata)."""
    if md is None:
        return b""
    out = b""
    if md.deleted:
        out += bytes([MD_DELETED])
    if md.HasField("expiration"):
        out += bytes([MD_EXPIRES]) + struct.pack(">Q", int(md.expiration.expiresAt) & _U64_MASK)
    if md.nonIndexable:
        out += bytes([MD_NON_INDEXABLE])
    return out


def tx_metadata_bytes(md: Message | None) -> bytes:
    """immudb's TxMetadata.Bytes(): truncated-up-to-tx (code 0, u64), then extra data (code 1, u16 length)."""
    if md is None:
        return b""
    out = b""
    if int(md.truncatedTxID) > 0:
        out += b"\x00" + struct.pack(">Q", int(md.truncatedTxID))
    extra = bytes(md.extra)
    if extra:
        out += b"\x01" + struct.pack(">H", len(extra)) + extra
    return out


def _metadata(msg: Message) -> Message | None:
    return msg.metadata if msg.HasField("metadata") else None


def rows_from_proto(tx: Message) -> tuple[TxRow, list[EntryRow]]:
    """A schema.Tx (from TxScan without an entries spec: every entry, digests only) as plain rows.

    The Alh field is computed later by `check_tx`; the server's prevAlh is not kept (the chain supplies it).
    """
    h = tx.header
    row = TxRow(int(h.id), int(h.ts), int(h.version), tx_metadata_bytes(_metadata(h)), int(h.nentries),
                bytes(h.eH), int(h.blTxId), bytes(h.blRoot), b"")
    return row, entries(tx)


def entries(tx: Message) -> list[EntryRow]:
    return [EntryRow(bytes(e.key), kv_metadata_bytes(_metadata(e)), bytes(e.hValue), int(e.vLen))
            for e in tx.entries]


def scanned_from_proto(tx: Message) -> ScannedTx:
    row, rows = rows_from_proto(tx)
    return ScannedTx(row, rows, bytes(tx.header.prevAlh))


def header(h: Message) -> TxRow:
    """A transaction header with its Alh computed from its own fields (the server's word for nothing)."""
    row = TxRow(int(h.id), int(h.ts), int(h.version), tx_metadata_bytes(_metadata(h)), int(h.nentries),
                bytes(h.eH), int(h.blTxId), bytes(h.blRoot), b"")
    return row._replace(alh=alh(row, bytes(h.prevAlh)))


def linear_advance(p: Message | None) -> LinearAdvanceProof:
    if p is None:
        return LinearAdvanceProof([], [])
    return LinearAdvanceProof([bytes(t) for t in p.linearProofTerms], [[bytes(t) for t in i.terms]
                                                                        for i in p.inclusionProofs])


def dual_proof(p: Message) -> DualProof:
    lp = p.linearProof
    return DualProof(
        source=header(p.sourceTxHeader),
        target=header(p.targetTxHeader),
        inclusion=[bytes(t) for t in p.inclusionProof],
        consistency=[bytes(t) for t in p.consistencyProof],
        target_bl_tx_alh=bytes(p.targetBlTxAlh),
        last_inclusion=[bytes(t) for t in p.lastInclusionProof],
        linear=LinearProof(int(lp.sourceTxId), int(lp.TargetTxId), [bytes(t) for t in lp.terms]),
        advance=linear_advance(p.LinearAdvanceProof),
    )


def entry_inclusion(p: Message) -> EntryInclusion:
    return EntryInclusion(int(p.leaf), int(p.width), [bytes(t) for t in p.terms])


def tx_proof(vtx: Message) -> TxProof:
    """A VerifiableTx (the answer to VerifiableTxById and VerifiableSet): the body, its dual proof, the signature."""
    return TxProof(header(vtx.tx.header), entries(vtx.tx), dual_proof(vtx.dualProof), signature(vtx))


def signature(vtx: Message) -> bytes:
    return bytes(vtx.signature.signature) if vtx.HasField("signature") else b""
