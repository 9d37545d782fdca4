"""The one verification path shared by `notary verify`, the runtime hooks and the admission webhook.

The steps of one decision, in order:
  1. verified ledger reads (notary.ledger): head signature, consistency with the trusted state (RFC 9162
     section 2.1.4), inclusion (section 2.1.3) and, for completeness, the newest version or absence of the
     key (docs/proofs.md, "The key index"; immudb: the verified mirror, docs/immudb.md);
  2. envelope: the DSSE signature by the signer the ledger key names, about this digest (open_entry;
     docs/records.md, "Envelope");
  3. status per trusted key over its whole history: roles, not_after, sticky revocations, reinstatements
     (notary.status; docs/records.md, "How a verifier decides", steps 2-3);
  4. revocations, of the digest and of every identity a trusted record ties to it (notary.revocation; step 4);
  5. decision: notarized by a trusted key, recent enough (step 5). Name binding is the gate's (gate/decision.py).

Steps 1-2 are notary.gather (every read, in rounds, before anything is decided: Evidence); steps 3-5 are
decide, pure over that Evidence, so a decision can be tested, replayed offline and reasoned about without a
ledger. verify_digest is the two in a row.

Refusals are values (Decision.allowed is False); broken evidence raises (IntegrityError, exit 3); an
unreachable ledger raises LedgerUnavailableError (exit 4). The gate turns both exceptions into refusals
unless its policy says to fail open.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from notary import keys, records
from notary.errors import IntegrityError
from notary.gather import Evidence, gather, holders_of, open_entry, signer_history
from notary.ledger.base import Entry, HistoryReader, TreeHead
from notary.revocation import (
    MAX_HOLDER_CANDIDATES,
    MAX_TIES,
    IncompleteEvidence,
    Revocation,
    TooManyTies,
    history,
    tied_revocations,
    vouching,
)
from notary.status import SignerFinding, TrustedKey, as_trusted
from notary.status import decide as signer_word

__all__ = ["MAX_HOLDER_CANDIDATES", "MAX_TIES", "Decision", "Evidence", "IncompleteEvidence", "Revocation", "SignerFinding",
           "TooManyTies", "TrustedKey", "decide", "gather", "holders_of", "open_entry", "signer_finding",
           "signer_history", "verify_digest"]


class Decision(NamedTuple):
    digest: str
    allowed: bool
    status: str  # trusted, not-notarized, revoked, too-old, unverifiable (more ties than a verifier checks)
    reason: str
    record: records.Record | None = None
    entry: Entry | None = None
    signer: str | None = None
    head: TreeHead | None = None
    findings: tuple[SignerFinding, ...] = ()
    revocation: Revocation | None = None
    names: tuple[str, ...] = ()  # repositories the trusted records bind the digest to (notary.names)

    def to_json(self) -> dict[str, object]:
        return {
            "digest": self.digest,
            "allowed": self.allowed,
            "status": self.status,
            "reason": self.reason,
            "signer": self.signer,
            "revocation": self.revocation.to_json() if self.revocation else None,
            "names": list(self.names),
            "record": self.record.to_json() if self.record else None,
            "entry": self.entry.to_json() if self.entry else None,
            "signers": [
                {
                    "signer": f.signer,
                    "status": f.status,
                    "versions": f.versions,
                    "ignored": f.ignored,
                    "reinstated": f.reinstated,
                    "issued_at": f.record.issued_at if f.record else None,
                    "issuedAt": f.record.issued_at if f.record else None,  # deprecated alias, removed in 0.3
                    "reason": f.record.reason if f.record else None,
                    "entry": f.entry.to_json() if f.entry else None,
                }
                for f in self.findings
            ],
        }




def signer_finding(ledger: HistoryReader, digest: str, trusted: TrustedKey | keys.PublicKey) -> SignerFinding:
    """The signer's current word on digest, decided over the key's whole verified history (notary.status)."""
    tk = trusted if isinstance(trusted, TrustedKey) else TrustedKey.of(trusted)
    return signer_word(tk, signer_history(ledger, digest, tk.key_id))


def verify_digest(
    ledger: HistoryReader,
    digest: str,
    trusted_keys: Sequence[keys.PublicKey | TrustedKey],
    *,
    max_age: timedelta | None = None,
    now: datetime | None = None,
    platform: str | None = None,
    ties: bool = True,
) -> Decision:
    """Decide whether digest is notarized, unrevoked (itself and every identity tied to it), by a trusted key
    (and recent enough). platform: the platform a runtime will run, when known: an index is then refused
    only for a revoked manifest of that platform; unknown (None), any revoked platform manifest refuses it."""
    trusted = _trusted(digest, trusted_keys)
    evidence = gather(ledger, digest, trusted, platform=platform, ties=ties)
    return decide(evidence, trusted, now=now or datetime.now(timezone.utc), max_age=max_age, platform=platform,
                  ties=ties)


def _trusted(digest: str, trusted_keys: Sequence[keys.PublicKey | TrustedKey]) -> list[TrustedKey]:
    records.check_digest(digest)
    trusted = as_trusted(trusted_keys)
    if not trusted:
        raise IntegrityError("no trusted keys: refusing to verify against nothing")
    return trusted


def decide(evidence: Evidence, trusted_keys: Sequence[keys.PublicKey | TrustedKey], *, now: datetime,
           max_age: timedelta | None = None, platform: str | None = None, ties: bool = True) -> Decision:
    """The decision about evidence.digest, from the evidence alone (no I/O): revoked by a trusted key, itself
    or through a tied identity; else notarized by one, recent enough by now. A history the decision needs and
    the evidence lacks raises IncompleteEvidence (exit 3), never counts as empty."""
    digest = evidence.digest
    trusted = _trusted(digest, trusted_keys)
    histories = evidence.histories
    findings = tuple(signer_word(tk, history(histories, digest, tk.key_id)) for tk in trusted)
    head = evidence.head

    revoked = [f for f in findings if f.status == "revoked"]
    if revoked:
        f = revoked[0]
        assert f.record is not None
        why = f" ({f.record.reason})" if f.record.reason else ""
        return Decision(digest, False, "revoked", f"{digest} was revoked by {f.signer} at {f.record.issued_at}{why}",
                        f.record, f.entry, f.signer, head, findings,
                        Revocation(digest, f.signer, f.record.issued_at, f.record.reason, "itself", f.record))
    own = vouching(trusted, histories, digest)
    if ties:
        if evidence.index is None:
            raise IncompleteEvidence(f"the evidence about {digest} holds no artifact index: its ties cannot be "
                                     "checked")
        try:
            tied = next(tied_revocations(digest, trusted, own, platform, evidence.index, histories), None)
        except TooManyTies as exc:  # fail closed: a flooded index must not hide a revoked identity
            return Decision(digest, False, "unverifiable", f"{digest} is refused: {exc}", None, None, None, head,
                            findings)
        if tied is not None:
            why = f" ({tied.reason})" if tied.reason else ""
            return Decision(digest, False, "revoked",
                            f"{digest} is refused: {tied.relation} {tied.digest} was revoked by {tied.signer} at "
                            f"{tied.issued_at}{why}", None, None, tied.signer, head, findings, tied)
    notarized = [f for f in findings if f.status == "notarized"]
    if not notarized:
        return Decision(digest, False, "not-notarized",
                        f"{digest} is not notarized by any trusted key ({len(trusted)} trusted)",
                        None, None, None, head, findings)
    newest = max(notarized, key=lambda f: f.record.issued if f.record else datetime.min)
    assert newest.record is not None
    if max_age is not None and now - newest.record.issued > max_age:
        return Decision(digest, False, "too-old",
                        f"{digest} was last notarized at {newest.record.issued_at}, older than the maximum age",
                        newest.record, newest.entry, newest.signer, head, findings)
    how = f" (reinstated: {newest.record.reason})" if newest.reinstated else ""
    names = sorted({n for r in own for n in _listed(r.subject.get("names")) if isinstance(n, str)})
    return Decision(digest, True, "trusted",
                    f"{digest} notarized by {newest.signer} at {newest.record.issued_at}{how}",
                    newest.record, newest.entry, newest.signer, head, findings, names=tuple(names))


def _listed(v: object) -> list[object]:
    """A subject's list field (names), or none when it is absent or not a list."""
    return v if isinstance(v, list) else []
