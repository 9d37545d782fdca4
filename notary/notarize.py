"""Turning resolved subjects into signed records and writing them as one atomic ledger transaction.

All records of one notarization (every subject, the job index and the artifact index) go into a single
transaction: an interrupted run leaves the whole notarization or nothing, never half an image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from notary import keys, records
from notary.errors import InputError, RefusedError
from notary.ledger.base import Ledger, WriteReceipt, rfc3339
from notary.ledger.partitioned.guard import refuse_member_write
from notary.revocation import Revocation, standing

if TYPE_CHECKING:
    from notary.sources.base import Subject


@dataclass(frozen=True)
class Written:
    receipt: WriteReceipt
    records: tuple[records.Record, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "tx": self.receipt.tx,
            "time": rfc3339(self.receipt.time),
            "keys": list(self.receipt.keys),
            "head": self.receipt.head.to_json(),
            "records": [r.to_json() for r in self.records],
            **({"partitions": [{"ledger_id": p.head.ledger_id, "tx": p.tx, "keys": list(p.keys),
                                "head": p.head.to_json()} for p in self.receipt.parts]}
               if self.receipt.parts else {}),
        }


def _index_value(value: Mapping[str, object]) -> bytes:
    return records.canonical_json(dict(value))


def notarization_writes(
    subjects: Sequence[Subject], signer: keys.SigningKey, ci: Mapping[str, str],
    reinstated: Mapping[str, tuple[str, datetime]] | None = None,
) -> tuple[dict[str, bytes], tuple[records.Record, ...]]:
    """Every key/value of one notarization, built and signed before anything touches the ledger.

    reinstated: digest -> (reason, time of the revocation it lifts): those subjects get a reinstatement
    record, issued strictly after that revocation (so it sorts after it, notary.status)."""
    if not subjects:
        raise InputError("nothing to notarize: the subjects resolved to no images or files")
    kvs: dict[str, bytes] = {}
    made: list[records.Record] = []
    artifact_subjects: dict[str, list[str]] = {}
    for subject in subjects:
        artifacts = tuple(a.to_json() for a in subject.artifacts)
        subject = _with_names(subject)
        lift = (reinstated or {}).get(subject.digest)
        if lift is None:
            record = records.new_record("notarization", subject.to_json(), signer, artifacts=artifacts, ci=ci)
        else:
            record = _reinstatement(subject.to_json(), signer, ci, lift, artifacts)
        key = records.subject_key(subject.digest, record.signer)
        if key in kvs:
            continue  # the same image named twice on one command line
        kvs[key] = records.sign_record(record, signer)
        kvs[records.signer_index_key(subject.digest)] = signer_index_value(record.signer)
        made.append(record)
        for artifact in subject.artifacts:
            if artifact.digest != subject.digest:
                artifact_subjects.setdefault(artifact.digest, []).append(subject.digest)
    signer_id = keys.key_id(signer)
    kvs[records.job_key(ci["system"], ci["jobId"])] = _index_value(
        {
            "type": "job",
            "ci": dict(ci),
            "signer": signer_id,
            "subjects": [{"digest": r.digest, "name": r.subject.get("name"), "kind": r.subject.get("kind")} for r in made],
        }
    )
    for digest, holders in sorted(artifact_subjects.items()):
        kvs[records.artifact_key(digest)] = _index_value(
            {"type": "artifact", "signer": signer_id, "subjects": sorted(set(holders))}
        )
    return kvs, tuple(made)


def _reinstatement(subject: Mapping[str, object], signer: keys.SigningKey, ci: Mapping[str, str],
                   lift: tuple[str, datetime], artifacts: tuple[Mapping[str, object], ...] = ()) -> records.Record:
    """A reinstatement lifting the revocation issued at lift[1], issued strictly after it (so it sorts
    after it, notary.status)."""
    issued = max(records.utc_now(), lift[1] + timedelta(seconds=1))
    return records.new_record("reinstatement", subject, signer, artifacts=artifacts, ci=ci, reason=lift[0],
                              issued_at=issued)


def _with_names(subject: Subject) -> Subject:
    """Library callers may hand in an image subject named by a reference but without names: bind it."""
    from dataclasses import replace

    from notary.names import is_reference, repositories

    if subject.names or subject.kind not in ("oci-manifest", "oci-index", "docker-image"):
        return subject
    if "/" in subject.name and is_reference(subject.name):
        return replace(subject, names=repositories([subject.name]))
    return subject


def notarize(
    ledger: Ledger, subjects: Sequence[Subject], signer: keys.SigningKey, ci: Mapping[str, str], *,
    reinstate: str | None = None, attestations: Callable[[Sequence[records.Record]], Mapping[str, bytes]] | None = None,
) -> Written:
    """Notarize subjects in one transaction. A subject this signer revoked, or one tied to an identity this
    signer revoked (its image id, its index, a platform manifest: what the gate refuses it for), is refused
    (RefusedError, exit 1, naming the revocation) unless reinstate gives the reason to lift it: then each
    revoked identity gets a reinstatement record in the same transaction. (The verifier enforces the same rule:
    a plain notarization after a revocation never lifts it.)

    attestations: given the records made, the attestation keys to write in the same transaction
    (notary.attest.attestation_writes: `notarize --provenance / --sbom`)."""
    if reinstate is not None and not reinstate.strip():
        raise InputError("--reinstate needs a reason", hint="pass --reinstate --reason TEXT")
    refuse_member_write(ledger)
    signer_id = keys.key_id(signer)
    kvs, made = notarization_writes(subjects, signer, ci)
    standing = standing_revocations(ledger, made, signer)
    if not standing:
        return Written(receipt=ledger.write({**kvs, **(attestations(made) if attestations else {})}), records=made)
    if reinstate is None:
        (subject, revoked), *rest = standing
        why = f" ({revoked.reason})" if revoked.reason else ""
        what = "it" if revoked.digest == subject else f"{revoked.relation} {revoked.digest}"
        more = f" (and {len(rest)} more)" if rest else ""
        raise RefusedError(
            f"{subject} is refused: {what} was revoked by this signer at {revoked.issued_at}{why}{more}: "
            "notarizing it again would not lift the revocation",
            hint="if the revocation no longer applies, notarize with --reinstate --reason TEXT",
        )
    reason = reinstate.strip()
    revoked_records = {r.digest: r.record for _, r in standing if r.record is not None}
    lifts = {d: (reason, rev.issued) for d, rev in revoked_records.items()}
    kvs, made = notarization_writes(subjects, signer, ci, lifts)
    for digest, rev in revoked_records.items():  # a tied identity that is not itself on the command line
        key = records.subject_key(digest, signer_id)
        if key not in kvs:
            lift = _reinstatement(rev.subject, signer, ci, lifts[digest])
            kvs[key] = records.sign_record(lift, signer)
            kvs[records.signer_index_key(digest)] = signer_index_value(signer_id)
            made += (lift,)
    extra = attestations(made) if attestations else {}
    return Written(receipt=ledger.write({**extra, **kvs}), records=made)


def standing_revocations(ledger: Ledger, planned: Sequence[records.Record],
                         signer: keys.SigningKey) -> list[tuple[str, Revocation]]:
    """(subject, revocation) for each revocation by this signer that would refuse a planned record at the
    gate: of the subject itself, or of an identity the planned record or a record in the ledger ties to it
    (notary.revocation: the verifier's own rule, over what notary.gather reads for it).

    Only the signer's own revocations count: they are what its reinstatement can lift. Too many ties to check
    is refused like the gate refuses it (fail closed), rather than reported as a success that cannot run."""
    from notary.gather import gather_ties
    from notary.revocation import TooManyTies, tied_revocations
    from notary.status import TrustedKey

    trusted = [TrustedKey.of(signer.public_key())]
    own = revoked_by(ledger, [r.digest for r in planned], trusted[0].key_id)
    found: list[tuple[str, Revocation]] = []
    for record in planned:
        if record.digest in own:
            rev = own[record.digest]
            found.append((record.digest, Revocation(record.digest, rev.signer, rev.issued_at, rev.reason, "itself",
                                                    rev)))
            continue
        evidence = gather_ties(ledger, record.digest, trusted, [record])
        assert evidence.index is not None
        try:
            found += [(record.digest, t) for t in tied_revocations(record.digest, trusted, [record], None,
                                                                  evidence.index, evidence.histories)]
        except TooManyTies as exc:
            raise RefusedError(f"{record.digest} would be refused by the gate: {exc}") from exc
    return found


def revoked_by(ledger: Ledger, digests: Sequence[str], signer_id: str) -> dict[str, records.Record]:
    """digest -> this signer's standing revocation of it, for each digest the signer has revoked."""
    from notary.gather import signer_history
    from notary.status import TrustedKey

    out: dict[str, records.Record] = {}
    for digest in dict.fromkeys(digests):
        history = signer_history(ledger, digest, signer_id)
        if not history:
            continue
        key = keys.load_public_key(history[0][0].signer_public_key.encode())
        revocation = standing(TrustedKey(key, signer_id), history)  # every role, no end: the signer's own word
        if revocation is not None:
            out[digest] = revocation
    return out


def revoke(
    ledger: Ledger, digest: str, signer: keys.SigningKey, reason: str, ci: Mapping[str, str] | None = None
) -> Written:
    """Append a revocation under the signer's own key for digest.

    Revoking what this signer never notarized is allowed (a pre-emptive block list), and it affects only
    verifiers that trust this signer.
    """
    if not reason.strip():
        raise InputError("a revocation needs a reason", hint="pass --reason TEXT")
    refuse_member_write(ledger)
    signer_id = keys.key_id(signer)
    key = records.subject_key(digest, signer_id)
    current = ledger.get(key)
    subject: dict[str, object] = {"digest": digest}
    if current is not None:
        previous = records.open_envelope(current.value, expected_signer=signer_id).record
        subject = dict(previous.subject)
    record = records.new_record("revocation", subject, signer, ci=ci or {}, reason=reason.strip())
    receipt = ledger.write({key: records.sign_record(record, signer),
                            records.signer_index_key(digest): signer_index_value(signer_id)})
    return Written(receipt=receipt, records=(record,))


def signer_index_value(signer_id: str) -> bytes:
    """One version of signers/<digest>: written with every record, in its transaction (no read, no race)."""
    return _index_value({"type": "signer", "signer": signer_id})
