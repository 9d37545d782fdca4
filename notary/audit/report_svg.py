"""The timeline of `notary audit report`: records (and attestations) per signer over time, as inline SVG (pure:
data in, markup out).

The picture must stay readable and small whatever the range holds, so it is aggregated, never one mark per
record: time is cut into at most MAX_BUCKETS buckets of a round width (a second up to years), signers into at
most MAX_LANES lanes (the busiest; the rest share one "other signers" lane), and each lane shows, per bucket,
one bar per record type, each lane scaled to its own tallest bar (which it states, so a quiet signer's
record is as visible as a busy one's). 100,000 records draw the same few thousand elements as 100 would. Every bar carries
its exact count in a <title> (a browser's tooltip, no script), and the tables of the report hold the exact
figures; the picture is for seeing when and by whom, not for counting.

Signers and times come from the ledger, so every string is escaped here too (the caller escapes the rest).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from notary.audit.diff import Change

MAX_BUCKETS = 60
MAX_LANES = 12
TYPES = ("notarization", "revocation", "reinstatement")
COLOURS = {"notarization": "#2563eb", "revocation": "#dc2626", "reinstatement": "#16a34a"}
# attestations are not records (they never make a subject trusted), so not in TYPES: their bars are drawn,
# and their legend shown, only when the range holds some
ATTESTATION = "attestation"
ATTESTATION_COLOUR = "#7c3aed"
# round bucket widths in seconds: 1s .. 30m, 1h .. 12h, 1d, 2d, 1w, 2w, ~1 month, ~1 quarter, ~half a year, 1y
_WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600,
           86400, 2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 182 * 86400, 365 * 86400)
_WIDTH, _LABELS, _LANE, _TOP, _AXIS = 1100, 200, 46, 34, 46


def parse_time(text: str | None) -> float | None:
    """Seconds since the epoch of a ledger time (RFC 3339 with Z); None when there is none or it is not one."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.timestamp() if when.tzinfo else None


def bucket_width(span: float) -> int:
    """The smallest round width that cuts span seconds into at most MAX_BUCKETS buckets."""
    for width in _WIDTHS:
        if span / width < MAX_BUCKETS - 1:
            return width
    year = _WIDTHS[-1]
    return year * math.ceil(span / (year * (MAX_BUCKETS - 1)))


def _label(seconds: float, width: int, *, dated: bool = False) -> str:
    """A bucket's start, as precise as its width needs (dated: with the day, for the axis's first tick)."""
    when = datetime.fromtimestamp(seconds, timezone.utc)
    if width >= 86400:
        return when.strftime("%Y-%m-%d")
    if width >= 60:
        return when.strftime("%Y-%m-%d %H:%M")
    return when.strftime("%Y-%m-%d %H:%M:%S" if dated else "%H:%M:%S")


def _short(signer: str) -> str:
    return signer if len(signer) <= 23 else signer[:22] + "…"


