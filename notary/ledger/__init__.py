"""Ledger backends behind one interface; `open_ledger(url)` picks one by URL scheme.

Backends are imported only when opened, so the embedded path never pays for grpc/immudb imports.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from notary.errors import UsageError
from notary.ledger.base import Entry, Ledger, LedgerInfo, TreeHead, WriteReceipt
from notary.ledger.trust import TrustStore

__all__ = ["Entry", "Ledger", "LedgerInfo", "TreeHead", "WriteReceipt", "default_ledger_url", "open_ledger"]


def default_ledger_url() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return (Path(base) / "notary" / "ledger.db").resolve().as_uri()


def open_ledger(url: str | None = None, *, state_dir: str | Path | None = None, create: bool = True) -> Ledger:
    """Open the ledger named by url (default: the embedded ledger under the user's data dir).

    create=False refuses to create a missing embedded ledger (read commands must not invent one).
    """
    url = url or default_ledger_url()
    trust = TrustStore(state_dir)
    scheme = urlsplit(url).scheme
    if scheme == "file":
        from notary.ledger.embedded import EmbeddedLedger

        return EmbeddedLedger.open(url, trust=trust, create=create)
    if scheme == "immudb":
        from notary.ledger.immudb import ImmudbLedger

        return ImmudbLedger.open(url, trust=trust)
    raise UsageError(
        f"unsupported ledger URL {url!r}",
        hint="use file:///path/ledger.db or immudb://user@host:3322/database",
    )
