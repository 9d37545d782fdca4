"""The in-toto Statement v1 in its DSSE envelope: ledger keys, signing, and opening what the ledger returns
(signature first, then the statement must re-serialize to exactly the signed bytes)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TypedDict

from notary import jsonsafe, keys, records
from notary.attest.predicates import (
    HEX64,
    KNOWN_TYPES,
    MAX_ENVELOPE,
    MAX_PREDICATE_DEPTH,
    MAX_SUBJECTS,
    PAYLOAD_TYPE,
    STATEMENT_TYPE,
    TYPE_URI,
    PredicateError,
    PredicateTypeError,
)
from notary.errors import InputError, IntegrityError, SignatureError

# ---------------------------------------------------------------- keys


def type_id(predicate_type: str) -> str:
    """The key part naming a predicate type: sha256 of its URI (URIs hold '/' and ':', key parts do not)."""
    return "sha256:" + hashlib.sha256(check_type(predicate_type).encode()).hexdigest()


def attestation_key(digest: str, signer_key_id: str, predicate_type: str) -> str:
    """attestation/<subject>/<signer>/<sha256 of the predicate type>: one signer's statements of one type."""
    return f"attestation/{records.check_digest(digest)}/{records.check_digest(signer_key_id)}/{type_id(predicate_type)}"


def attestation_index_key(digest: str, signer_key_id: str) -> str:
    """attestations/<subject>/<signer>: one version per attestation written, naming its predicate type (and
    the signer's public key), so `history` enumerates a signer's attestations with proof, not by listing."""
    return f"attestations/{records.check_digest(digest)}/{records.check_digest(signer_key_id)}"


def check_type(predicate_type: object, *, known: bool = False) -> str:
    if not isinstance(predicate_type, str) or len(predicate_type) > 256 or not TYPE_URI.match(predicate_type):
        raise PredicateTypeError(f"predicate type {str(predicate_type)[:80]!r} is not an https URI",
                                 hint="e.g. https://slsa.dev/provenance/v1")
    if known and predicate_type not in KNOWN_TYPES:
        raise PredicateTypeError(f"unknown predicate type {predicate_type!r}",
                                 hint="known: " + ", ".join(KNOWN_TYPES))
    return predicate_type



# ---------------------------------------------------------------- statements and envelopes