def timeline(changes: Sequence[Change], esc: Callable[[str], str],
             attested: Sequence[tuple[str, str | None]] = ()) -> tuple[str, str]:
    """(the SVG, one sentence saying how it aggregates) for the records of a range, and its attestations
    (attested: (signer, ledger time) each), a bar kind of their own. esc: the report's escaper."""
    timed = [(c.signer, c.type, t) for c in changes if (t := parse_time(c.time)) is not None and c.type in COLOURS]
    timed += [(signer, ATTESTATION, t) for signer, when in attested if (t := parse_time(when)) is not None]
    untimed = len(changes) + len(attested) - len(timed)
    kinds = (*TYPES, ATTESTATION) if attested else TYPES
    colours = {**COLOURS, ATTESTATION: ATTESTATION_COLOUR}
    if not timed:
        svg = (f'<svg class="timeline" role="img" width="{_WIDTH}" height="60" viewBox="0 0 {_WIDTH} 60">'
               '<title>Timeline: no records</title><text x="20" y="35" class="muted">'
               "No records were written in this range.</text></svg>")
        return svg, f"{untimed:,} record(s) carry no ledger time and are not drawn." if untimed else ""
    first, last = min(t for *_, t in timed), max(t for *_, t in timed)
    width = bucket_width(last - first)
    start = math.floor(first / width) * width
    buckets = int((last - start) // width) + 1
    totals = Counter(s for s, _, _ in timed)
    ranked = sorted(totals, key=lambda s: (-totals[s], s))
    lanes = ranked[:MAX_LANES]
    others = len(ranked) - len(lanes)
    lane_of = {s: i for i, s in enumerate(lanes)}
    cells: Counter[tuple[int, int, str]] = Counter()
    per_lane: list[Counter[str]] = [Counter() for _ in range(len(lanes) + (1 if others else 0))]
    for signer, kind, t in timed:
        lane = lane_of.get(signer, len(lanes))
        cells[(lane, int((t - start) // width), kind)] += 1
        per_lane[lane][kind] += 1
    peaks = Counter[int]()
    for (lane, _, _), n in cells.items():
        peaks[lane] = max(peaks[lane], n)
    plot = _WIDTH - _LABELS - 80
    step = plot / buckets
    bar = min(max(step * 0.84 / len(kinds), 0.5), 28.0)
    pad = (step - bar * len(kinds)) / 2
    height = _TOP + _LANE * len(per_lane) + _AXIS
    out = [f'<svg class="timeline" role="img" width="{_WIDTH}" height="{height}" viewBox="0 0 {_WIDTH} {height}" '
           'font-size="12">',
           f"<title>Records per signer from {esc(_label(start, width, dated=True))}, in buckets of {esc(_span(width))}</title>"]
    x = _LABELS
    for kind in kinds:  # the legend
        out.append(f'<rect x="{x}" y="8" width="14" height="14" fill="{colours[kind]}"/>'
                   f'<text x="{x + 20}" y="20">{kind}s</text>')
        x += 150
    out.append(f'<text x="{_WIDTH - 8}" y="20" text-anchor="end" class="muted">each lane to its own scale</text>')
    for lane, counts in enumerate(per_lane):
        top = _TOP + lane * _LANE
        name = lanes[lane] if lane < len(lanes) else f"{others:,} other signer(s)"
        fill = "#f3f4f6" if lane % 2 == 0 else "#ffffff"
        out.append(f'<rect x="0" y="{top}" width="{_WIDTH}" height="{_LANE}" fill="{fill}"/>'
                   f'<text x="8" y="{top + 19}" class="mono"><title>{esc(name)}</title>{esc(_short(name))}</text>'
                   f'<text x="8" y="{top + 35}">'
                   + " · ".join(f'<tspan fill="{colours[k]}">{counts[k]:,}</tspan>' for k in kinds) + "</text>"
                   f'<text x="{_WIDTH - 8}" y="{top + _LANE - 6}" text-anchor="end" class="muted">'
                   f"max {peaks[lane]:,}</text>")
    for (lane, bucket, kind), n in sorted(cells.items()):
        top = _TOP + lane * _LANE
        h = max(2.0, (_LANE - 8) * n / peaks[lane])
        bx = _LABELS + bucket * step + pad + kinds.index(kind) * bar
        when = _label(start + bucket * width, width)
        out.append(f'<rect x="{bx:.1f}" y="{top + _LANE - 4 - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                   f'fill="{colours[kind]}"><title>{esc(_short(lanes[lane]) if lane < len(lanes) else "others")}'
                   f" {esc(when)} (+{esc(_span(width))}): {n:,} {kind}(s)</title></rect>")
    axis = _TOP + _LANE * len(per_lane)
    out.append(f'<line x1="{_LABELS}" y1="{axis}" x2="{_LABELS + plot}" y2="{axis}" stroke="#6b7280"/>')
    every = max(1, math.ceil(buckets / 6))
    for bucket in range(0, buckets + 1, every):
        tx = _LABELS + bucket * step
        anchor = "start" if bucket == 0 else ("end" if tx > _LABELS + plot - 60 else "middle")
        out.append(f'<line x1="{tx:.1f}" y1="{axis}" x2="{tx:.1f}" y2="{axis + 5}" stroke="#6b7280"/>'
                   f'<text x="{tx:.1f}" y="{axis + 20}" text-anchor="{anchor}" class="muted">'
                   f"{esc(_label(start + bucket * width, width, dated=bucket == 0))}</text>")
    out.append(f'<text x="{_LABELS}" y="{axis + 38}" class="muted">ledger time (UTC), buckets of '
               f"{esc(_span(width))}</text></svg>")
    note = (f"{len(timed):,} record(s) in {buckets} bucket(s) of {_span(width)} and {len(per_lane)} lane(s)"
            + (f" (the {MAX_LANES} busiest signers, then {others:,} more in one lane)" if others else "")
            + (f"; {untimed:,} record(s) carry no ledger time and are not drawn" if untimed else "") + ".")
    return "\n".join(out), note


def _span(seconds: int) -> str:
    for unit, size in (("year", 365 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
