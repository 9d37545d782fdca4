"""`notary audit recheck`: what a gate admitted, decided again with today's policy as of any point."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import click

from notary import records
from notary.audit import points
from notary.audit.recheck import Recheck, check_heads, recheck
from notary.cli.common import App, pass_app
from notary.errors import EXIT_INTEGRITY, EXIT_REFUSED, EXIT_UNAVAILABLE, UsageError
from notary.ledger.base import rfc3339

DEFAULT_MAX_LINES = 1_000_000


@click.command("recheck", short_help="Decide again, with a policy, every image the gate's decision log admitted.")
@click.option("--policy", "policy_file", metavar="FILE",
              help="A notary.toml whose [policy] is the rule set to apply (trust rules, max_age, name binding, "
              "break-glass); key paths are relative to it. Default: the [policy] of --config.")
@click.option("--at", "at_point", default="latest", show_default=True, metavar="POINT",
              help=f"Decide as of this point: {points.HELP}. Its time is 'now' for max_age and break-glass.")
@click.option("--log", "log_files", multiple=True, metavar="FILE",
              help="Decision log(s) to read, with their rotated files (FILE.1, FILE.2, ...). Default: the "
              "decision_log of the --config policy, else of --policy.")
@click.option("--since", metavar="TIME", help="Only decisions logged at or after this RFC 3339 time.")
@click.option("--max-lines", type=click.IntRange(1, 100_000_000), default=DEFAULT_MAX_LINES, show_default=True,
              help="Refuse a log longer than this many lines (narrow it with --since).")
@pass_app
def recheck_command(app: App, policy_file: str | None, at_point: str, log_files: tuple[str, ...],
                    since: str | None, max_lines: int) -> None:
    """Decide again every image the gate admitted (its decision log) with a policy, as of a POINT.

    Each admitted image (deduplicated: an image started a thousand times is checked once) goes through the
    gate's own decision against the ledger cut at POINT: every proven history as it stood then, POINT's time
    as 'now'. The answer lists what would now be refused, and why (revoked since, key no longer trusted,
    too old, name not bound). Each ledger head a logged decision names is also held against the verified
    head: on the embedded ledger it must be a prefix of it, or the gate was shown another history.

    Exit codes: 0 all would still be admitted, 1 some would now be refused, 2 bad input, 3 a proof failed or
    a logged head is not a prefix of the ledger's (a split view), 4 the ledger cannot be reached.

    \b
    Examples:
      notary audit recheck --policy notary-2027.toml
      notary audit recheck --policy strict.toml --at 2026-11-01T00:00:00Z --since 2026-10-01T00:00:00Z
      notary --json audit recheck --log /var/log/notary/decisions.jsonl
    """
    from notary.cli.commands.audit_report import _Rfc9162, point_head
    from notary.config import load_config
    from notary.gate.decision_log import read_decisions
    from notary.gate.policy import load_policy

    policy = load_policy(load_config(policy_file, app.env)) if policy_file else load_policy(app.config)
    files = _log_files(app, log_files, policy.decision_log)
    read = read_decisions(files, max_lines=max_lines, since=records.parse_time(since) if since else None)
    ledger = app.open_ledger()
    head = ledger.info().head
    tx = points.resolve(ledger, at_point, head.tx)
    text = at_point.strip()
    if text.lower() in ("latest", "now", "head"):
        when = datetime.now(timezone.utc)  # the gate's today
    elif text.lstrip("+-").isdigit() or text.lower() in ("genesis", "start", "beginning"):
        shown = point_head(ledger, at_point, tx, head).time if tx else None  # the transaction's proven time
        when = records.parse_time(shown) if shown else datetime.now(timezone.utc)
    else:
        when = records.parse_time(text)
    result = recheck(ledger, policy, read.decisions, as_of_tx=tx, as_of_time=when)
    check_heads(result, read.decisions, head, ledger.consistency_proof if isinstance(ledger, _Rfc9162) else None)
    data = {
        "as_of_tx": tx, "as_of_time": rfc3339(when), "point": at_point, "head": head.to_json(),
        "policy": policy.describe(), "logs": [str(f) for f in files], "lines": read.lines,
        "decisions": len(read.decisions), "admitted": len(result.admitted),
        "still_admitted": len(result.admitted) - len(result.refused),
        "now_refused": [a.to_json() for a in result.refused],
        "unreadable": read.unreadable[:100], "unreadable_count": len(read.unreadable),
        "heads": {"checked": result.heads_checked, "not_checked": result.heads_unchecked,
                  "findings": [f.to_json() for f in result.head_findings]},
    }
    app.emit(data, lambda: _human(result, read.lines, files, read.unreadable), schema="audit-recheck")
    _exit(result)


def _log_files(app: App, given: tuple[str, ...], policy_log: str | None) -> list[Path]:
    from notary.gate.decision_log import rotated_files
    from notary.gate.policy import load_policy

    if given:
        chosen = [app.config.resolve_path(g) for g in given]
    else:
        own = None
        if app.config.section("policy"):
            own = load_policy(app.config).decision_log
        if not (own or policy_log):
            raise UsageError("no decision log to read", hint="pass --log FILE, or set [policy] decision_log")
        chosen = [str(own or policy_log)]
    files = [f for path in chosen for f in rotated_files(path)]
    if not files:
        raise UsageError(f"no decision log at {', '.join(chosen)}",
                         hint="the gate writes it on its first decision; gate check only with --log")
    return files


def _human(result: Recheck, lines: int, files: list[Path], unreadable: list[str]) -> str:
    out = [f"recheck as of tx {result.as_of_tx} ({rfc3339(result.as_of_time)}): {len(result.admitted)} admitted "
           f"image(s) in {lines} logged decision(s) ({len(files)} file(s))"]
    refused = result.refused
    if refused:
        out.append(f"would now be refused ({len(refused)}):")
        for a in refused:
            assert a.now is not None
            name = a.image or "(unnamed)"
            out.append(f"  {name} {a.digests[0]}: admitted {a.times} time(s), last {a.last.time} "
                       f"({a.last.front_end}) -> {a.now.reason}")
    out.append(f"still admitted: {len(result.admitted) - len(refused)}")
    if result.head_findings:
        out.append(f"logged heads that do not hold ({len(result.head_findings)}):")
        out.extend(f"  {f.where}: {f.problem}" for f in result.head_findings[:20])
    out.append(f"logged heads: {result.heads_checked} proven prefixes of the verified head"
               + (f", {result.heads_unchecked} not checked (no RFC 9162 tree on this backend)"
                  if result.heads_unchecked else ""))
    if unreadable:
        out.append(f"unreadable lines: {len(unreadable)} (first: {unreadable[0]})")
    return "\n".join(out)


def _exit(result: Recheck) -> None:
    codes = {a.now.exit_code for a in result.refused if a.now is not None}
    if result.head_findings or EXIT_INTEGRITY in codes:
        first = result.head_findings[0].problem if result.head_findings else "a proof failed while rechecking"
        click.echo(f"notary: integrity: {first}", err=True)
        raise SystemExit(EXIT_INTEGRITY)
    if EXIT_UNAVAILABLE in codes:
        raise SystemExit(EXIT_UNAVAILABLE)
    if result.refused:
        click.echo(f"notary: {len(result.refused)} admitted image(s) would now be refused", err=True)
        raise SystemExit(EXIT_REFUSED)