def statement_bytes(value: object) -> bytes:
    """Canonical JSON for a statement: sorted keys, UTF-8, compact; finite floats as Python writes them (the
    shortest text that reads back to the same number), so an SBOM's scores survive and the bytes are stable."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except ValueError as exc:
        raise PredicateError(f"the predicate cannot be written as JSON: {exc}") from None


class StatementSubject(TypedDict):
    name: str
    digest: dict[str, str]  # {"sha256": hex}


class Statement(TypedDict):
    """An in-toto Statement v1 as notary writes it."""

    _type: str
    subject: list[StatementSubject]
    predicateType: str
    predicate: dict[str, object]


def statement(subjects: Sequence[tuple[str, str]], predicate_type: str, predicate: Mapping[str, object]) -> Statement:
    """An in-toto Statement v1: subjects as (name, sha256 digest) pairs."""
    if not subjects:
        raise InputError("nothing to attest: the subject resolved to no images or files")
    if len(subjects) > MAX_SUBJECTS:
        raise InputError(f"{len(subjects)} subjects in one attestation, over the limit of {MAX_SUBJECTS}")
    out: list[StatementSubject] = []
    for name, digest in subjects:
        hexdigest = records.check_digest(digest).split(":", 1)[1]
        out.append({"name": name, "digest": {"sha256": hexdigest}})
    return {"_type": STATEMENT_TYPE, "subject": out, "predicateType": check_type(predicate_type),
            "predicate": dict(predicate)}


class Attestation:
    """An opened attestation: its statement, checked, and the signer whose signature verified.

    The predicate and envelope are parsed from the checked bytes when first asked for, by each instance: a
    caller owns what it was handed (editing it changes no other caller's answer, nor the cache's), and a
    `require` without conditions (an SBOM) never parses a predicate it does not read."""

    __slots__ = ("predicate_type", "subjects", "signer", "_data", "_predicate", "_envelope")

    def __init__(self, predicate_type: str, subjects: tuple[tuple[str, str], ...], signer: str, data: bytes,
                 predicate: dict[str, object] | None = None, envelope: dict[str, object] | None = None) -> None:
        self.predicate_type = predicate_type
        self.subjects = subjects  # (name, "sha256:<hex>")
        self.signer = signer
        self._data = data
        self._predicate = predicate
        self._envelope = envelope

    @property
    def predicate(self) -> dict[str, object]:
        if self._predicate is None:
            self._predicate = json.loads(base64.b64decode(json.loads(self._data)["payload"]))["predicate"]
        return self._predicate

    @property
    def envelope(self) -> dict[str, object]:
        if self._envelope is None:
            self._envelope = json.loads(self._data)
        return self._envelope

    def to_json(self) -> dict[str, object]:
        return {"predicate_type": self.predicate_type, "signer": self.signer,
                "subjects": [{"name": n, "digest": d} for n, d in self.subjects]}


def sign_statement(stmt: Mapping[str, object], signer: keys.SigningKey) -> bytes:
    """The DSSE envelope (canonical JSON bytes) of a statement, signed over DSSE's PAE."""
    payload = statement_bytes(dict(stmt))
    signer_id = keys.key_id(signer)
    sig = keys.sign(signer, records.pae(PAYLOAD_TYPE, payload))
    return records.canonical_json({"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
                                   "signatures": [{"keyid": signer_id, "sig": base64.b64encode(sig).decode()}]})


_MAX_STATEMENT_DEPTH = MAX_PREDICATE_DEPTH + 1  # the statement object around the predicate

# Envelopes opened (signature, statement and subjects checked), by what decided the answer: the envelope's
# sha256 and every argument. The value is the subjects only, never a parsed statement a caller could edit.
_OPENED: OrderedDict[tuple[bytes, str, str, str], tuple[tuple[str, str], ...]] = OrderedDict()
_OPENED_MAX = 512
_CACHE_VALUE_MAX = 1 << 20  # bigger envelopes (SBOMs) are opened every time rather than kept in memory
_OPENED_LOCK = threading.Lock()


def open_attestation(data: bytes, digest: str, public: keys.PublicKey, predicate_type: str) -> Attestation:
    """Check an attestation envelope from the ledger: DSSE signature by public (the key its ledger key names),
    an in-toto Statement v1 about digest, of predicate_type. Anything else is an IntegrityError (exit 3): it
    came from the ledger under a key that says otherwise.

    Opening is a pure function of its arguments, so a resident gate keeps what it opened (by the envelope's
    sha256 and the digest, key and type asked about): a `require` then costs the proven history read (and a
    plain parse of the predicate, when its conditions read it), not another check of the signature."""
    signer_id = keys.key_id(public)
    if not isinstance(data, bytes):
        raise IntegrityError("attestation envelope is not a byte string")
    if len(data) > MAX_ENVELOPE:
        raise IntegrityError(f"attestation envelope is larger than {MAX_ENVELOPE >> 20} MiB")
    cache_key = (hashlib.sha256(data).digest(), digest, signer_id, predicate_type)
    with _OPENED_LOCK:
        subjects = _OPENED.get(cache_key)
        if subjects is not None:
            _OPENED.move_to_end(cache_key)
    if subjects is not None:
        return Attestation(predicate_type, subjects, signer_id, data)
    opened = _open(data, digest, public, signer_id, predicate_type)
    if len(data) <= _CACHE_VALUE_MAX:
        with _OPENED_LOCK:
            _OPENED[cache_key] = opened.subjects
            while len(_OPENED) > _OPENED_MAX:
                _OPENED.popitem(last=False)
    return opened


