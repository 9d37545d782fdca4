"""The one verification path shared by `notary verify`, the runtime hooks and the admission webhook.

verified ledger read -> envelope signature -> signer is trusted -> status over the key's whole history ->
decision. Refusals are values (Decision.allowed is False); broken evidence raises (IntegrityError, exit 3);
an unreachable ledger raises LedgerUnavailableError (exit 4). The gate turns both exceptions into refusals
unless its policy says to fail open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from notary import keys, records
from notary.errors import IntegrityError
from notary.ledger.base import Entry, Ledger, TreeHead


@dataclass(frozen=True)
class SignerFinding:
    """What one trusted signer's history says about a digest."""

    signer: str
    status: str  # notarized, revoked, absent
    record: records.Record | None = None
    entry: Entry | None = None
    versions: int = 0


@dataclass(frozen=True)
class Decision:
    digest: str
    allowed: bool
    status: str  # trusted, not-notarized, revoked, too-old
    reason: str
    record: records.Record | None = None
    entry: Entry | None = None
    signer: str | None = None
    head: TreeHead | None = None
    findings: tuple[SignerFinding, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "allowed": self.allowed,
            "status": self.status,
            "reason": self.reason,
            "signer": self.signer,
            "record": self.record.to_json() if self.record else None,
            "entry": self.entry.to_json() if self.entry else None,
            "signers": [
                {
                    "signer": f.signer,
                    "status": f.status,
                    "versions": f.versions,
                    "issuedAt": f.record.issued_at if f.record else None,
                    "reason": f.record.reason if f.record else None,
                    "entry": f.entry.to_json() if f.entry else None,
                }
                for f in self.findings
            ],
        }


def open_entry(entry: Entry, digest: str, signer: str) -> records.Record:
    """The record in a verified entry, checked to be signed by signer and to be about digest.

    A record moved under another subject's key, or under another signer's key, is tampering (exit 3).
    """
    record = records.open_envelope(entry.value, expected_signer=signer).record
    if record.digest != digest:
        raise IntegrityError(
            f"ledger key {entry.key} holds a record about {record.digest}, not {digest}: the ledger was tampered with"
        )
    return record


def signer_finding(ledger: Ledger, digest: str, signer: str) -> SignerFinding:
    """The signer's current word on digest, decided over the key's whole verified history.

    The newest record by issue time wins, a revocation winning a tie, so re-appending an old notarization
    envelope (a replay by someone who can write to the ledger) cannot undo a later revocation.
    """
    history = ledger.history(records.subject_key(digest, signer))
    if not history:
        return SignerFinding(signer=signer, status="absent")
    best: tuple[datetime, int, records.Record, Entry] | None = None
    for entry in history:
        record = open_entry(entry, digest, signer)
        rank = (record.issued, 1 if record.type == "revocation" else 0)
        if best is None or rank >= (best[0], best[1]):
            best = (rank[0], rank[1], record, entry)
    assert best is not None
    record, entry = best[2], best[3]
    return SignerFinding(signer=signer, status=record.status, record=record, entry=entry, versions=len(history))


def verify_digest(
    ledger: Ledger,
    digest: str,
    trusted_keys: Sequence[keys.PublicKey],
    *,
    max_age: timedelta | None = None,
    now: datetime | None = None,
) -> Decision:
    """Decide whether digest is notarized, unrevoked, by a trusted key (and recent enough)."""
    records.check_digest(digest)
    if not trusted_keys:
        raise IntegrityError("no trusted keys: refusing to verify against nothing")
    signer_ids = sorted({keys.key_id(k) for k in trusted_keys})
    findings = tuple(signer_finding(ledger, digest, s) for s in signer_ids)
    head = ledger.info().head if findings else None

    revoked = [f for f in findings if f.status == "revoked"]
    if revoked:
        f = revoked[0]
        assert f.record is not None
        why = f" ({f.record.reason})" if f.record.reason else ""
        return Decision(digest, False, "revoked", f"{digest} was revoked by {f.signer} at {f.record.issued_at}{why}",
                        f.record, f.entry, f.signer, head, findings)
    notarized = [f for f in findings if f.status == "notarized"]
    if not notarized:
        return Decision(digest, False, "not-notarized",
                        f"{digest} is not notarized by any trusted key ({len(signer_ids)} trusted)",
                        None, None, None, head, findings)
    newest = max(notarized, key=lambda f: f.record.issued if f.record else datetime.min)
    assert newest.record is not None
    if max_age is not None:
        current = now or datetime.now(timezone.utc)
        if current - newest.record.issued > max_age:
            return Decision(digest, False, "too-old",
                            f"{digest} was last notarized at {newest.record.issued_at}, older than the maximum age",
                            newest.record, newest.entry, newest.signer, head, findings)
    return Decision(digest, True, "trusted",
                    f"{digest} notarized by {newest.signer} at {newest.record.issued_at}",
                    newest.record, newest.entry, newest.signer, head, findings)
