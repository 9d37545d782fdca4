"""The attestations of `notary audit report`: per signer, per predicate type, and listed (pure).

The rows are the ones notary.audit.diff opened from the proven range (each envelope's signature checked with
the key its transaction's attestation index carries, under the digest, signer and predicate type its ledger
key names); one that does not open is a finding there, never a row here. So the section shows no more than
`audit diff --json` lists as "attestations", and an attestation is only "trusted" when its signer was named
with --key (attestations never make a subject trusted; notary.attest).

Predicate types, subject names and the like are written by whoever signs, so all of it goes through the
report's escaper, and every table stops at max_rows rows like the report's others.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, TypedDict

from notary.audit.report import _code, _n, _opt, _signer_cell, _table

if TYPE_CHECKING:
    from notary.attest.store import AttestationRow

_FIELDS = ("tx", "time", "key", "digest", "signer", "trusted_signer", "predicate_type", "subjects")
_PER_CELL = 3  # subject names and predicate types named per cell (the rest counted)


class ListedAttestation(TypedDict):
    """A row as the report's JSON lists it (_FIELDS)."""

    tx: int
    time: str | None
    key: str
    digest: str
    signer: str
    trusted_signer: bool | None
    predicate_type: str
    subjects: list[dict[str, str]]


class AttestationSummary(TypedDict):
    """The JSON of the report's attestations (summary)."""

    count: int
    trusted: int | None
    by_signer: dict[str, dict[str, int]]
    by_predicate_type: dict[str, int]
    list: list[ListedAttestation]


def summary(rows: Sequence[AttestationRow]) -> AttestationSummary:
    """The JSON of the report's attestations: counts per signer and per predicate type, how many are by a
    signer named with --key (None when none was named), and the rows themselves, oldest first."""
    by_signer: dict[str, Counter[str]] = {}
    for r in rows:
        by_signer.setdefault(r["signer"], Counter())[r["predicate_type"]] += 1
    judged = any(r["trusted_signer"] is not None for r in rows)
    return {"count": len(rows),
            "trusted": sum(r["trusted_signer"] is True for r in rows) if judged else None,
            "by_signer": {s: dict(sorted(c.items())) for s, c in sorted(by_signer.items())},
            "by_predicate_type": dict(sorted(Counter(r["predicate_type"] for r in rows).items())),
            "list": [_listed(r) for r in rows]}


def _listed(r: AttestationRow) -> ListedAttestation:
    """A row as the report's JSON lists it (_FIELDS: its envelope and proof are left to `history`)."""
    return {"tx": r["tx"], "time": r["time"], "key": r["key"], "digest": r["digest"], "signer": r["signer"],
            "trusted_signer": r["trusted_signer"], "predicate_type": r["predicate_type"], "subjects": r["subjects"]}


def section(rows: Sequence[AttestationRow], max_rows: int) -> str:
    """The page's "Attestations" section: what was proven, then the three tables."""
    if not rows:
        return "<p>No attestation was written in this range.</p>"
    found = summary(rows)
    trusted = ("" if found["trusted"] is None else
               f" {found['trusted']:,} of them by a signer named with <code>--key</code>; the rest are marked "
               "NOT trusted.")
    signers = _signers(rows)
    types = _types(rows)
    return (f"<p>{found['count']:,} in-toto attestation(s) in the range, each opened as a verifier opens it: "
            "its DSSE signature checked with the public key its transaction's attestation index carries, "
            f"filed under the subject digest, signer and predicate type it states.{trusted} Attestations "
            "never make a subject trusted: they only add what a policy can require.</p>"
            "<h3>Per signer</h3>"
            + _table(["signer (key id)", "attestations", "predicate types", "subjects", "first tx", "last tx"],
                     _signer_rows(signers), len(signers), "signers", max_rows)
            + "<h3>Per predicate type</h3>"
            + _table(["predicate type", "attestations", "signers", "by a trusted signer", "subjects"],
                     _type_rows(types), len(types), "predicate types", max_rows)
            + "<h3>Every attestation</h3>"
            + _table(["tx", "ledger time", "predicate type", "subject", "names", "signer"], _rows(rows),
                     len(rows), "attestations", max_rows))


def _signers(rows: Sequence[AttestationRow]) -> dict[str, list[AttestationRow]]:
    out: dict[str, list[AttestationRow]] = {}
    for r in rows:
        out.setdefault(r["signer"], []).append(r)
    return dict(sorted(out.items()))


def _types(rows: Sequence[AttestationRow]) -> dict[str, list[AttestationRow]]:
    out: dict[str, list[AttestationRow]] = {}
    for r in rows:
        out.setdefault(r["predicate_type"], []).append(r)
    return dict(sorted(out.items()))


def _named(values: Sequence[str]) -> str:
    """A few values, escaped, and how many more there are."""
    shown = list(values)[:_PER_CELL]
    more = f"<br>and {len(values) - len(shown):,} more" if len(values) > len(shown) else ""
    return "<br>".join(map(_code, shown)) + more


def _signer_rows(signers: dict[str, list[AttestationRow]]) -> Iterator[str]:
    for signer, rows in signers.items():
        types = Counter(r["predicate_type"] for r in rows)
        named = [f"{t} ({n:,})" for t, n in sorted(types.items())]
        yield (_signer_cell(signer, rows[0]["trusted_signer"]) + _n(len(rows)) + f"<td>{_named(named)}</td>"
               + _n(len({r["digest"] for r in rows})) + f"<td>{rows[0]['tx']}</td><td>{rows[-1]['tx']}</td>")


def _type_rows(types: dict[str, list[AttestationRow]]) -> Iterator[str]:
    for ptype, rows in types.items():
        judged = rows[0]["trusted_signer"] is not None
        trusted = _n(sum(r["trusted_signer"] is True for r in rows)) if judged else f"<td>{_opt(None)}</td>"
        yield (f"<td>{_code(ptype)}</td>{_n(len(rows))}{_n(len({r['signer'] for r in rows}))}{trusted}"
               f"{_n(len({r['digest'] for r in rows}))}")


def _rows(rows: Sequence[AttestationRow]) -> Iterator[str]:
    for r in rows:
        names = sorted({str(s.get("name", "")) for s in r["subjects"]} - {""})
        yield (f"<td>{r['tx']}</td><td>{_opt(r['time'])}</td><td>{_code(r['predicate_type'])}</td>"
               f"<td>{_code(r['digest'])}</td><td>{_named(names) if names else _opt(None)}</td>"
               + _signer_cell(r["signer"], r["trusted_signer"]))

