"""The one verification path shared by `notary verify`, the runtime hooks and the admission webhook.

The steps of one decision, in order:
  1. verified ledger reads (notary.ledger): head signature, consistency with the trusted state (RFC 9162
     section 2.1.4), inclusion (section 2.1.3) and, for completeness, the newest version or absence of the
     key (docs/proofs.md, "The key index"; immudb: the verified mirror, docs/immudb.md);
  2. envelope: the DSSE signature by the signer the ledger key names, about this digest (open_entry;
     docs/records.md, "Envelope");
  3. status per trusted key over its whole history: roles, not_after, sticky revocations, reinstatements
     (notary.status; docs/records.md, "How a verifier decides", steps 2-3);
  4. revocations, of the digest and of every identity a trusted record ties to it (tied_revocation; step 4);
  5. decision: notarized by a trusted key, recent enough (step 5). Name binding is the gate's (gate/decision.py).

Refusals are values (Decision.allowed is False); broken evidence raises (IntegrityError, exit 3); an
unreachable ledger raises LedgerUnavailableError (exit 4). The gate turns both exceptions into refusals
unless its policy says to fail open.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from notary import keys, records
from notary.errors import IntegrityError
from notary.ledger.base import Entry, HistoryReader, TreeHead
from notary.status import SignerFinding, TrustedKey, as_trusted, decide

__all__ = ["Decision", "Revocation", "SignerFinding", "TrustedKey", "open_entry", "signer_finding",
           "verify_digest"]


class Revocation(NamedTuple):
    """The revocation that refused a digest: of the digest itself, or of an identity a trusted record ties
    to it (its index, its config / image id, a platform manifest of an index, a manifest naming it as config)."""

    digest: str
    signer: str
    issued_at: str
    reason: str | None
    relation: str  # "itself", "its index", "its image id", "its linux/arm64 manifest", "a manifest of it"
    record: records.Record | None = None  # the revoking record itself (what a reinstatement lifts)

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "signer": self.signer, "issued_at": self.issued_at, "reason": self.reason,
                "relation": self.relation,
                "issuedAt": self.issued_at}  # deprecated alias of issued_at, removed in 0.3 (docs/json.md)


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

    def to_json(self) -> dict[str, Any]:
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


def signer_history(ledger: HistoryReader, digest: str, signer: str) -> list[tuple[records.Record, Entry]]:
    """Every record signer wrote about digest, each opened, signature-checked and proven (complete, on a
    ledger that proves completeness)."""
    return [(open_entry(e, digest, signer), e) for e in ledger.history(records.subject_key(digest, signer))]


def signer_finding(ledger: HistoryReader, digest: str, trusted: TrustedKey | keys.PublicKey) -> SignerFinding:
    """The signer's current word on digest, decided over the key's whole verified history (notary.status)."""
    tk = trusted if isinstance(trusted, TrustedKey) else TrustedKey.of(trusted)
    return decide(tk, signer_history(ledger, digest, tk.key_id))


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
    records.check_digest(digest)
    trusted = as_trusted(trusted_keys)
    if not trusted:
        raise IntegrityError("no trusted keys: refusing to verify against nothing")
    histories = {tk.key_id: signer_history(ledger, digest, tk.key_id) for tk in trusted}
    findings = tuple(decide(tk, histories[tk.key_id]) for tk in trusted)
    head = ledger.info().head

    revoked = [f for f in findings if f.status == "revoked"]
    if revoked:
        f = revoked[0]
        assert f.record is not None
        why = f" ({f.record.reason})" if f.record.reason else ""
        return Decision(digest, False, "revoked", f"{digest} was revoked by {f.signer} at {f.record.issued_at}{why}",
                        f.record, f.entry, f.signer, head, findings,
                        Revocation(digest, f.signer, f.record.issued_at, f.record.reason, "itself", f.record))
    vouching = _vouching(trusted, histories)
    if ties:
        try:
            tied = tied_revocation(ledger, digest, trusted, vouching, platform)
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
    if max_age is not None:
        current = now or datetime.now(timezone.utc)
        if current - newest.record.issued > max_age:
            return Decision(digest, False, "too-old",
                            f"{digest} was last notarized at {newest.record.issued_at}, older than the maximum age",
                            newest.record, newest.entry, newest.signer, head, findings)
    how = f" (reinstated: {newest.record.reason})" if newest.reinstated else ""
    names = sorted({n for r in vouching for n in (r.subject.get("names") or []) if isinstance(n, str)})
    return Decision(digest, True, "trusted",
                    f"{digest} notarized by {newest.signer} at {newest.record.issued_at}{how}",
                    newest.record, newest.entry, newest.signer, head, findings, names=tuple(names))


MAX_TIES = 64  # identities tied by trusted records that a verifier checks for revocations
MAX_HOLDER_CANDIDATES = 256  # artifact-index candidates read; beyond it the decision refuses (fail closed)


def _vouching(trusted: Sequence[TrustedKey],
              histories: dict[str, list[tuple[records.Record, Entry]]]) -> list[records.Record]:
    """The records of digest's histories that count as their trusted signer's word for it."""
    by_id = {tk.key_id: tk for tk in trusted}
    return [r for signer, h in histories.items() for r, e in h if by_id[signer].vouches(r, e)]


def tied_revocation(ledger: HistoryReader, digest: str, trusted: Sequence[TrustedKey], own: Sequence[records.Record],
                    platform: str | None) -> Revocation | None:
    """The first revocation, by a trusted revoker, of an identity that a trusted record ties to digest."""
    return next(tied_revocations(ledger, digest, trusted, own, platform), None)


def tied_revocations(ledger: HistoryReader, digest: str, trusted: Sequence[TrustedKey], own: Sequence[records.Record],
                     platform: str | None) -> Iterator[Revocation]:
    """Each standing revocation, by a trusted revoker, of an identity that a trusted record ties to digest.

    Ties come only from signed records of trusted signers: digest's own (its config / image id; for an index,
    its platform manifests) and those of the subjects the artifact index names as holding digest (an index
    listing it as a manifest, a manifest naming it as config). The artifact index is only a hint of where to
    look: a holder counts only if its own trusted record names digest in that role. own: digest's records
    that vouch for it (_vouching).
    """
    candidates: list[tuple[str, str]] = []
    for record in own:
        config = [a.get("digest") for a in record.artifacts if a.get("role") == "config"]
        for c in [record.subject.get("imageId"), *config]:
            if isinstance(c, str) and c != digest:
                candidates.append((c, "its image id"))
        if record.subject.get("kind") == "oci-index":
            for a in record.artifacts:
                if a.get("role") == "manifest" and (platform is None or a.get("name") == platform):
                    candidates.append((str(a.get("digest")), f"its {a.get('name') or 'platform'} manifest"))
    for holder, role in holders_of(ledger, digest, trusted):
        candidates.append((holder, "its index" if role == "manifest" else "a manifest of it"))
    distinct = {t for t, _ in candidates if records.is_digest(t)}
    if len(distinct) > MAX_TIES:
        raise TooManyTies(f"{len(distinct)} identities are tied to it by trusted records, more than the "
                          f"{MAX_TIES} a verifier checks")
    revokers = [tk for tk in trusted if "revoke" in tk.roles]
    seen: set[str] = set()
    for tied, relation in candidates:
        if tied in seen or tied not in distinct:
            continue
        seen.add(tied)
        for tk in revokers:
            finding = decide(tk, signer_history(ledger, tied, tk.key_id))
            if finding.status == "revoked" and finding.record is not None:
                yield Revocation(tied, tk.key_id, finding.record.issued_at, finding.record.reason, relation,
                                 finding.record)
                break


class TooManyTies(Exception):
    """More identities to check than a verifier will read: the decision refuses rather than check fewer."""


def holders_of(ledger: HistoryReader, digest: str, trusted: Sequence[TrustedKey]) -> list[tuple[str, str]]:
    """(subject, role) for subjects whose trusted record lists digest as their manifest or config.

    The artifact index is shared by every writer, so it is a list of candidates only: each is kept only if a
    counted record of a trusted key names digest. Every candidate is checked (none is skipped because others
    came first); more than MAX_HOLDER_CANDIDATES raises TooManyTies, and the caller refuses."""
    from notary.lookup import lookup_artifact

    names: list[str] = []
    for hit in lookup_artifact(ledger, digest):
        for subject in hit.value.get("subjects", []) if isinstance(hit.value, dict) else []:
            if isinstance(subject, str) and subject != digest and subject not in names and records.is_digest(subject):
                names.append(subject)
    if len(names) > MAX_HOLDER_CANDIDATES:
        raise TooManyTies(f"the artifact index names {len(names)} subjects holding {digest}, more than the "
                          f"{MAX_HOLDER_CANDIDATES} a verifier checks: a revoked one cannot be ruled out")
    found: list[tuple[str, str]] = []
    for holder in names:
        roles: set[object] = set()
        for tk in trusted:
            for record, entry in signer_history(ledger, holder, tk.key_id):
                if not tk.vouches(record, entry):
                    continue
                roles.update(a.get("role") for a in record.artifacts if a.get("digest") == digest)
                if record.subject.get("imageId") == digest:
                    roles.add("config")
        found += [(holder, role) for role in ("manifest", "config") if role in roles]
    return found
