"""`notary audit follow`: a monitor that verifies every new transaction and says so in JSON lines."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

import click

from notary import keys
from notary.audit import follow as monitor
from notary.audit import points
from notary.cli.common import App, pass_app
from notary.errors import IntegrityError, LedgerUnavailableError

SCHEMA = "notary.audit-follow/v1"  # every line carries it: a collector can tell the stream from noise


def _line(event: Mapping[str, object]) -> None:
    click.echo(json.dumps({"schema": SCHEMA, **event}, sort_keys=True, separators=(",", ":")))


@click.command("follow")
@click.option("--state", "state", metavar="DIR",
              help="The monitor's own trusted state and cursor (default: the state directory's monitor/).")
@click.option("--from", "from_point", default="0", show_default=True, metavar="POINT",
              help="Where a first run starts (later runs go on from the cursor).")
@click.option("--once", is_flag=True, help="One round, then exit (for cron and timers).")
@click.option("--interval", type=click.FloatRange(min=0.1), default=10.0, show_default=True, metavar="SECONDS")
@click.option("--key", "key_paths", multiple=True, metavar="PUBLIC_KEY", help="Mark these signers trusted.")
@pass_app
def follow(app: App, state: str | None, from_point: str, once: bool, interval: float,
           key_paths: tuple[str, ...]) -> None:
    """Follow the ledger: verify every new transaction and write one JSON line per transaction, per
    attestation written (predicate type, signer, subjects), per finding and per head reached, on stdout.

    Every round proves the new head consistent with the monitor's own trusted state, every new entry included
    and the range complete, every envelope's signature, and (embedded) the key index updated exactly as the
    entries say. Tampering is a {"event": "tampering"} line and exit 3; an unreachable ledger is a line and,
    with --once, exit 4 (otherwise the next round tries again). A record that does not open is a finding
    (exit 3 after an --once round).

    \b
    Examples:
      notary audit follow --once                  # from cron or a systemd timer
      notary audit follow --interval 5            # resident (deploy/systemd/notary-monitor.service)
    """
    trusted = {keys.key_id(keys.load_public_key(p)) for p in key_paths} or None
    from notary.ledger.trust import TrustStore

    directory = Path(state) if state else TrustStore(app.state_dir, env=app.env).directory / "monitor"
    findings = 0
    while True:
        try:
            ledger = app.open_ledger(state_dir=str(directory))
            ledger_id = ledger.info().ledger_id
            path = monitor.cursor_path(directory, ledger_id)
            cursor = monitor.load_cursor(path, ledger_id)
            if cursor is None:
                cursor = max(0, points.resolve(ledger, from_point, ledger.info().head.tx))
            for event in monitor.one_round(ledger, cursor, trusted):
                findings += event["event"] == "finding"
                _line(event)
                tx = event.get("tx")
                if event["event"] == "head" and isinstance(tx, int):  # a head event's tx: the verified head's
                    monitor.save_cursor(path, ledger_id, tx)
            app.close()
        except IntegrityError as exc:
            _line({"event": "tampering", "kind": exc.kind, "error": exc.message})
            raise SystemExit(exc.exit_code) from None
        except LedgerUnavailableError as exc:
            _line({"event": "unavailable", "error": exc.message})
            if once:
                raise SystemExit(exc.exit_code) from None
        if once:
            raise SystemExit(3 if findings else 0)
        time.sleep(interval)
