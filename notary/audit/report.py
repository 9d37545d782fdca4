"""`notary audit report`: the proven diff of `notary audit diff`, as one HTML page that people read (pure).
Its attestations (per signer, per predicate type, listed) are notary.audit.report_attest's section.

The page says no more than the diff proved. It is built from the very Diff `audit diff` prints (the same
Ledger.changes over the same resolved points, notary/cli/commands/audit_report.py), the verified head, and
the heads of the two points, each proven a prefix of that head. Nothing here reads, writes or prints.

Self-contained on purpose: an auditor archives the file and opens it years later, offline, in any browser.
Inline CSS and inline SVG only: no script, no external URL of any kind. Its Content-Security-Policy
(default-src 'none') says so to the browser as well, so even a string that got past escaping could neither
run nor fetch anything.

Every string from the ledger is attacker-controlled (a reason, a subject name, a CI field, the ledger key of
a finding): each goes through `text`, which escapes it, shows control and bidi-override characters as \\u
escapes instead of obeying them, and cuts it at MAX_TEXT characters. Tables stop at max_rows rows and say
how many were left out; the timeline is aggregated (report_svg). The page is bounded for any range.
"""

from __future__ import annotations

import html
import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from notary.audit.diff import Change, Diff
from notary.audit.report_svg import COLOURS, TYPES, timeline
from notary.ledger.base import TreeHead, rfc3339

MAX_ROWS = 10_000
MAX_TEXT = 1_000
_PER_CELL = 3  # subjects named per CI job (the rest counted)
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb"
                        "\ud800-\udfff]")
