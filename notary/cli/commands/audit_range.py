"""The read `audit diff` and `audit report` share, so the page is exactly as proven as the table."""

from __future__ import annotations

import click

from notary import keys
from notary.audit import points
from notary.audit.diff import Diff, diff
from notary.cli.common import App
from notary.errors import IntegrityError, UsageError
from notary.ledger.base import Ledger, TreeHead


def proven_diff(app: App, from_point: str, to_point: str,
                key_paths: tuple[str, ...]) -> tuple[Ledger, TreeHead, Diff]:
    """Both points resolved against the verified head, then every entry between them read proven complete
    (Ledger.changes) and diffed; records by key_paths' signers marked trusted."""
    trusted = {keys.key_id(keys.load_public_key(p)) for p in key_paths} or None
    ledger = app.open_ledger()
    head = ledger.info().head
    from_tx, to_tx = points.resolve(ledger, from_point, head.tx), points.resolve(ledger, to_point, head.tx)
    if from_tx > to_tx:
        raise UsageError(f"--from (tx {from_tx}) is after --to (tx {to_tx})")
    return ledger, head, diff(ledger.changes(from_tx, to_tx), from_tx, to_tx, head, trusted)


def exit_on_findings(found: Diff) -> None:
    """After the output (which lists them): records that do not open are one line on stderr and exit 3."""
    if found.findings:
        first = found.findings[0]
        click.echo(f"notary: integrity: {len(found.findings)} record(s) in the range do not open; first: "
                   f"{first.key} at tx {first.tx}: {first.problem}", err=True)
        raise SystemExit(IntegrityError.exit_code)
