"""Attestations in the ledger: written beside (or with) the notarization records, read back proven, and
presented to audits."""

from __future__ import annotations

import binascii
from collections.abc import Mapping, Sequence
from typing import NamedTuple, TypedDict

from notary import jsonsafe, keys, records
from notary.attest.envelopes import (
    Attestation,
    Statement,
    attestation_index_key,
    attestation_key,
    check_type,
    open_attestation,
    sign_statement,
    statement,
    type_id,
)
from notary.attest.predicates import (
    MAX_ENVELOPE,
    MAX_IMMUDB_ENVELOPE,
    MAX_PREDICATE_DEPTH,
    MAX_WRITE,
    PredicateError,
)
from notary.errors import InputError, IntegrityError, UsageError
from notary.ledger.base import Entry, HistoryReader, Ledger, WriteReceipt, rfc3339
from notary.ledger.partitioned.guard import refuse_member_write

MAX_INDEX_TYPES = 16  # predicate types one transaction attests (notarize writes two at most, attest one)

# ---------------------------------------------------------------- writing


class Attested(NamedTuple):
    receipt: WriteReceipt
    statement: Statement
    signer: str
    keys: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"tx": self.receipt.tx, "time": rfc3339(self.receipt.time), "keys": list(self.keys),
                "head": self.receipt.head.to_json(), "signer": self.signer,
                "predicate_type": self.statement["predicateType"],
                "subjects": [{"name": s["name"], "digest": "sha256:" + s["digest"]["sha256"]}
                             for s in self.statement["subject"]]}


def envelope_limit(ledger: object) -> int:
    """The largest attestation envelope a ledger can give back: immudb's reads are gRPC messages of at most
    4 MiB (through its HTTP gateway too), so an envelope that could be written there but never read again
    (every later history of the subject exit 4) is refused before it is written."""
    return MAX_IMMUDB_ENVELOPE if str(getattr(ledger, "url", "")).startswith("immudb") else MAX_ENVELOPE


def attestation_writes(subjects: Sequence[tuple[str, str]], signer: keys.SigningKey,
                       predicates: Sequence[tuple[str, Mapping[str, object]]], *,
                       max_envelope: int = MAX_ENVELOPE) -> tuple[dict[str, bytes], list[Statement]]:
    """Every key/value of one or more attestations (one per predicate type) about the same subjects, built and
    signed before anything touches the ledger: each envelope under each subject digest, one version of the
    digest's attestation index naming the types written (and the signer's public key), and one of its signer
    index (so `history` finds the signer, proven complete)."""
    from notary.notarize import signer_index_value

    unique = list(dict.fromkeys(subjects))
    types = [check_type(t) for t, _ in predicates]
    if len(set(types)) != len(types) or not types or len(types) > MAX_INDEX_TYPES:
        raise InputError(f"one attestation per predicate type and transaction, at most {MAX_INDEX_TYPES}")
    signer_id = keys.key_id(signer)
    digests = list(dict.fromkeys(d for _, d in unique))
    kvs: dict[str, bytes] = {}
    made: list[Statement] = []
    total = 0
    for ptype, predicate in predicates:
        stmt = statement(unique, ptype, predicate)
        envelope = sign_statement(stmt, signer)
        if len(envelope) > max_envelope:
            where = " of this ledger (immudb reads at most 4 MiB at once)" if max_envelope < MAX_ENVELOPE else ""
            raise PredicateError(f"the attestation envelope would be {len(envelope)} bytes, over the "
                                 f"{max_envelope} byte limit{where}")
        total += len(envelope) * len(digests)
        if total > MAX_WRITE:
            raise PredicateError(f"storing the attestations under {len(digests)} digests would write {total} "
                                 f"bytes, over the {MAX_WRITE} byte limit")
        for digest in digests:
            kvs[attestation_key(digest, signer_id, ptype)] = envelope
        made.append(stmt)
    index = records.canonical_json({"type": "attestation", "predicate_types": sorted(types), "signer": signer_id,
                                    "public_key": keys.public_pem(signer.public_key())})
    for digest in digests:
        kvs[attestation_index_key(digest, signer_id)] = index
        kvs[records.signer_index_key(digest)] = signer_index_value(signer_id)
    return kvs, made


def attest(ledger: Ledger, subjects: Sequence[tuple[str, str]], signer: keys.SigningKey, predicate_type: str,
           predicate: Mapping[str, object]) -> Attested:
    """Write one attestation (every subject digest's keys) in one transaction."""
    refuse_member_write(ledger)
    kvs, made = attestation_writes(subjects, signer, [(predicate_type, predicate)],
                                   max_envelope=envelope_limit(ledger))
    receipt = ledger.write(kvs)
    return Attested(receipt, made[0], keys.key_id(signer), tuple(kvs))


