"""Finding evidence by CI job or by artifact digest: the job and artifact index keys, read with proofs.

Index values are finders, not evidence (docs/records.md): they lead to subjects, whose signed records are
the evidence. Kept apart from notarize.py so that readers (verify, the gate's hook) do not import the
writing side and the sources.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from notary import jsonsafe, records
from notary.errors import IntegrityError
from notary.ledger.base import Entry, HistoryReader, Ledger, written_by


class IndexHit(NamedTuple):
    entry: Entry
    value: Mapping[str, object]


def _index_hits(ledger: HistoryReader, key: str, at_tx: int | None = None) -> list[IndexHit]:
    """Every version of an index key (written up to at_tx), proven; a value of the wrong shape (any ledger
    writer can store one) becomes an error entry, so a hostile finder is shown for what it is and never
    crashes the listing. Histories are proven complete, so the versions up to at_tx are all there were then."""
    hits = []
    for entry in ledger.history(key):
        if not written_by(ledger, entry, at_tx):
            continue
        try:
            hits.append(IndexHit(entry, _index_value(entry.value)))
        except IntegrityError as exc:
            hits.append(IndexHit(entry, {"error": f"index value is malformed: {exc.message}"}))
    return hits


def _index_value(raw: bytes) -> Mapping[str, object]:
    value = jsonsafe.parse_object(raw, "an index value", error=IntegrityError)
    subjects = value.get("subjects", [])
    if not isinstance(subjects, list) or not all(
        isinstance(s, str) or (isinstance(s, dict) and isinstance(s.get("digest"), str)) for s in subjects
    ):
        raise IntegrityError("its subjects are not a list of digests")
    return value


def absence_proof(ledger: Ledger, key: str, at_tx: int | None = None) -> dict[str, object] | None:
    """Proof that key had no version (as of at_tx), as docs/proofs.md "Absence" gives it; None if it has one
    (`Ledger.absence`: each backend proves it its own way and names the method)."""
    return ledger.absence(key, at_tx=at_tx)


def job_keys(ledger: Ledger, job_id: str, system: str | None = None) -> list[str]:
    """The keys a job's notarizations may sit under: every CI system notary detects (proven reads), plus any
    other the key listing shows (a hint)."""
    if system:
        return [records.job_key(system, job_id)]
    from notary.ci import SYSTEMS

    wanted = [records.job_key(s, job_id) for s in (*(x.name for x in SYSTEMS), "local")]
    return wanted + [k for k in ledger.keys("job/") if k.rsplit("/", 1)[-1] == job_id and k not in wanted]


def lookup_job(ledger: Ledger, job_id: str, system: str | None = None, at_tx: int | None = None) -> list[IndexHit]:
    """Every notarization recorded under a CI job id (all CI systems unless one is named), as of at_tx.

    The key of every CI system notary detects is read (a proven read: on a ledger that proves absence, a
    deleted job record is an integrity error, not "nothing recorded"); keys() adds any other system's, as a
    hint only, since an enumeration proves nothing."""
    hits: list[IndexHit] = []
    for key in job_keys(ledger, job_id, system):
        hits.extend(_index_hits(ledger, key, at_tx))
    return hits


def lookup_artifact(ledger: HistoryReader, digest: str, at_tx: int | None = None) -> list[IndexHit]:
    return _index_hits(ledger, records.artifact_key(digest), at_tx)


class SignerSet(NamedTuple):
    """Who wrote about a digest: the signers its signer index names (proven complete, like any history), and
    any the key listing finds that the index does not (records written before the index existed)."""

    digest: str
    indexed: tuple[str, ...]
    unindexed: tuple[str, ...]
    versions: tuple[Entry, ...]  # the proven versions of signers/<digest> read (as of at_tx, when given)
    later: tuple[Entry, ...] = ()  # as of at_tx: the versions after it (the first and the newest are shown)

    @property
    def signers(self) -> list[str]:
        return sorted({*self.indexed, *self.unindexed})

    def to_json(self) -> dict[str, object]:
        """As of a transaction, `next_version` (the first version after it) and `newest_version` (the one whose
        proof carries the key index) come along, so the cut is provable from the JSON alone (docs/proofs.md)."""
        out: dict[str, object] = {
            "key": records.signer_index_key(self.digest), "signers": self.signers,
            "unindexed": list(self.unindexed), "versions": [_version_json(e) for e in self.versions]}
        if self.later:
            out["next_version"] = _version_json(self.later[0])
            out["newest_version"] = _version_json(self.later[-1])
        return out


def _version_json(e: Entry) -> dict[str, object]:
    return {"tx": e.tx, "revision": e.revision, "signer": _signer_value(e.value), "proof": dict(e.proof)}


def _signer_value(raw: bytes) -> str | None:
    """The signer a signers/<digest> version names; None for a malformed one (any writer can store one:
    it only adds a signer to read, whose records must then prove themselves)."""
    try:
        value = jsonsafe.parse_object(raw, "a signer index value", error=IntegrityError)
    except IntegrityError:
        return None
    signer = value.get("signer")
    return signer if isinstance(signer, str) and records.is_digest(signer) else None


def signer_set(ledger: Ledger, digest: str, at_tx: int | None = None) -> SignerSet:
    """Every signer that wrote about digest (as of at_tx), enumerated with proof.

    Each record is written with a version of signers/<digest> naming its signer, in the same transaction, so
    the key's proven-complete history (the key index; immudb: the verified mirror) is the signer set: deleting
    a signer's records deletes a version the index names, which is an integrity error, not a shorter list."""
    prefix = records.subject_prefix(digest)
    every = [(e, _signer_value(e.value)) for e in ledger.history(records.signer_index_key(digest))]
    then = [(e, s) for e, s in every if written_by(ledger, e, at_tx)]
    indexed = tuple(dict.fromkeys(s for _, s in then if s is not None))
    ever = {s for _, s in every}  # a signer indexed later is not an unindexed one now
    hinted = {k[len(prefix):] for k in ledger.keys(prefix)}
    unindexed = tuple(sorted(s for s in hinted - ever if records.is_digest(s)))
    return SignerSet(digest, indexed, unindexed, tuple(e for e, _ in then),
                     tuple(e for e, _ in every[len(then):]))


def signers_of(ledger: Ledger, digest: str) -> list[str]:
    """Key ids that have written anything about digest (signer_set)."""
    return signer_set(ledger, digest).signers
