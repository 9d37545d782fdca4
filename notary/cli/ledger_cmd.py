"""`notary ledger`: what the ledger is, how big, and what this client trusts about it."""

from __future__ import annotations

import click

from notary.cli.common import App, pass_app


@click.group("ledger")
def ledger() -> None:
    """Inspect the ledger and this client's trusted state."""


@ledger.command("info")
@pass_app
def info(app: App) -> None:
    """The ledger's current verified head, its size, and the trusted state it was proven consistent with."""
    details = app.open_ledger().info()
    data = details.to_json()

    def human() -> str:
        head = details.head
        trusted = details.trusted or {}
        lines = [
            f"ledger:        {details.url}",
            f"backend:       {details.backend}",
            f"identity:      {details.ledger_id}",
            f"head:          size {head.tree_size}, tx {head.tx}, root {head.root.hex()}",
        ]
        if details.entries is not None:
            lines.append(f"entries:       {details.entries} in {details.transactions} transactions")
        lines.append(f"trusted state: size {trusted.get('tree_size')}, root {trusted.get('root_hash')}")
        return "\n".join(lines)

    app.emit(data, human)
