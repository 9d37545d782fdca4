"""Records: the signed evidence stored in the ledger.

A record is canonical JSON (sorted keys, UTF-8, no insignificant whitespace, no floats) wrapped in a DSSE
envelope, so any in-toto/Sigstore tooling can check the signature. The signer's public key travels inside the
payload next to its key id: an auditor can check every signature in the ledger without a key directory, while
*trust* still comes only from keys the verifier was told to trust (key id = sha256 of that public key's DER).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import NamedTuple

from notary import jsonsafe, keys
from notary.digests import SHA256_RE
from notary.digests import check_digest as check_digest  # the one digest check, re-exported for record code
from notary.errors import InputError, IntegrityError, SignatureError

SCHEMA = "https://notary.dev/record/v1"
PAYLOAD_TYPE = "application/vnd.notary.record.v1+json"
# type -> the status it states. A reinstatement is a notarization that lifts the same signer's earlier
# revocation on purpose (`notarize --reinstate --reason`): a plain notarization never does (notary.status).
RECORD_TYPES = {"notarization": "notarized", "revocation": "revoked", "reinstatement": "reinstated"}
MAX_ENVELOPE = 16 * 1024 * 1024


def canonical_json(value: object) -> bytes:
    """Deterministic bytes for signing: the same record always serializes identically."""
    _reject_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _reject_floats(value: object) -> None:
    if isinstance(value, float):
        raise InputError("records may not contain floating-point numbers (not canonical)")
    if isinstance(value, dict):
        for v in value.values():
            _reject_floats(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _reject_floats(v)


def is_digest(value: object) -> bool:
    return isinstance(value, str) and bool(SHA256_RE.match(value))


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def format_time(t: datetime) -> str:
    return t.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def parse_time(text: str) -> datetime:
    """RFC 3339 with an explicit offset (Z or +hh:mm); a bare date means midnight UTC."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
        t = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"not an RFC 3339 time: {text!r}", hint="e.g. 2026-03-01T00:00:00Z") from exc
    if t.tzinfo is None:
        raise InputError(f"time {text!r} has no UTC offset", hint="append Z for UTC")
    try:
        return t.astimezone(timezone.utc)
    except OverflowError as exc:  # 9999-12-31T23:59:59-05:00 is in no year UTC can say
        raise InputError(f"time {text!r} is outside years 1-9999 in UTC") from exc


# ---------------------------------------------------------------- ledger keys


def subject_key(digest: str, signer_key_id: str) -> str:
    return f"subject/{check_digest(digest)}/{check_digest(signer_key_id)}"


def subject_prefix(digest: str) -> str:
    return f"subject/{check_digest(digest)}/"


def signer_index_key(digest: str) -> str:
    """The key whose versions name, one per version, the signers that wrote about digest (docs/proofs.md,
    "The signer set"): its proven-complete history is the set, so no signer's records can vanish unseen."""
    return f"signers/{check_digest(digest)}"


def job_key(system: str, job_id: str) -> str:
    return f"job/{_key_part(system, 'CI system')}/{_key_part(job_id, 'job id')}"


def artifact_key(digest: str) -> str:
    return f"artifact/{check_digest(digest)}"


def _key_part(text: str, what: str) -> str:
    if not text or len(text) > 256 or not all(33 <= ord(c) < 127 for c in text) or "/" in text:
        raise InputError(f"{what} {text!r} must be 1-256 printable ASCII characters without spaces or '/'")
    return text


# ---------------------------------------------------------------- the record


_EMPTY: Mapping[str, object] = MappingProxyType({})  # a shared default no one can change


class Record(NamedTuple):
    type: str
    subject: Mapping[str, object]
    signer: str
    signer_public_key: str
    issued_at: str
    artifacts: tuple[Mapping[str, object], ...] = ()
    ci: Mapping[str, object] = _EMPTY
    reason: str | None = None

    @property
    def status(self) -> str:
        return RECORD_TYPES[self.type]

    @property
    def digest(self) -> str:
        return str(self.subject["digest"])

    @property
    def issued(self) -> datetime:
        return parse_time(self.issued_at)

    def to_payload(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "schema": SCHEMA,
            "type": self.type,
            "status": self.status,
            "subject": dict(self.subject),
            "artifacts": [dict(a) for a in self.artifacts],
            "ci": dict(self.ci),
            "signer": {"keyId": self.signer, "publicKey": self.signer_public_key},
            "issuedAt": self.issued_at,
        }
        if self.reason is not None:
            payload["reason"] = self.reason
        return payload

    def to_json(self) -> dict[str, object]:
        return self.to_payload()

    @classmethod
    def from_payload(cls, data: object) -> Record:
        """Parse and validate a payload; anything unexpected is an IntegrityError (it came from the ledger)."""
        try:
            data = _fields(data, "the payload")
            if data["schema"] != SCHEMA:
                raise ValueError(f"unknown schema {data['schema']!r}")
            rtype = data["type"]
            if not isinstance(rtype, str) or rtype not in RECORD_TYPES or data["status"] != RECORD_TYPES[rtype]:
                raise ValueError(f"bad type/status {rtype!r}/{data.get('status')!r}")
            subject = dict(_fields(data["subject"], "its subject"))
            check_digest(subject["digest"])
            signer = _fields(data["signer"], "its signer")
            artifacts = data.get("artifacts", [])
            if not isinstance(artifacts, list):
                raise TypeError("its artifacts are not a list")
            reason = data.get("reason")
            if reason is not None and not isinstance(reason, str):
                raise TypeError("its reason is not a string")
            record = cls(
                type=rtype,
                subject=subject,
                signer=check_digest(signer["keyId"]),
                signer_public_key=str(signer["publicKey"]),
                issued_at=str(data["issuedAt"]),
                artifacts=tuple(dict(_fields(a, "an artifact")) for a in artifacts),
                ci=dict(_fields(data.get("ci", {}), "its ci")),
                reason=reason,
            )
            record.issued  # noqa: B018 - validates the timestamp
            if rtype == "reinstatement" and not (isinstance(record.reason, str) and record.reason.strip()):
                raise ValueError(f"a {rtype} without a reason")
            return record
        except (KeyError, TypeError, ValueError, InputError, AttributeError) as exc:
            raise IntegrityError(f"record payload is malformed: {exc}") from exc


