"""The read step of a verification: every proven history a decision needs, read before anything is decided.

A decision (notary.verify.decide, notary.revocation) is pure over the Evidence gathered here. The reads go in
rounds, each needing what the one before revealed: the digest's history under each trusted key and the head;
then, unless a trusted key revoked the digest itself, the artifact index naming its holders, the holders'
histories, and the histories of every tied identity under each trusted revoker. Each history is read once.
Reading stops where the decision's answer is settled (a standing revocation, or more ties than a verifier
checks): what follows could not change it, and an evidence bundle holds exactly what the decision reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

from notary import records
from notary.errors import IntegrityError
from notary.ledger.base import Entry, HistoryReader, TreeHead
from notary.lookup import IndexHit, lookup_artifact
from notary.revocation import (
    Histories,
    History,
    TooManyTies,
    holder_candidates,
    holders,
    revokers,
    standing,
    ties,
    vouching,
)
from notary.status import TrustedKey


@dataclass(frozen=True)
class Evidence:
    """What one decision about digest rests on, every history opened, signature-checked and proven.

    histories: (digest, signer key id) -> that signer's records about it, for the digest under each trusted
    key, its holders under each trusted key and its tied identities under each trusted revoker. index: the
    artifact index's versions for digest (where its holders are looked for); None when ties were not read
    (not asked for, or the digest is revoked itself). head: the head every read was proven against (None
    when only ties were gathered, for notarize)."""

    digest: str
    head: TreeHead | None
    histories: Histories
    index: tuple[IndexHit, ...] | None = None


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


class _Reads:
    """The histories read so far; each (digest, signer) is read from the ledger once."""

    def __init__(self, ledger: HistoryReader) -> None:
        self.ledger = ledger
        self.found: dict[tuple[str, str], History] = {}

    def history(self, digest: str, signer: str) -> History:
        key = (digest, signer)
        if key not in self.found:
            self.found[key] = tuple(signer_history(self.ledger, digest, signer))
        return self.found[key]

    def frozen(self) -> Histories:
        return MappingProxyType(dict(self.found))


def gather(ledger: HistoryReader, digest: str, trusted: Sequence[TrustedKey], *, platform: str | None = None,
           ties: bool = True) -> Evidence:
    """Everything notary.verify.decide needs about digest (platform and ties as it is given them)."""
    reads = _Reads(ledger)
    own = [reads.history(digest, tk.key_id) for tk in trusted]
    head = ledger.info().head
    if not ties or any(standing(tk, h) is not None for tk, h in zip(trusted, own, strict=True)):
        return Evidence(digest, head, reads.frozen())
    index = _gather_ties(reads, digest, trusted, vouching(trusted, reads.found, digest), platform, every=False)
    return Evidence(digest, head, reads.frozen(), index)


def gather_ties(ledger: HistoryReader, digest: str, trusted: Sequence[TrustedKey],
                own: Sequence[records.Record], platform: str | None = None) -> Evidence:
    """Everything notary.revocation.tied_revocations needs to list every standing revocation of an identity
    tied to digest, own being the records that tie (notarize: the records it is about to write)."""
    reads = _Reads(ledger)
    index = _gather_ties(reads, digest, trusted, own, platform, every=True)
    return Evidence(digest, None, reads.frozen(), index)


def holders_of(ledger: HistoryReader, digest: str, trusted: Sequence[TrustedKey]) -> list[tuple[str, str]]:
    """(subject, role) for subjects whose trusted record lists digest as their manifest or config
    (notary.revocation.holders, over the artifact index and the candidates' histories read here). More
    candidates than MAX_HOLDER_CANDIDATES raises TooManyTies, and the caller refuses."""
    reads = _Reads(ledger)
    candidates = holder_candidates(digest, lookup_artifact(ledger, digest))
    _read_holders(reads, candidates, trusted)
    return holders(digest, candidates, trusted, reads.found)


def _read_holders(reads: _Reads, candidates: Sequence[str], trusted: Sequence[TrustedKey]) -> None:
    """Every candidate holder's history under each trusted key: what revocation.holders decides from."""
    for holder in candidates:
        for tk in trusted:
            reads.history(holder, tk.key_id)


def _gather_ties(reads: _Reads, digest: str, trusted: Sequence[TrustedKey], own: Sequence[records.Record],
                 platform: str | None, every: bool) -> tuple[IndexHit, ...]:
    """The rounds after the digest's own: its holders (from the artifact index), then its tied identities
    under each revoker, in the order the decision checks them; unless every, up to the first standing
    revocation. Too many ties ends the reading: the decision refuses then, whatever the rest says."""
    index = tuple(lookup_artifact(reads.ledger, digest))
    try:
        candidates = holder_candidates(digest, index)
        _read_holders(reads, candidates, trusted)
        tied = ties(digest, own, holders(digest, candidates, trusted, reads.found), platform)
    except TooManyTies:
        return index
    for identity, _ in tied:
        for tk in revokers(trusted):
            if standing(tk, reads.history(identity, tk.key_id)) is not None:
                if not every:
                    return index
                break
    return index
