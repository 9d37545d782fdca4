"""Finding evidence by CI job or by artifact digest: the job and artifact index keys, read with proofs.

Index values are finders, not evidence (docs/records.md): they lead to subjects, whose signed records are
the evidence. Kept apart from notarize.py so that readers (verify, the gate's hook) do not import the
writing side and the sources.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from notary import jsonsafe, records
from notary.errors import IntegrityError, NotFoundError
from notary.ledger.base import Entry, Ledger


class IndexHit(NamedTuple):
    entry: Entry
    value: Mapping[str, Any]


def _index_hits(ledger: Ledger, key: str) -> list[IndexHit]:
    """Every version of an index key, proven; a value of the wrong shape (any ledger writer can store one)
    becomes an error entry, so a hostile finder is shown for what it is and never crashes the listing."""
    hits = []
    for entry in ledger.history(key):
        try:
            hits.append(IndexHit(entry, _index_value(entry.value)))
        except IntegrityError as exc:
            hits.append(IndexHit(entry, {"error": f"index value is malformed: {exc.message}"}))
    return hits


def _index_value(raw: bytes) -> Mapping[str, Any]:
    value = jsonsafe.loads_object(raw, "an index value", error=IntegrityError)
    subjects = value.get("subjects", [])
    if not isinstance(subjects, list) or not all(
        isinstance(s, str) or (isinstance(s, dict) and isinstance(s.get("digest"), str)) for s in subjects
    ):
        raise IntegrityError("its subjects are not a list of digests")
    return value


def lookup_job(ledger: Ledger, job_id: str, system: str | None = None) -> list[IndexHit]:
    """Every notarization recorded under a CI job id (all CI systems unless one is named).

    The key of every CI system notary detects is read (a proven read: on a ledger that proves absence, a
    deleted job record is an integrity error, not "nothing recorded"); keys() adds any other system's, as a
    hint only, since an enumeration proves nothing."""
    if system:
        return _index_hits(ledger, records.job_key(system, job_id))
    from notary.ci import SYSTEMS

    wanted = [records.job_key(s, job_id) for s in (*(x.name for x in SYSTEMS), "local")]
    wanted += [k for k in ledger.keys("job/") if k.rsplit("/", 1)[-1] == job_id and k not in wanted]
    hits: list[IndexHit] = []
    for key in wanted:
        hits.extend(_index_hits(ledger, key))
    return hits


def lookup_artifact(ledger: Ledger, digest: str) -> list[IndexHit]:
    return _index_hits(ledger, records.artifact_key(digest))


def signers_of(ledger: Ledger, digest: str) -> list[str]:
    """Key ids that have written anything about digest (an enumeration hint, not evidence)."""
    prefix = records.subject_prefix(digest)
    return [k[len(prefix):] for k in ledger.keys(prefix)]


def require_known(ledger: Ledger, digest: str) -> list[str]:
    found = signers_of(ledger, digest)
    if not found:
        raise NotFoundError(f"the ledger holds no record about {digest}")
    return found
