"""The revocation rule, in one place: which identities trusted records tie to a digest, and whether a trusted
revoker's word on one of them stands. Pure: no I/O; every history comes from notary.gather.

Used by the verifier (notary.verify.decide), so by the gate and the evidence replays, and by notarize (which
refuses to notarize what the gate would refuse for a revocation of its own signer). The fold itself (sticky
revocations, reinstatements, roles and not_after, order of issue) is notary.status.decide: a revocation
stands when that fold of a revoker's whole history ends revoked (docs/records.md, "How a verifier decides").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

from notary import records
from notary.errors import IntegrityError
from notary.ledger.base import Entry
from notary.lookup import IndexHit
from notary.status import TrustedKey, decide

MAX_TIES = 64  # identities tied by trusted records that a verifier checks for revocations
MAX_HOLDER_CANDIDATES = 256  # artifact-index candidates read; beyond it the decision refuses (fail closed)

History = tuple[tuple[records.Record, Entry], ...]  # one signer's records about one digest, opened and proven
Histories = Mapping[tuple[str, str], History]  # (digest, signer key id) -> its history
Tie = tuple[str, str]  # (identity, relation to the digest: "its image id", "its index", ...)


class Revocation(NamedTuple):
    """The revocation that refused a digest: of the digest itself, or of an identity a trusted record ties
    to it (its index, its config / image id, a platform manifest of an index, a manifest naming it as config)."""

    digest: str
    signer: str
    issued_at: str
    reason: str | None
    relation: str  # "itself", "its index", "its image id", "its linux/arm64 manifest", "a manifest of it"
    record: records.Record | None = None  # the revoking record itself (what a reinstatement lifts)

    def to_json(self) -> dict[str, object]:
        return {"digest": self.digest, "signer": self.signer, "issued_at": self.issued_at, "reason": self.reason,
                "relation": self.relation,
                "issuedAt": self.issued_at}  # deprecated alias of issued_at, removed in 0.3 (docs/json.md)


class TooManyTies(Exception):
    """More identities to check than a verifier will read: the decision refuses rather than check fewer."""


class IncompleteEvidence(IntegrityError):
    """The evidence lacks a history the decision needs: deciding without it could miss a revocation."""


def history(histories: Histories, digest: str, signer: str) -> History:
    """signer's history of digest as gathered; its absence from the evidence is an error, never "empty"."""
    try:
        return histories[(digest, signer)]
    except KeyError:
        raise IncompleteEvidence(f"the evidence holds no history of {digest} by {signer}: it cannot be decided "
                                 "without it") from None


def standing(trusted: TrustedKey, found: Sequence[tuple[records.Record, Entry]]) -> records.Record | None:
    """The revocation by this key that stands over its whole history of one digest, or None: revocations
    stick until a reinstatement; only records the key may make, in time, count (notary.status)."""
    finding = decide(trusted, found)
    return finding.record if finding.status == "revoked" else None


def vouching(trusted: Sequence[TrustedKey], histories: Histories, digest: str) -> list[records.Record]:
    """The records of digest's histories that count as their trusted signer's word for it: what ties and
    names come from (a revocation ties nothing)."""
    return [r for tk in trusted for r, e in history(histories, digest, tk.key_id) if tk.vouches(r, e)]


def own_ties(digest: str, own: Sequence[records.Record], platform: str | None) -> list[Tie]:
    """The identities digest's own records tie to it: its config / image id; for an index, its platform
    manifests (only platform's, when the runtime's platform is known)."""
    found: list[Tie] = []
    for record in own:
        config = [a.get("digest") for a in record.artifacts if a.get("role") == "config"]
        for c in [record.subject.get("imageId"), *config]:
            if isinstance(c, str) and c != digest:
                found.append((c, "its image id"))
        if record.subject.get("kind") == "oci-index":
            for a in record.artifacts:
                if a.get("role") == "manifest" and (platform is None or a.get("name") == platform):
                    found.append((str(a.get("digest")), f"its {a.get('name') or 'platform'} manifest"))
    return found


