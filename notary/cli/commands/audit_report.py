"""`notary audit report`: the proven diff of `notary audit diff`, written as one self-contained HTML page.

The page is only as trusted as `audit diff`, so it is read exactly as `audit diff` reads: the points resolved
by notary.audit.points against the verified head, Ledger.changes over them (the range proven complete), and
notary.audit.diff over those entries, the same function with the same arguments. The two ends' heads are read
through Ledger.changes too (the last proven leaf of each end's transaction gives its tree size and time) and,
on an RFC 9162 ledger, proven prefixes of the verified head by a consistency proof. Exit codes are diff's:
2 a bad point, 3 a proof that fails (nothing is written) or a record that does not open (the page is written,
it lists them, then exit 3), 4 the ledger cannot be reached.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import click

from notary import __version__, merkle, records
from notary.audit import points
from notary.audit.diff import Diff
from notary.cli.commands.audit_range import exit_on_findings, proven_diff
from notary.cli.common import App, pass_app
from notary.errors import InputError, IntegrityError
from notary.fsio import atomic_write
from notary.ledger.base import Entry, Ledger, TreeHead, rfc3339

if TYPE_CHECKING:
    from notary.audit.report import PointHead
    from notary.audit.report_attest import AttestationSummary


@runtime_checkable
class _Rfc9162(Protocol):
    """A ledger whose log is an RFC 9162 tree with its proof material (the embedded ledger's raw accessors)."""

    def tree_root(self, size: int) -> bytes: ...

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]: ...


def point_head(ledger: Ledger, point: str, tx: int, head: TreeHead) -> PointHead:
    """One end of the range as a head: its transaction's entries read proven complete (Ledger.changes), the
    last one's leaf index + 1 its tree size (embedded), and that prefix's root proven by an RFC 9162
    consistency proof to the verified head. immudb's state is its Alh chain, not such a tree: there the
    mirror's verified replay, chained to the head, is what makes the point a prefix, and no root is shown."""
    from notary.audit.report import PointHead

    rfc9162 = isinstance(ledger, _Rfc9162)
    if tx == 0:
        return PointHead(point, 0, 0, merkle.EMPTY_ROOT.hex() if rfc9162 else None, None,
                         "the empty ledger, before the first transaction")
    last: Entry | None = None
    for entry in ledger.changes(tx - 1, tx):  # consumed to the end: the snapshot's proofs all run
        last = entry
    time = rfc3339(last.time) if last else None
    leaf = last.proof.get("leaf_index") if last else None
    if not isinstance(ledger, _Rfc9162):
        return PointHead(point, tx, tx if head.tree_size == head.tx else None, None, time,
                         "a transaction of the verified mirror's replay, chained to the verified head")
    if type(leaf) is not int:
        raise IntegrityError(f"transaction {tx} has no proven leaf: its tree size cannot be shown")
    size = leaf + 1
    root = ledger.tree_root(size)  # raw material, proven just below
    merkle.verify_consistency(size, head.tree_size, root, head.root, ledger.consistency_proof(size, head.tree_size))
    how = ("the verified head itself: the same tree size and root" if size == head.tree_size else
           f"an RFC 9162 consistency proof from tree size {size} to the verified head's {head.tree_size}, checked")
    return PointHead(point, tx, size, root.hex(), time, how)


@click.command("report")
@click.option("--from", "from_point", default="0", show_default=True, metavar="POINT",
              help=f"Records after this point: {points.HELP}.")
@click.option("--to", "to_point", default="latest", show_default=True, metavar="POINT",
              help="Records up to and including this point.")
@click.option("--key", "key_paths", multiple=True, metavar="PUBLIC_KEY",
              help="Mark records by these signers trusted (all records are listed either way).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The HTML file to write (replaced atomically, only once every proof has passed).")
@pass_app
def report(app: App, from_point: str, to_point: str, key_paths: tuple[str, ...], output: str) -> None:
    """The proven `audit diff` as one HTML page to read and archive: a timeline per signer, the CI jobs, the
    revoked subjects and their reasons, the attestations (per signer, per predicate type), the two heads and
    the proofs, and what could not be verified.

    Self-contained: inline CSS and SVG, no script, no external URL; opens offline in any browser. Read
    exactly as `notary audit diff` reads, so it is exactly as trusted: a failed proof is exit 3 and no file
    is written; records that do not open are listed under "What could not be verified" and exit 3.

    \b
    Examples:
      notary audit report --from 2026-03-01T00:00:00Z --to 2026-04-01T00:00:00Z -o march.html
    """
    from notary.audit import report as pages
    from notary.audit.report_attest import summary

    ledger, head, found = proven_diff(app, from_point, to_point, key_paths)
    start, end = point_head(ledger, from_point, found.from_tx, head), point_head(ledger, to_point, found.to_tx, head)
    info = ledger.info()
    about = pages.About(app.ledger_url or info.url, info.backend, records.format_time(records.utc_now()),
                        __version__)
    data = pages.render(found, head, start, end, about).encode("utf-8", "replace")
    try:
        atomic_write(Path(output), data, 0o644)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror or exc}") from exc
    counts = found.counts()
    attested = summary(found.attestations)
    app.emit({"path": output, "bytes": len(data), "from": start.to_json(), "to": end.to_json(),
              "head": head.to_json(), "counts": counts, "findings": [f.to_json() for f in found.findings],
              "attestations": attested}, lambda: _human(found, counts, attested, output, len(data)),
             schema="audit-report")
    exit_on_findings(found)  # as `audit diff`: the page (with the findings) is the output


def _human(found: Diff, counts: dict[str, int], attested: AttestationSummary, output: str, size: int) -> str:
    """The one line a person reads: the records counted, then the attestations per predicate type (with how
    many are by a signer named with --key, when any was)."""
    records_part = ", ".join(f"{n} {t}" for t, n in counts.items()) or "none"
    line = (f"audit report of {len(found.changes)} record(s) after tx {found.from_tx} up to tx {found.to_tx}, "
            f"proven complete ({records_part}): {output} ({size:,} bytes)")
    if attested["count"]:
        types = ", ".join(f"{n} {t}" for t, n in attested["by_predicate_type"].items())
        trusted = "" if attested["trusted"] is None else f", {attested['trusted']} by a trusted signer"
        line += f"\n{attested['count']} attestation(s) ({types}{trusted})"
        line += "".join(f"\n  signer {s}: " + ", ".join(f"{n} {t}" for t, n in by.items())
                        for s, by in attested["by_signer"].items())
        rows = attested["list"]
        line += "".join(f"\n  tx {a['tx']:>6}  {a['time']}  {a['predicate_type']}  {a['digest']}  signer "
                        f"{a['signer'][:19]}…{_TRUST[a['trusted_signer']]}" for a in rows[:_TEXT_ROWS])
        if len(rows) > _TEXT_ROWS:
            line += f"\n  and {len(rows) - _TEXT_ROWS:,} more (the page and --json list every one)"
    return line


_TEXT_ROWS = 20  # attestations listed in the one-line summary (the page and --json list them all)
_TRUST = {True: " [trusted]", False: " [NOT trusted]", None: ""}