def _open(data: bytes, digest: str, public: keys.PublicKey, signer_id: str, predicate_type: str) -> Attestation:
    try:
        env = jsonsafe.parse(data, "a ledger attestation envelope", error=IntegrityError)
        if not isinstance(env, dict):
            raise TypeError("the envelope is not an object")
        if env["payloadType"] != PAYLOAD_TYPE:
            raise ValueError(f"payload type {str(env['payloadType'])[:80]!r}")
        payload = records.base64_field(env["payload"])
        signatures = records.listed(env["signatures"])
        if records.canonical_json(env) != data:
            raise ValueError("envelope is not in canonical form")
    except (ValueError, KeyError, TypeError, binascii.Error, InputError) as exc:
        raise IntegrityError(f"ledger value is not an in-toto attestation envelope: {exc}") from exc
    # The signature first: only bytes the trusted key signed are parsed further. They are parsed with the
    # plain parser (a tenth of jsonsafe's cost on a large SBOM) and must then be exactly the canonical
    # serialization of what was parsed: that refuses duplicate keys, NaN, lone surrogates and any other
    # spelling; a huge integer is a ValueError, caught. Nesting is bounded first, at what a statement
    # around a predicate of MAX_PREDICATE_DEPTH has: the reader takes no deeper a statement than the writer
    # writes (audits parse it with jsonsafe at that bound, and must agree with the gate).
    message = records.pae(PAYLOAD_TYPE, payload)
    for sig in signatures:
        if not isinstance(sig, dict) or sig.get("keyid") != signer_id:
            continue
        try:
            raw = records.base64_field(sig.get("sig", ""))
        except (binascii.Error, ValueError, TypeError) as exc:
            raise IntegrityError("attestation signature is not base64") from exc
        keys.verify_signature(public, raw, message)
        break
    else:
        raise SignatureError(f"attestation envelope has no signature by {signer_id}")
    try:
        text = payload.decode("utf-8")
        if jsonsafe.nesting_depth(text, _MAX_STATEMENT_DEPTH) > _MAX_STATEMENT_DEPTH:
            raise ValueError(f"nested deeper than the {MAX_PREDICATE_DEPTH} levels a predicate may have")
        stmt = json.loads(text)
        if not isinstance(stmt, dict) or statement_bytes(stmt) != payload:
            raise ValueError("statement is not in canonical form")
        if set(stmt) != {"_type", "subject", "predicateType", "predicate"} or stmt["_type"] != STATEMENT_TYPE:
            raise ValueError("not an in-toto Statement v1")
        if stmt["predicateType"] != predicate_type or not isinstance(stmt["predicate"], dict):
            raise ValueError(f"predicate type {str(stmt['predicateType'])[:80]!r}, not {predicate_type!r}")
        if not isinstance(stmt["subject"], list) or not 0 < len(stmt["subject"]) <= MAX_SUBJECTS:
            raise ValueError(f"a subject list of 1 to {MAX_SUBJECTS} entries is what notary writes")
        subjects = []
        for s in stmt["subject"]:
            hexdigest = s["digest"]["sha256"]
            if not isinstance(hexdigest, str) or not HEX64.match(hexdigest) or not isinstance(s["name"], str):
                raise ValueError("a subject without a sha256 digest and a name")
            subjects.append((s["name"], f"sha256:{hexdigest}"))
    except (ValueError, KeyError, TypeError, RecursionError, PredicateError) as exc:
        raise IntegrityError(f"ledger value is not an in-toto attestation statement: {exc}") from None
    if digest not in {d for _, d in subjects}:
        raise IntegrityError(f"an attestation stored for {digest} is about {', '.join(d for _, d in subjects)}: "
                             "the ledger was tampered with")
    return Attestation(predicate_type, tuple(subjects), signer_id, data, stmt["predicate"], dict(env))
