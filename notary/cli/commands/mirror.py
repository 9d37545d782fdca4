"""`notary ledger mirror` and the immudb half of `notary ledger audit`: this client's verified replay of an immudb
ledger, which lets reads prove they show the newest version (docs/immudb.md, "The verified mirror")."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import click

from notary.cli.common import App, pass_app
from notary.errors import UsageError

if TYPE_CHECKING:
    from notary.ledger.immudb._mirrored import MirroredLedger


def _mirrored(app: App, what: str) -> MirroredLedger:
    if not (app.ledger_url or "").startswith("immudb:"):
        raise UsageError(f"{what} applies to immudb ledgers", hint="name one with --ledger or NOTARY_LEDGER")
    from notary.ledger.immudb._mirrored import MirroredLedger

    ledger = app.open_ledger(mirror=True)
    if not isinstance(ledger, MirroredLedger):  # an immudb URL with mirror=True opens one
        raise UsageError(f"{what} applies to immudb ledgers", hint="name one with --ledger or NOTARY_LEDGER")
    return ledger


@click.command("mirror")
@click.option("--rebuild", is_flag=True, help="Discard the local mirror and replay the ledger from tx 1.")
@pass_app
def mirror(app: App, rebuild: bool) -> None:
    """Build or refresh this client's verified mirror of an immudb ledger.

    Every transaction from the first to the server's current state is fetched, re-hashed and chained to the
    trusted state; later runs (and every mirrored read) fetch only what is new. Reads then prove that they
    show a key's newest version, or that it is absent (NOTARY_IMMUDB_MIRROR=1 or [immudb] mirror = true).

    \b
    Examples:
      notary --ledger immudb://notary@immudb.internal:3322/notary ledger mirror
      notary --ledger immudb://notary@immudb.internal:3322/notary ledger mirror --rebuild
    """
    if rebuild:
        _discard(app)
    ledger = _mirrored(app, "ledger mirror")
    store = ledger.mirror
    added, seconds = ledger.last_catch_up
    keys = store.key_count()
    data = {"path": str(store.path), "tx": store.last_tx, "entries": store.entries, "keys": keys,
            "bytes": store.size_bytes(), "added": added, "seconds": round(seconds, 3),
            "tx_per_s": round(added / seconds) if added and seconds else None, "ledger_id": ledger.ledger_id}
    rate = f" ({data['tx_per_s']} tx/s)" if data["tx_per_s"] else ""
    app.emit(data, f"mirror {store.path}: tx 1..{store.last_tx} verified, {store.entries} entries, {keys} keys; "
                   f"{added} new transactions in {seconds:.2f} s{rate}", schema="ledger-mirror")


def _discard(app: App) -> None:
    """Remove the mirror file (with SQLite's journal and the seal) of the ledger, found through a plain,
    unmirrored connection."""
    from notary.ledger.immudb import ImmudbLedger
    from notary.ledger.immudb.mirror import mirror_path

    plain = app.open_ledger(mirror=False)
    assert isinstance(plain, ImmudbLedger)  # callers route only immudb: URLs here
    path = mirror_path(plain.trust, plain.ledger_id)
    for suffix in ("", "-journal", "-wal", "-shm", ".seal"):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).unlink()


def audit_immudb(app: App) -> None:
    """`notary ledger audit` on immudb: re-hash the mirror, then replay every transaction from the server."""
    report = _mirrored(app, "ledger audit").audit()
    app.emit(
        {"ok": True, "head": report.head.to_json(), "entries": report.entries, "transactions": report.transactions,
         "keys": report.keys, "signatures_checked": report.signatures_checked, "replayed": report.replayed,
         "mirror": report.mirror, "seconds": round(report.seconds, 3)},
        f"audit ok: replayed {report.replayed} transactions from the server ({report.entries} entries, "
        f"{report.keys} keys), every one re-hashed and chained to the trusted state at tx {report.head.tx}"
        f"{', state signature checked' if report.signatures_checked else ''}; mirror {report.mirror}",
        schema="ledger-audit",
    )