# ---------------------------------------------------------------- reading


def attestation_history(ledger: HistoryReader, digest: str, public: keys.PublicKey,
                        predicate_type: str) -> list[tuple[Attestation, Entry]]:
    """Every attestation of predicate_type by the signer about digest, oldest first, each opened and proven
    (complete, on a ledger that proves completeness)."""
    key = attestation_key(digest, keys.key_id(public), predicate_type)
    return [(open_attestation(e.value, digest, public, predicate_type), e) for e in ledger.history(key)]


class IndexedType(NamedTuple):
    predicate_type: str
    public_key: keys.PublicKey | None


def indexed_types(ledger: HistoryReader, digest: str, signer_id: str) -> list[IndexedType]:
    """The predicate types a signer's attestation index names for digest, with the signer's public key when
    the index carries one that matches the signer id (a malformed version only adds nothing: anyone can write
    an index key; the attestations it leads to must prove themselves)."""
    out: dict[str, keys.PublicKey | None] = {}
    for entry in ledger.history(attestation_index_key(digest, signer_id)):
        try:
            value = jsonsafe.parse_object(entry.value, "an attestation index value", error=IntegrityError)
            named = value.get("predicate_types")
            if not isinstance(named, list) or len(named) > MAX_INDEX_TYPES:
                continue  # not what attestation_writes writes: each read would cost a proven absence
            types = [check_type(t) for t in named]
        except (IntegrityError, UsageError):
            continue
        public: keys.PublicKey | None = None
        pem = value.get("public_key")
        if isinstance(pem, str):
            try:
                candidate = keys.load_public_key(pem.encode())
                public = candidate if keys.key_id(candidate) == signer_id else None
            except InputError:
                public = None
        for ptype in types:
            if out.get(ptype) is None:
                out[ptype] = public
    return [IndexedType(t, k) for t, k in out.items()]



# ---------------------------------------------------------------- audits (notary.audit.diff)


def index_public_key(entry: Entry) -> tuple[str, keys.PublicKey] | None:
    """(signer, public key) from a version of an attestations/<digest>/<signer> index, when it carries a key
    that hashes to the signer its key names; else None."""
    parts = entry.key.split("/")
    if len(parts) != 3 or not records.is_digest(parts[2]):
        return None
    try:
        value = jsonsafe.parse_object(entry.value, "an attestation index value", error=IntegrityError)
        public = keys.load_public_key(str(value.get("public_key", "")).encode())
    except (IntegrityError, InputError):
        return None
    return (parts[2], public) if keys.key_id(public) == parts[2] else None


class AuditedAttestation(TypedDict):
    """One attestation entry as an audit of a range lists it (opened, its signature checked)."""

    tx: int
    time: str | None
    key: str
    digest: str
    signer: str
    predicate_type: str
    subjects: list[dict[str, str]]


class AttestationRow(AuditedAttestation):
    """An audited attestation, and whether its signer is one the auditor named (None: none was named)."""

    trusted_signer: bool | None


def audit_entry(entry: Entry, signers: Mapping[str, keys.PublicKey]) -> AuditedAttestation:
    """An attestation/<digest>/<signer>/<type id> entry written in an audited range, opened with the signer's
    public key from its transaction's attestation index (signers); IntegrityError when it does not open."""
    parts = entry.key.split("/")
    if len(parts) != 4 or not all(records.is_digest(p) for p in parts[1:]):
        raise IntegrityError("not an attestation key of the form attestation/<digest>/<signer>/<type id>")
    _, digest, signer, tid = parts
    public = signers.get(signer)
    if public is None:
        raise IntegrityError(f"an attestation by {signer} without that signer's attestation index in its "
                             "transaction: notary writes both together")
    try:
        envelope = jsonsafe.parse_object(entry.value, "an attestation envelope", error=IntegrityError)
        stmt = jsonsafe.parse(records.base64_field(envelope["payload"], validate=False), "an attestation statement",
                              max_depth=MAX_PREDICATE_DEPTH + 1, error=IntegrityError)
        if not isinstance(stmt, dict):
            raise TypeError("the statement is not an object")
        ptype = check_type(stmt["predicateType"])
    except (KeyError, TypeError, ValueError, binascii.Error, UsageError) as exc:
        raise IntegrityError(f"ledger value is not an in-toto attestation envelope: {exc}") from exc
    if type_id(ptype) != tid:
        raise IntegrityError(f"an attestation of {ptype} filed under another predicate type's key")
    att = open_attestation(entry.value, digest, public, ptype)
    return {"tx": entry.tx, "time": rfc3339(entry.time), "key": entry.key, "digest": digest, "signer": signer,
            "predicate_type": ptype, "subjects": [{"name": n, "digest": d} for n, d in att.subjects]}