_COMPLETE = {
    "file": "every leaf between the two points' tree sizes was read by contiguous index and proven included in "
            "the verified head with its transaction inside the range, and the leaves just before and after "
            "the range were proven to belong to transactions outside it (RFC 9162; docs/audit.md).",
    "immudb": "the verified mirror's replay of every transaction, re-hashed and chained to the trusted state, "
              "named every entry of the range, and each value was read with immudb's verified read as of its "
              "transaction and compared with the replay (docs/immudb.md).",
}
_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#111827;
margin:0 auto;max-width:1140px;padding:24px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:2px solid #e5e7eb}
h3{font-size:16px;margin:16px 0 4px}
code,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:13px;overflow-wrap:anywhere}
.muted{color:#6b7280;fill:#6b7280}.lead{font-size:17px;margin:0 0 12px}
.verdict{padding:12px 16px;border-radius:6px;font-weight:600;margin:12px 0}
.ok{background:#dcfce7;border:2px solid #16a34a}.bad{background:#fee2e2;border:2px solid #dc2626}
table{border-collapse:collapse;margin:6px 0;width:100%}th,td{text-align:left;vertical-align:top;
padding:4px 8px;border-bottom:1px solid #e5e7eb}th{background:#f9fafb}
td.n{text-align:right;font-variant-numeric:tabular-nums}.counts{width:auto}
.cut{color:#92400e;background:#fef3c7;padding:6px 10px}.untrusted{color:#b91c1c;font-weight:600}
svg.timeline{max-width:100%;height:auto;border:1px solid #e5e7eb}
@media print{body{max-width:none}h2{break-after:avoid}tr{break-inside:avoid}}
"""


@dataclass(frozen=True)
class PointHead:
    """One end of the range as a tree head, and how it was proven a prefix of the verified head."""

    point: str  # as the auditor gave it
    tx: int
    tree_size: int | None
    root_hash: str | None  # hex; None where the backend's state is not an RFC 9162 tree (immudb)
    time: str | None
    proof: str

    def to_json(self) -> dict[str, object]:
        return {"point": self.point, "tx": self.tx, "tree_size": self.tree_size, "root_hash": self.root_hash,
                "time": self.time, "proof": self.proof}


@dataclass(frozen=True)
class About:
    """Where the page came from: context for the reader, not evidence."""

    ledger_url: str
    backend: str  # LedgerInfo.backend: file | immudb
    generated_at: str
    version: str


@dataclass
class _Tally:
    counts: Counter[str] = field(default_factory=Counter)
    subjects: set[str] = field(default_factory=set)
    signers: set[str] = field(default_factory=set)
    first: int = 0
    last: int = 0

    def add(self, c: Change) -> None:
        self.counts[c.type] += 1
        self.subjects.add(c.digest)
        self.signers.add(c.signer)
        self.first, self.last = self.first or c.tx, c.tx


def text(value: object) -> str:
    """A value of any type as HTML text: cut at MAX_TEXT, invisible and direction-changing characters shown as \\u
    escapes (a reason must not reorder what the auditor reads), then escaped, quotes included."""
    s = str(value)
    if len(s) > MAX_TEXT:
        s = f"{s[:MAX_TEXT]}… ({len(s) - MAX_TEXT:,} more characters)"
    return html.escape(_INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", s), quote=True)


def _code(value: object) -> str:
    return f"<code>{text(value)}</code>"


def _opt(value: object) -> str:
    return '<span class="muted">—</span>' if value is None or value == "" else text(value)


def _n(value: int) -> str:
    return f'<td class="n">{value:,}</td>'


def _table(headers: Sequence[str], rows: Iterable[str], total: int, what: str, max_rows: int) -> str:
    """Up to max_rows rows (each already `<td>` cells), and a line saying how many more there are."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join(f"<tr>{r}</tr>" for r in itertools.islice(rows, max_rows))
    out = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if total > max_rows:
        out += (f'<p class="cut">{total - max_rows:,} more {what} left out: this report shows at most '
                f"{max_rows:,} rows per table; <code>notary audit diff --json</code> over the same points "
                "lists every one.</p>")
    return out


def _signer_cell(signer: str, trusted: bool | None) -> str:
    mark = ' <span class="untrusted">NOT trusted</span>' if trusted is False else (
        " (trusted)" if trusted else "")
    return f"<td>{_code(signer)}{mark}</td>"


def render(found: Diff, head: TreeHead, start: PointHead, end: PointHead, about: About, *,
           max_rows: int = MAX_ROWS) -> str:
    """The whole page for the proven diff `found` between the points start and end of a ledger at head."""
    counts = Counter(c.type for c in found.changes)
    signers: dict[str, _Tally] = {}
    jobs: dict[str, _Tally] = {}
    trusted: dict[str, bool | None] = {}
    for c in found.changes:
        signers.setdefault(c.signer, _Tally()).add(c)
        trusted[c.signer] = c.trusted
        if c.job:
            jobs.setdefault(c.job, _Tally()).add(c)
    revoked = [c for c in found.changes if c.type != "notarization"]
    from notary.audit import report_attest  # it builds on this module's cells and tables

    svg, svg_note = timeline(found.changes, text, [(a["signer"], a["time"]) for a in found.attestations])
    title = f"notary audit report: {head.ledger_id}, after tx {found.from_tx} up to tx {found.to_tx}"
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{text(title)}</title><style>{_CSS}</style></head><body>",
        "<h1>Audit report</h1>",
        f'<p class="lead">Ledger {_code(head.ledger_id)}: every record written after transaction {found.from_tx} '
        f"({_code(start.point)}) up to and including transaction {found.to_tx} ({_code(end.point)}).</p>",
        f'<p class="muted">{text(about.ledger_url)} ({text(about.backend)} ledger) · generated '
        f"{text(about.generated_at)} by notary {text(about.version)}</p>",
        _verdict(found),
        "<h2>Summary</h2>", _summary(found, counts, len(signers), len(jobs)),
        "<h2>Timeline</h2>", f'<figure style="margin:0">{svg}<figcaption class="muted">{text(svg_note)}'
        "</figcaption></figure>",
        "<h2>The two heads</h2>", _heads(start, end, head),
        "<h2>Proof status</h2>", _status(found, head, about),
        "<h2>Signers</h2>",
        _table(["signer (key id)", "notarizations", "revocations", "reinstatements", "subjects", "first tx",
                "last tx"], _signer_rows(signers, trusted), len(signers), "signers", max_rows)
        if signers else "<p>No signer wrote a record in this range.</p>",
        "<h2>CI jobs</h2>",
        _table(["job (system/id)", "records", "subjects written", "signers", "revocations", "first tx", "last tx"],
               _job_rows(jobs), len(jobs), "CI jobs", max_rows)
        if jobs else "<p>No record in this range names a CI job.</p>",
        "<h2>Revoked subjects and their reasons</h2>",
        _table(["tx", "ledger time", "record", "subject", "name", "signer", "reason"], _revoked_rows(revoked),
               len(revoked), "revocations and reinstatements", max_rows)
        if revoked else "<p>Nothing was revoked or reinstated in this range.</p>",
        "<h2>Attestations</h2>", report_attest.section(found.attestations, max_rows),
        "<h2>What could not be verified</h2>", _findings(found, max_rows),
        f'<p class="muted">The same proven read as <code>notary audit diff --from {text(start.point)} --to '
        f"{text(end.point)}</code>; this page is exactly as trustworthy as that command's answer.</p>",
        "</body></html>\n",
    ]
    return "\n".join(parts)


def _verdict(found: Diff) -> str:
    if found.findings:
        return (f'<p class="verdict bad">NOT VERIFIED: {len(found.findings):,} record(s) in this range do not '
                'open (see "What could not be verified"); the rest of the range is proven complete.</p>')
    return (f'<p class="verdict ok">VERIFIED: the range is proven complete and all {len(found.changes):,} '
            "record(s) in it opened with valid signatures.</p>")


def _summary(found: Diff, counts: Counter[str], signers: int, jobs: int) -> str:
    rows = [("records", len(found.changes)), *((f"{t}s", counts[t]) for t in TYPES), ("signers", signers),
            ("CI jobs", jobs), ("subjects", len({c.digest for c in found.changes})),
            ("attestations", len(found.attestations)),
            ("ledger entries read", found.entries), ("index entries", sum(found.index_entries.values())),
            ("other keys", found.other_entries), ("findings", len(found.findings))]
    dot = {f"{t}s": f'<span style="color:{COLOURS[t]}">■</span> ' for t in TYPES}
    body = "".join(f"<tr><th>{dot.get(name, '')}{name}</th>{_n(n)}</tr>" for name, n in rows)
    return f'<table class="counts">{body}</table>'


def _heads(start: PointHead, end: PointHead, head: TreeHead) -> str:
    now = PointHead("verified head", head.tx, head.tree_size, head.root.hex(), rfc3339(head.time),
                    "signed by the ledger key and proven consistent with this client's trusted state")
    cols = (start, end, now)
    rows: list[tuple[str, Callable[[PointHead], str]]] = [("point", lambda p: _code(p.point)), ("transaction", lambda p: text(p.tx)),
            ("tree size", lambda p: _opt(p.tree_size)), ("root hash", lambda p: _code(p.root_hash)
                                                          if p.root_hash else _opt(None)),
            ("ledger time", lambda p: _opt(p.time)), ("proven by", lambda p: text(p.proof))]
    body = "".join(f"<tr><th>{name}</th>" + "".join(f"<td>{cell(p)}</td>" for p in cols) + "</tr>"
                   for name, cell in rows)
    return (f"<table><thead><tr><th></th><th>from</th><th>to</th><th>verified head</th></tr></thead>"
            f"<tbody>{body}</tbody></table><p>Both ends are prefixes of the verified head (tx {head.tx}, tree "
            f"size {head.tree_size}), each proven consistent with it as the row above says, and the verified "
            "head was proven consistent with every head this client trusted before (its trusted state only "
            "moves forward): neither end can have been rewritten since this client last looked.</p>")


def _status(found: Diff, head: TreeHead, about: About) -> str:
    marked = sorted({c.signer for c in found.changes if c.trusted})
    items = [
        f"<b>Range complete</b>: {text(_COMPLETE.get(about.backend, 'proven complete by the backend.'))}",
        f"<b>Signatures</b>: {len(found.changes):,} record(s) opened as a verifier opens them: the DSSE "
        "signature checked against the key the record names, its digest and signer matching the ledger key "
        f"it is filed under. {len(found.attestations):,} attestation(s) opened the same way, each with the "
        f"public key its transaction's attestation index carries. {len(found.findings):,} did not open.",
        f"<b>Head</b>: tx {head.tx}, tree size {head.tree_size}, signed by the ledger's key; the ledger id "
        f"{_code(head.ledger_id)} names that key.",
        f"<b>Other entries</b>: {sum(found.index_entries.values()):,} index entries (finders: job, artifact, "
        f"signer set) and {found.other_entries:,} keys notary does not write, counted, not shown.",
        ("<b>Trusted signers</b>: marked with <code>--key</code>: " + ", ".join(_code(s) for s in marked)
         + "; records by any other signer are marked NOT trusted (none is left out)."
         if any(c.trusted is not None for c in found.changes) else
         "<b>Trusted signers</b>: none named (<code>--key</code>): every signer is listed, none is judged."),
    ]
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _signer_rows(signers: dict[str, _Tally], trusted: dict[str, bool | None]) -> Iterator[str]:
    for signer in sorted(signers):
        t = signers[signer]
        yield (_signer_cell(signer, trusted.get(signer)) + "".join(_n(t.counts[k]) for k in TYPES)
               + _n(len(t.subjects)) + f"<td>{t.first}</td><td>{t.last}</td>")


def _job_rows(jobs: dict[str, _Tally]) -> Iterator[str]:
    for job in sorted(jobs):
        t = jobs[job]
        shown = sorted(t.subjects)[:_PER_CELL]
        more = f"<br>and {len(t.subjects) - len(shown):,} more" if len(t.subjects) > len(shown) else ""
        yield (f"<td>{_code(job)}</td>{_n(sum(t.counts.values()))}<td>{'<br>'.join(map(_code, shown))}{more}</td>"
               f"{_n(len(t.signers))}{_n(t.counts['revocation'])}<td>{t.first}</td><td>{t.last}</td>")


def _revoked_rows(revoked: list[Change]) -> Iterator[str]:
    for c in revoked:
        yield (f"<td>{c.tx}</td><td>{_opt(c.time)}</td><td>{text(c.type)}</td><td>{_code(c.digest)}</td>"
               f"<td>{_opt(c.name)}</td>{_signer_cell(c.signer, c.trusted)}<td>{_opt(c.reason)}</td>")


def _findings(found: Diff, max_rows: int) -> str:
    if not found.findings:
        return ("<p>Nothing: every record in the range opened, and the range is proven complete.</p>")
    rows = (f"<td>{f.tx}</td><td>{_code(f.key)}</td><td>{text(f.problem)}</td>" for f in found.findings)
    return ("<p>These entries sit in the proven range but do not open as notary records (altered, filed "
            "under another signer's key, or not a notary record at all): whatever they claim is not "
            "shown above.</p>" + _table(["tx", "ledger key", "problem"], rows, len(found.findings), "findings",
                                        max_rows))