def _fields(v: object, what: str) -> Mapping[str, object]:
    """v as a JSON object; TypeError (which from_payload reports as malformed) for anything else."""
    if not isinstance(v, Mapping) or not all(isinstance(k, str) for k in v):
        raise TypeError(f"{what} is not an object")
    return v


def base64_field(value: object, *, validate: bool = True) -> bytes:
    """base64.b64decode of a parsed JSON field, typed: a non-string is the TypeError b64decode raises for
    one, which every envelope reader's except clause already turns into its malformed-envelope error."""
    if not isinstance(value, str):
        raise TypeError(f"argument should be a bytes-like object or ASCII string, not {type(value).__name__!r}")
    return base64.b64decode(value, validate=validate)


def listed(value: object) -> list[object]:
    """list(value) of a parsed JSON field, typed: a list's items (an object's keys, a string's characters:
    as list() always gave them), else the TypeError list() raises."""
    if isinstance(value, (list, dict, str)):
        return list(value)
    raise TypeError(f"{type(value).__name__!r} object is not iterable")


def new_record(
    rtype: str,
    subject: Mapping[str, object],
    signer: keys.SigningKey,
    *,
    artifacts: tuple[Mapping[str, object], ...] = (),
    ci: Mapping[str, object] | None = None,
    reason: str | None = None,
    issued_at: datetime | None = None,
) -> Record:
    pub = signer.public_key()
    check_digest(str(subject["digest"]))
    return Record(
        type=rtype,
        subject=dict(subject),
        signer=keys.key_id(pub),
        signer_public_key=keys.public_pem(pub),
        issued_at=format_time(issued_at or utc_now()),
        artifacts=artifacts,
        ci=dict(ci or {}),
        reason=reason,
    )


# ---------------------------------------------------------------- DSSE


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is actually signed."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def sign_record(record: Record, private_key: keys.SigningKey) -> bytes:
    if keys.key_id(private_key) != record.signer:
        raise InputError("record names a different signer than the key signing it")
    payload = canonical_json(record.to_payload())
    sig = keys.sign(private_key, pae(PAYLOAD_TYPE, payload))
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": record.signer, "sig": base64.b64encode(sig).decode()}],
    }
    return canonical_json(envelope)


class OpenedEnvelope(NamedTuple):
    record: Record
    envelope: Mapping[str, object]


def open_envelope(data: bytes, expected_signer: str | None = None) -> OpenedEnvelope:
    """Check an envelope's signature with the key inside its payload and return the record.

    expected_signer: the key id the caller trusts (and under which the ledger stored this envelope); a record
    signed by any other key raises SignatureError. A malformation raises IntegrityError: envelopes come
    from the ledger, so a bad one means tampering, not user error.
    """
    if len(data) > MAX_ENVELOPE:
        raise IntegrityError("envelope is larger than 16 MiB")
    try:
        env = _fields(jsonsafe.parse(data, "a ledger envelope", error=IntegrityError), "the envelope")
        if env["payloadType"] != PAYLOAD_TYPE:
            raise ValueError(f"payload type {env['payloadType']!r}")
        payload = base64_field(env["payload"])
        signatures = listed(env["signatures"])
        data_obj = jsonsafe.parse(payload, "a ledger record's payload", error=IntegrityError)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise IntegrityError(f"ledger value is not a notary DSSE envelope: {exc}") from exc
    record = Record.from_payload(data_obj)
    if canonical_json(data_obj) != payload:
        raise IntegrityError("record payload is not in canonical form")
    if expected_signer is not None and record.signer != expected_signer:
        raise SignatureError(f"record is signed by {record.signer}, not by the trusted key {expected_signer}")
    try:
        public = keys.load_public_key(record.signer_public_key.encode())
    except InputError as exc:
        raise IntegrityError(f"record carries an unusable signer key: {exc.message}") from exc
    if keys.key_id(public) != record.signer:
        raise SignatureError("record's signer key id does not match the public key it carries")
    message = pae(PAYLOAD_TYPE, payload)
    for sig in signatures:
        if not isinstance(sig, dict) or sig.get("keyid") != record.signer:
            continue
        try:
            raw = base64_field(sig.get("sig", ""))
        except (binascii.Error, ValueError, TypeError) as exc:  # TypeError: a "sig" that is not a string
            raise IntegrityError("envelope signature is not base64") from exc
        keys.verify_signature(public, raw, message)
        return OpenedEnvelope(record=record, envelope=env)
    raise SignatureError(f"envelope has no signature by {record.signer}")
