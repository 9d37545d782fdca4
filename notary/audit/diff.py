"""What changed in a ledger between two points: every notarization, revocation and reinstatement, complete.

The entries come from Ledger.changes, which proves the range complete (embedded: every leaf between the two
transactions' tree sizes, contiguous, each included in the verified head, the leaves around the range outside
it; immudb: the verified mirror's replay names every entry, each value read proven). Both points are
prefixes of the verified head, which is proven consistent with what this client trusted before, so neither
end can have been rewritten since this client last looked.

Each record is opened as any reader opens it: the envelope's signature checked against the key it names,
the ledger key it sits under matching its digest and signer. A record that fails is a finding (and the
CLI's exit 3), never skipped. Index keys (job, artifact, signer set) are finders, counted; keys notary does
not write are counted as other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from notary import records
from notary.errors import IntegrityError
from notary.ledger.base import Entry, TreeHead, rfc3339
from notary.verify import open_entry

if TYPE_CHECKING:
    from notary.attest.store import AttestationRow

_INDEX_FAMILIES = {"job": "job", "artifact": "artifact", "signers": "signer-set", "attestations": "attestation-index"}


@dataclass(frozen=True)
class Change:
    """One signed record written in the range."""

    tx: int
    time: str | None
    key: str
    type: str  # notarization | revocation | reinstatement
    digest: str
    signer: str
    trusted: bool | None  # None: no trusted keys were named
    issued_at: str
    reason: str | None
    ci: Mapping[str, object]
    name: str | None

    @property
    def job(self) -> str | None:
        job = self.ci.get("jobId")
        return f"{self.ci.get('system', '?')}/{job}" if job else None

    def to_json(self) -> dict[str, object]:
        return {"tx": self.tx, "time": self.time, "key": self.key, "type": self.type, "digest": self.digest,
                "name": self.name, "signer": self.signer, "trusted_signer": self.trusted,
                "issued_at": self.issued_at, "reason": self.reason, "ci": dict(self.ci),
                # deprecated aliases of trusted_signer and issued_at, removed in 0.3 (docs/json.md)
                "trustedSigner": self.trusted, "issuedAt": self.issued_at}


@dataclass(frozen=True)
class Finding:
    """A record in the range that does not open: altered, misfiled, or not a notary record at all."""

    tx: int
    key: str
    problem: str

    def to_json(self) -> dict[str, object]:
        return {"tx": self.tx, "key": self.key, "problem": self.problem}


@dataclass
class Diff:
    from_tx: int
    to_tx: int
    head: TreeHead | None  # None: the caller reports the head itself (a monitor's round)
    changes: list[Change] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    index_entries: Counter[str] = field(default_factory=Counter)
    other_entries: int = 0
    entries: int = 0
    attestations: list[AttestationRow] = field(default_factory=list)  # in-toto attestations (notary.attest)

    def by_signer(self) -> dict[str, dict[str, int]]:
        out: dict[str, Counter[str]] = {}
        for c in self.changes:
            out.setdefault(c.signer, Counter())[c.type] += 1
        return {s: dict(sorted(n.items())) for s, n in sorted(out.items())}

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(c.type for c in self.changes).items()))

    def by_job(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for c in self.changes:
            if c.job and c.digest not in out.setdefault(c.job, []):
                out[c.job].append(c.digest)
        return dict(sorted(out.items()))

    def to_json(self) -> dict[str, object]:
        return {
            "from": {"tx": self.from_tx},
            "to": {"tx": self.to_tx},
            "head": self.head.to_json() if self.head else None,
            "complete": True,
            "entries": self.entries,
            "counts": self.counts(),
            "by_signer": self.by_signer(),
            "by_job": self.by_job(),
            "changes": [c.to_json() for c in self.changes],
            "attestations": self.attestations,
            "index_entries": dict(sorted(self.index_entries.items())),
            "other_entries": self.other_entries,
            "findings": [f.to_json() for f in self.findings],
        }


def diff(entries: Iterable[Entry], from_tx: int, to_tx: int, head: TreeHead | None,
         trusted: set[str] | None = None) -> Diff:
    """Classify the proven entries of transactions from_tx+1..to_tx (pure: the reading is the caller's)."""
    out = Diff(from_tx, to_tx, head)
    pending: list[Entry] = []  # a transaction's attestations, opened with the keys its attestation index names
    for entry in entries:
        out.entries += 1
        family, _, rest = entry.key.partition("/")
        if pending and entry.tx != pending[0].tx:
            _attestations(out, pending, trusted)
        if family in ("attestation", "attestations"):
            pending.append(entry)
        if family == "attestation":
            continue
        if family in _INDEX_FAMILIES:
            out.index_entries[_INDEX_FAMILIES[family]] += 1
            continue
        if family != "subject":
            out.other_entries += 1
            continue
        digest, _, signer = rest.partition("/")
        try:
            if not (records.is_digest(digest) and records.is_digest(signer)):
                raise IntegrityError("not a subject key of the form subject/<digest>/<signer key id>")
            record = open_entry(entry, digest, signer)
        except IntegrityError as exc:
            out.findings.append(Finding(entry.tx, entry.key, exc.message))
            continue
        name = record.subject.get("name")
        out.changes.append(Change(
            tx=entry.tx, time=rfc3339(entry.time), key=entry.key, type=record.type, digest=digest, signer=signer,
            trusted=(signer in trusted) if trusted else None, issued_at=record.issued_at, reason=record.reason,
            ci=dict(record.ci), name=name if isinstance(name, str) else None))
    if pending:
        _attestations(out, pending, trusted)
    return out


def _attestations(out: Diff, pending: list[Entry], trusted: set[str] | None) -> None:
    """Open one transaction's attestation entries (each a finding when it does not open) and clear pending."""
    from notary.attest import audit_entry, index_public_key
    from notary.attest.store import AttestationRow

    signers = dict(found for e in pending if e.key.startswith("attestations/") and (found := index_public_key(e)))
    for entry in pending:
        if not entry.key.startswith("attestation/"):
            continue
        try:
            row = audit_entry(entry, signers)
        except IntegrityError as exc:
            out.findings.append(Finding(entry.tx, entry.key, exc.message))
            continue
        out.attestations.append(AttestationRow(**row, trusted_signer=(row["signer"] in trusted) if trusted else None))
    pending.clear()
