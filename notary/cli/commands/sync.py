"""`notary sync`: an edge device's ledger copied to the centre's, verified on both sides, resumable."""

from __future__ import annotations

import sys

import click

from notary import sync as syncing
from notary.cli.common import App, pass_app, stdout_is_terminal
from notary.errors import UsageError


@click.command("sync")
@click.option("--to", "to_url", metavar="URL",
              help="The destination ledger (immudb://... or file://...); it must exist. Default: [sync] to in "
                   "notary.toml.")
@click.option("--from", "from_url", metavar="URL",
              help="The source: an embedded ledger (file://..., edge to centre) or an immudb one (centre to a "
                   "device, through the verified mirror). Default: --ledger / NOTARY_LEDGER.")
@click.option("--batch", type=click.IntRange(1, syncing.MAX_BATCH), default=None, metavar="N",
              help="Source transactions per destination batch: smaller for a poor link (a batch is what a "
                   f"dropped connection costs to send again), larger for throughput. Default: [sync] batch, "
                   f"else {syncing.DEFAULT_BATCH}.")
@click.option("--status", "only_status", is_flag=True,
              help="Copy nothing: prove up to which source transaction the destination agrees, and how far "
                   "behind it is.")
@pass_app
def sync(app: App, to_url: str | None, from_url: str | None, batch: int | None, only_status: bool) -> None:
    """Copy every record of one ledger that another lacks, byte for byte: an edge device's up to the centre,
    or the centre's down to a device (what came from the device is not copied back).

    The source is verified first (every entry proven included in a head consistent with this client's
    trusted state, the range proven complete): a tampered source is exit 3 with nothing written. Consecutive
    source transactions are packed into destination transactions (no key twice in one), each carrying a
    cursor (sync/<hash of the source ledger id>) with the source head it reached, so a sync killed at any moment and run
    again neither loses nor duplicates a record. At the destination the records are found by digest and CI job id like any other.

    Exit codes: 0 in sync (or copied), 2 bad usage, 3 either ledger fails verification (or the destination
    holds a head the source does not: the source was rewritten), 4 a ledger unreachable.

    \b
    Examples:
      notary sync --from file:///var/lib/notary/ledger.db --to immudb://notary@centre:3322/notary
      notary sync --to immudb://notary@centre:3322/notary --batch 8      # a slow link
      notary sync --from immudb://notary@centre:3322/notary --to file:///var/lib/notary/ledger.db
      notary --json sync --to immudb://notary@centre:3322/notary --status
      notary --config /etc/notary/notary.toml sync      # [sync] to = "immudb://..." (the systemd timer)
    """
    to_url = to_url or app.config.setting("sync", "to", str)
    if not to_url:
        raise UsageError("sync needs a destination", hint="pass --to URL or set [sync] to in notary.toml")
    configured = app.config.setting("sync", "batch", int)
    batch = batch or (configured if configured is not None else syncing.DEFAULT_BATCH)
    if not 1 <= batch <= syncing.MAX_BATCH:
        raise UsageError(f"[sync] batch must be 1..{syncing.MAX_BATCH}, not {batch}")
    source = app.open_ledger(url=from_url)
    if "://" not in str(to_url):
        raise UsageError(f"the sync destination {str(to_url)[:80]!r} is not a ledger URL",
                         hint="immudb://USER@HOST:PORT/DB or file:///path/ledger.db")
    destination = app.open_ledger(url=str(to_url))
    if only_status:
        head, cursor = syncing.status(source, destination)
        done = syncing.Progress(head, cursor.tx if cursor else 0, cursor.tx if cursor else 0)
        found = syncing.report(done)
        behind = found["behind"]
        app.emit(found, f"destination holds source transactions 1..{done.done_tx} of {head.tx}"
                       + (", proven against the source's head" if cursor else "") + (
                           f"; {behind} behind" if behind else "; in sync"), schema="sync")
        return
    show = stdout_is_terminal() and not app.json

    def shown(progress: syncing.Progress) -> None:
        if show:
            total = progress.source_head.tx - progress.start_tx
            copied = progress.done_tx - progress.start_tx
            sys.stderr.write(f"\rsync: {copied}/{total} transactions, {progress.entries} entries")
            sys.stderr.flush()

    done = syncing.sync(source, destination, batch=batch, on_batch=shown)
    if show and done.written:
        sys.stderr.write("\n")
    data = syncing.report(done)
    text = (f"copied source transactions {done.start_tx + 1}..{done.done_tx} ({done.entries} entries) in "
            f"{done.written} destination transaction{'s' if done.written != 1 else ''}; in sync at source tx "
            f"{done.done_tx}"
            if done.written else f"already in sync at source tx {done.done_tx}")
    app.emit(data, text, schema="sync")
