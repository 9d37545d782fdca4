"""`notary audit diff`: every record written between two points of a ledger's history, proven complete."""

from __future__ import annotations

import click

from notary.audit import points
from notary.audit.diff import Diff
from notary.cli.commands.audit_follow import follow as audit_follow
from notary.cli.commands.audit_range import exit_on_findings, proven_diff
from notary.cli.commands.audit_recheck import recheck_command as audit_recheck
from notary.cli.commands.audit_report import report as audit_report
from notary.cli.commands.checkpoint import check_checkpoint
from notary.cli.common import App, pass_app
from notary.ledger.base import TreeHead


@click.group("audit")
def audit() -> None:
    """Auditors' questions about the past, answered with proof that nothing was left out.

    \b
    Examples:
      notary audit diff --from 2026-03-01T00:00:00Z --to latest
      notary audit report --from 120 -o audit.html
      notary audit follow --once
    """


@audit.command("diff")
@click.option("--from", "from_point", default="0", show_default=True, metavar="POINT",
              help=f"Changes after this point: {points.HELP}.")
@click.option("--to", "to_point", default="latest", show_default=True, metavar="POINT",
              help="Changes up to and including this point.")
@click.option("--key", "key_paths", multiple=True, metavar="PUBLIC_KEY",
              help="Mark records by these signers trusted (all records are listed either way).")
@pass_app
def diff_command(app: App, from_point: str, to_point: str, key_paths: tuple[str, ...]) -> None:
    """Every notarization, revocation and reinstatement written after --from up to --to, per signer and CI job.

    The range is proven complete: on the embedded ledger every leaf between the two points, contiguous and
    included in the verified head, with the leaves around it proven outside it; on immudb the verified
    mirror's replay of every transaction. Each record's signature is checked. A record that does not open
    is listed as a finding (`findings` in --json) and the command exits 3.

    \b
    Examples:
      notary audit diff --from 2026-03-01T00:00:00Z --to 2026-04-01T00:00:00Z
      notary audit diff --from 120 --json              # everything after tx 120, for machines
    """
    _, head, found = proven_diff(app, from_point, to_point, key_paths)
    data = found.to_json()
    data["from"], data["to"] = {"tx": found.from_tx, "point": from_point}, {"tx": found.to_tx, "point": to_point}
    app.emit(data, lambda: _human(found, head, app.ledger_url or "", from_point, to_point), schema="audit-diff")
    exit_on_findings(found)  # the diff (with its findings) is the output; the error is one line on stderr


def _human(found: Diff, head: TreeHead, url: str, from_point: str, to_point: str) -> str:
    lines = [f"{url}: after tx {found.from_tx} ({from_point}) up to tx {found.to_tx} ({to_point}): "
             f"{found.entries} entries, proven complete"]
    if found.changes:
        lines.append(f"  {'tx':>6}  {'time':<27} {'type':<13} {'signer':<20} {'digest':<20} job / reason")
    for c in found.changes:
        trust = {True: "", False: " [NOT trusted]", None: ""}[c.trusted]
        detail = f"reason: {c.reason}" if c.reason else (c.job or "")
        lines.append(f"  {c.tx:>6}  {c.time or '':<27} {c.type:<13} {c.signer[:19]}… {c.digest[:19]}… "
                     f"{detail}{trust}")
    if not found.changes:
        lines.append("  no records were written in this range")
    signers = found.by_signer()
    if signers:
        lines.append("by signer:")
        lines.extend(f"  {s}  " + ", ".join(f"{n} {t}" for t, n in counts.items()) for s, counts in signers.items())
    jobs = found.by_job()
    if jobs:
        lines.append("by CI job:")
        lines.extend(f"  {job}: {len(ds)} subject(s)" for job, ds in jobs.items())
    for a in found.attestations:  # in-toto attestations (docs/records.md, "Attestations")
        trust = {True: "", False: " [NOT trusted]", None: ""}[a["trusted_signer"]]
        lines.append(f"  {a['tx']:>6}  {a['time'] or '':<27} {'attestation':<13} {a['signer'][:19]}… "
                     f"{a['digest'][:19]}… {a['predicate_type']}{trust}")
    index = ", ".join(f"{k} {n}" for k, n in sorted(found.index_entries.items())) or "none"
    lines.append(f"index entries: {index}; other keys: {found.other_entries}")
    for f in found.findings:
        lines.append(f"FINDING tx {f.tx} {f.key}: {f.problem}")
    lines.append(f"ledger head: size {head.tree_size}, tx {head.tx}")
    return "\n".join(lines)



audit.add_command(check_checkpoint)  # `notary audit checkpoint FILE`
audit.add_command(audit_follow)  # `notary audit follow`
audit.add_command(audit_report)  # `notary audit report -o FILE`
audit.add_command(audit_recheck)  # `notary audit recheck --policy FILE`