def holder_candidates(digest: str, index: Sequence[IndexHit]) -> list[str]:
    """The subjects the artifact index names as holding digest: hints of where to look, in index order.

    The index is shared by every writer: a candidate counts only if its own trusted record names digest
    (holders). More than MAX_HOLDER_CANDIDATES raises TooManyTies: a revoked one could not be ruled out."""
    names: list[str] = []
    for hit in index:
        for subject in hit.value.get("subjects", []) if isinstance(hit.value, dict) else []:
            if isinstance(subject, str) and subject != digest and subject not in names and records.is_digest(subject):
                names.append(subject)
    if len(names) > MAX_HOLDER_CANDIDATES:
        raise TooManyTies(f"the artifact index names {len(names)} subjects holding {digest}, more than the "
                          f"{MAX_HOLDER_CANDIDATES} a verifier checks: a revoked one cannot be ruled out")
    return names


def holders(digest: str, candidates: Sequence[str], trusted: Sequence[TrustedKey],
            histories: Histories) -> list[tuple[str, str]]:
    """(subject, role) for candidates whose counted record of a trusted key lists digest as its manifest or
    config (or names it as its imageId). Every candidate is checked: none is skipped because others came
    first."""
    found: list[tuple[str, str]] = []
    for holder in candidates:
        roles: set[object] = set()
        for tk in trusted:
            for record, entry in history(histories, holder, tk.key_id):
                if not tk.vouches(record, entry):
                    continue
                roles.update(a.get("role") for a in record.artifacts if a.get("digest") == digest)
                if record.subject.get("imageId") == digest:
                    roles.add("config")
        found += [(holder, role) for role in ("manifest", "config") if role in roles]
    return found


def ties(digest: str, own: Sequence[records.Record], held_by: Sequence[tuple[str, str]],
         platform: str | None) -> list[Tie]:
    """Each identity trusted records tie to digest, once, in the order a verifier checks them: digest's own
    ties, then its holders (an index listing it: "its index"; a manifest naming it as config). More than
    MAX_TIES raises TooManyTies."""
    candidates = own_ties(digest, own, platform)
    candidates += [(h, "its index" if role == "manifest" else "a manifest of it") for h, role in held_by]
    distinct = {t for t, _ in candidates if records.is_digest(t)}
    if len(distinct) > MAX_TIES:
        raise TooManyTies(f"{len(distinct)} identities are tied to it by trusted records, more than the "
                          f"{MAX_TIES} a verifier checks")
    out: list[Tie] = []
    for tied, relation in candidates:
        if tied in distinct and all(tied != t for t, _ in out):
            out.append((tied, relation))
    return out


def revokers(trusted: Sequence[TrustedKey]) -> list[TrustedKey]:
    return [tk for tk in trusted if "revoke" in tk.roles]


def tied_revocations(digest: str, trusted: Sequence[TrustedKey], own: Sequence[records.Record],
                     platform: str | None, index: Sequence[IndexHit], histories: Histories) -> Iterator[Revocation]:
    """Each standing revocation, by a trusted revoker, of an identity that a trusted record ties to digest
    (at most one per identity: its first revoker's, in trusted order).

    Ties come only from signed records of trusted signers: digest's own (own: its records that vouch for it;
    its config / image id; for an index, its platform manifests) and those of the subjects the artifact
    index names as holding digest. The artifact index is only a hint of where to look: a holder counts only
    if its own trusted record names digest in that role (holders)."""
    held_by = holders(digest, holder_candidates(digest, index), trusted, histories)
    for tied, relation in ties(digest, own, held_by, platform):
        for tk in revokers(trusted):
            record = standing(tk, history(histories, tied, tk.key_id))
            if record is not None:
                yield Revocation(tied, tk.key_id, record.issued_at, record.reason, relation, record)
                break
