"""The pure decision (notary.verify.decide) attacked with hand-made evidence: no ledger at all.

Each record is signed by a real key (its id is the signer's), each entry says when the ledger proved it was
written; decide must refuse on a trusted revoker's standing revocation of the digest or of any identity a
trusted record ties to it, and on nothing an untrusted key wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from itertools import count
from types import MappingProxyType
from typing import Any

import pytest

from notary import keys, records
from notary.gather import Evidence
from notary.ledger.base import Entry, TreeHead
from notary.lookup import IndexHit
from notary.revocation import MAX_TIES, History, IncompleteEvidence, standing
from notary.status import TrustedKey
from notary.verify import Decision, decide

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
HEAD = TreeHead("ledger", 10, b"\0" * 32, 10)
MANIFEST = "sha256:" + "a" * 64
IMAGE_ID = "sha256:" + "b" * 64
INDEX = "sha256:" + "c" * 64
ARM = "sha256:" + "d" * 64
_tx = count(1)

TRUSTED = keys.generate_private_key()
OTHER = keys.generate_private_key()  # a key the verifier does not trust


def record(rtype: str, digest: str, signer: Any = TRUSTED, *, at: timedelta = timedelta(0), reason: str | None = None,
           subject: Mapping[str, Any] | None = None, artifacts: tuple[Mapping[str, Any], ...] = ()) -> records.Record:
    return records.new_record(rtype, {"digest": digest, **(subject or {})}, signer, artifacts=artifacts,
                              reason=reason or ("why" if rtype != "notarization" else None), issued_at=T0 + at)


def proven(*recs: records.Record, written: timedelta | None = None) -> History:
    """Each record as proven in the ledger, in ledger order; written: the proven time (default: as issued)."""
    return tuple((r, Entry(records.subject_key(r.digest, r.signer), b"", next(_tx),
                           r.issued if written is None else T0 + written, i + 1)) for i, r in enumerate(recs))


def trusted(*signers: Any, roles: Sequence[str] | None = None, not_after: datetime | None = None) -> list[TrustedKey]:
    return [TrustedKey.of(s.public_key(), roles, not_after) for s in signers]


def evidence(*histories: History, empty: Sequence[tuple[str, Any]] = (), index: Sequence[IndexHit] = ()) -> Evidence:
    """The evidence of MANIFEST: each given history under its records' (digest, signer); empty: the
    (digest, signer) pairs gathered and found empty."""
    found: dict[tuple[str, str], History] = {(d, keys.key_id(s)): () for d, s in empty}
    for h in histories:
        r = h[0][0]
        found[(r.digest, r.signer)] = found.get((r.digest, r.signer), ()) + h
    return Evidence(MANIFEST, HEAD, MappingProxyType(found), tuple(index))


def decided(ev: Evidence, tks: Sequence[TrustedKey] | None = None, **kw: Any) -> Decision:
    return decide(ev, tks if tks is not None else trusted(TRUSTED), now=T0 + timedelta(days=1), **kw)


def manifest_with_image_id(signer: Any = TRUSTED) -> records.Record:
    return record("notarization", MANIFEST, signer, subject={"kind": "oci-manifest", "imageId": IMAGE_ID},
                  artifacts=({"role": "config", "digest": IMAGE_ID},))


def test_notarized_by_a_trusted_key_with_no_revocation_is_trusted() -> None:
    d = decided(evidence(proven(manifest_with_image_id()), empty=[(IMAGE_ID, TRUSTED)]))
    assert (d.allowed, d.status, d.head) == (True, "trusted", HEAD)


def test_a_trusted_revocation_of_a_tied_image_id_refuses() -> None:
    ev = evidence(proven(manifest_with_image_id()), proven(record("revocation", IMAGE_ID, reason="cve")))
    d = decided(ev)
    assert (d.allowed, d.status) == (False, "revoked")
    assert d.revocation is not None and (d.revocation.digest, d.revocation.relation) == (IMAGE_ID, "its image id")
    assert d.reason.endswith("(cve)") and "its image id" in d.reason


def test_a_revocation_by_an_untrusted_key_does_not_refuse() -> None:
    untrusted = proven(record("revocation", IMAGE_ID, OTHER))
    d = decided(evidence(proven(manifest_with_image_id()), untrusted, proven(record("revocation", MANIFEST, OTHER)),
                         empty=[(IMAGE_ID, TRUSTED)]))
    assert (d.allowed, d.status) == (True, "trusted")


def test_a_trusted_key_without_the_revoke_role_cannot_revoke() -> None:
    tks = [TrustedKey.of(TRUSTED.public_key(), ["notarize"]), *trusted(OTHER, roles=["revoke"])]
    ev = evidence(proven(manifest_with_image_id()), proven(record("revocation", IMAGE_ID)),
                  empty=[(MANIFEST, OTHER), (IMAGE_ID, OTHER)])
    assert decided(ev, tks).allowed
    ev = evidence(proven(manifest_with_image_id()), proven(record("revocation", IMAGE_ID, OTHER)),
                  empty=[(MANIFEST, OTHER)])
    assert decided(ev, tks).status == "revoked"


def test_an_untrusted_record_ties_nothing() -> None:
    """A record of an untrusted key naming a revoked identity as its image id cannot veto the digest."""
    tks = trusted(TRUSTED)
    ev = evidence(proven(record("notarization", MANIFEST)), proven(manifest_with_image_id(OTHER)),
                  proven(record("revocation", IMAGE_ID)))
    assert decided(ev, tks).allowed


def test_reinstatement_after_revocation_lifts_it_and_a_plain_notarization_does_not() -> None:
    revoked = [record("notarization", MANIFEST), record("revocation", MANIFEST, at=timedelta(hours=1))]
    again = record("notarization", MANIFEST, at=timedelta(hours=2))
    d = decided(evidence(proven(*revoked, again)))
    assert (d.status, d.revocation and d.revocation.relation) == ("revoked", "itself")
    lift = record("reinstatement", MANIFEST, at=timedelta(hours=3), reason="fixed")
    d = decided(evidence(proven(*revoked, again, lift), index=()))
    assert (d.allowed, d.status) == (True, "trusted") and d.reason.endswith("(reinstated: fixed)")


def test_a_reinstated_tied_identity_no_longer_refuses() -> None:
    tied = proven(record("revocation", IMAGE_ID), record("reinstatement", IMAGE_ID, at=timedelta(hours=1)))
    assert decided(evidence(proven(manifest_with_image_id()), tied)).allowed


def test_order_of_issue_not_of_writing_decides() -> None:
    """An old notarization replayed after a revocation sorts where it was issued; in one second a
    revocation beats a notarization, whatever the ledger order."""
    replayed = proven(record("revocation", MANIFEST, at=timedelta(hours=1)), record("notarization", MANIFEST))
    assert decided(evidence(replayed)).status == "revoked"
    same_second = proven(record("revocation", MANIFEST), record("notarization", MANIFEST))
    assert decided(evidence(same_second)).status == "revoked"
    lifted = proven(record("reinstatement", MANIFEST, at=timedelta(hours=2)),
                    record("revocation", MANIFEST, at=timedelta(hours=1)))
    assert decided(evidence(lifted, index=())).allowed


def test_max_age_counts_from_the_newest_notarization() -> None:
    ev = evidence(proven(record("notarization", MANIFEST), record("notarization", MANIFEST, at=timedelta(hours=20))))
    assert decided(ev, max_age=timedelta(hours=5)).allowed  # now is T0 + 24h: the newest is 4h old
    d = decided(ev, max_age=timedelta(hours=3))
    assert (d.allowed, d.status) == (False, "too-old")


def test_role_ends_by_proven_time_not_the_records_claim() -> None:
    """A retired revoker's revocation written after its not_after does not count, even if it claims to be
    issued before; one proven in time does."""
    tks = trusted(TRUSTED, not_after=T0 + timedelta(hours=1))
    late = proven(record("notarization", MANIFEST), record("revocation", MANIFEST, at=timedelta(minutes=30)),
                  written=timedelta(hours=2))
    assert decided(evidence(late), tks).status == "not-notarized"  # the notarization was written late too
    ontime = (*proven(record("notarization", MANIFEST)),
              *proven(record("revocation", MANIFEST, at=timedelta(minutes=30)), written=timedelta(hours=2)))
    assert decided(evidence(ontime, index=()), tks).allowed


def test_a_trusted_index_listing_the_digest_ties_its_revocation() -> None:
    index_rec = record("notarization", INDEX, subject={"kind": "oci-index"},
                       artifacts=({"role": "manifest", "digest": MANIFEST, "name": "linux/amd64"},))
    hint = IndexHit(Entry(records.artifact_key(MANIFEST), b"", 1, T0, 1), {"subjects": [INDEX]})
    ev = evidence(proven(record("notarization", MANIFEST)), proven(index_rec, record("revocation", INDEX)),
                  index=[hint])
    d = decided(ev)
    assert d.status == "revoked" and d.revocation is not None and d.revocation.relation == "its index"


def test_a_forged_index_hint_ties_nothing() -> None:
    """The artifact index names a revoked subject whose trusted records never list the digest."""
    hint = IndexHit(Entry(records.artifact_key(MANIFEST), b"", 1, T0, 1), {"subjects": [INDEX]})
    ev = evidence(proven(record("notarization", MANIFEST)), proven(record("revocation", INDEX)), index=[hint])
    assert decided(ev).allowed


def test_platform_narrows_an_index_to_its_manifest() -> None:
    idx = record("notarization", MANIFEST, subject={"kind": "oci-index"}, artifacts=(
        {"role": "manifest", "digest": ARM, "name": "linux/arm64"},
        {"role": "manifest", "digest": IMAGE_ID, "name": "linux/amd64"}))
    ev = evidence(proven(idx), proven(record("revocation", ARM)), empty=[(IMAGE_ID, TRUSTED)])
    d = decided(ev)
    assert d.revocation is not None and d.revocation.relation == "its linux/arm64 manifest"
    assert decided(ev, platform="linux/amd64").allowed


def test_too_many_ties_is_unverifiable_not_allowed() -> None:
    many = tuple({"role": "manifest", "digest": "sha256:" + f"{i:064x}", "name": f"p{i}"} for i in range(MAX_TIES + 1))
    idx = record("notarization", MANIFEST, subject={"kind": "oci-index"}, artifacts=many)
    d = decided(evidence(proven(idx)))
    assert (d.allowed, d.status) == (False, "unverifiable")


def test_evidence_missing_a_tied_history_fails_closed() -> None:
    with pytest.raises(IncompleteEvidence):
        decided(evidence(proven(manifest_with_image_id())))
    with pytest.raises(IncompleteEvidence):  # ties asked for, but no artifact index gathered
        decided(Evidence(MANIFEST, HEAD, MappingProxyType({(MANIFEST, keys.key_id(TRUSTED)): ()}), None))


def test_ties_off_needs_no_tie_evidence() -> None:
    ev = Evidence(MANIFEST, HEAD, MappingProxyType(dict(evidence(proven(manifest_with_image_id())).histories)))
    assert decided(ev, ties=False).allowed


def test_standing_is_the_rule_notarize_applies_too() -> None:
    tk = trusted(TRUSTED)[0]
    rev = record("revocation", MANIFEST, at=timedelta(hours=1))
    assert standing(tk, proven(record("notarization", MANIFEST), rev)) == rev
    assert standing(tk, proven(rev, record("reinstatement", MANIFEST, at=timedelta(hours=2)))) is None
