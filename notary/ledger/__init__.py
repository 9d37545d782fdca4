"""Ledger backends behind one interface; `open_ledger(url)` picks one by URL scheme.

Backends are imported only when opened, so the embedded path never pays for grpc/immudb imports.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from notary.errors import UsageError
from notary.ledger.base import Entry, Ledger, LedgerInfo, TreeHead, WriteReceipt
from notary.ledger.trust import TrustStore

if TYPE_CHECKING:
    from notary.config import Config

__all__ = ["Entry", "Ledger", "LedgerInfo", "TreeHead", "WriteReceipt", "default_ledger_url", "gateway_setting",
           "mirror_setting",
           "open_ledger"]


def default_ledger_url() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return (Path(base) / "notary" / "ledger.db").resolve().as_uri()


def open_ledger(url: str | None = None, *, state_dir: str | Path | None = None, create: bool = True,
                mirror: bool | None = None, config: Config | None = None) -> Ledger:
    """Open the ledger named by url (default: the embedded ledger under the user's data dir).

    create=False refuses to create a missing embedded ledger (read commands must not invent one).
    mirror (immudb only): check every read against a local, verified replay of the ledger, which proves a read
    shows the newest version or that a key is absent; None leaves it to NOTARY_IMMUDB_MIRROR (default off).
    config: where `[immudb] gateway` is read (NOTARY_IMMUDB_GATEWAY beats it): without the mirror, an immudb
    ledger is then read and written through immudb's HTTP gateway, which spares a process grpc's start-up.
    """
    url = url or default_ledger_url()
    trust = TrustStore(state_dir)
    scheme = urlsplit(url).scheme
    if scheme == "file":
        from notary.ledger.embedded import EmbeddedLedger

        return EmbeddedLedger.open(url, trust=trust, create=create)
    if scheme == "immudb":
        from notary.ledger.immudb import ImmudbLedger

        mirrored = mirror_setting(config) if mirror is None else mirror
        gateway = gateway_setting(config)
        if gateway:
            from notary.ledger.immudb.gateway import GatewayLedger

            ca = os.environ.get("NOTARY_IMMUDB_GATEWAY_CA") or (
                config.section("immudb").get("gateway_ca") if config is not None else None)
            ledger: Ledger = GatewayLedger.open(url, trust=trust, gateway=gateway,
                                                gateway_ca=str(ca) if ca else None, mirror=mirrored)
        else:
            ledger = ImmudbLedger.open(url, trust=trust, mirror=mirrored)
        if not mirrored and mirror is None:
            ledger.notices.append(MIRROR_OFF_NOTICE)
        return ledger
    raise UsageError(
        f"unsupported ledger URL {url!r}",
        hint="use file:///path/ledger.db or immudb://user@host:3322/database",
    )


def gateway_setting(config: Config | None) -> str | None:
    """immudb's HTTP gateway address: NOTARY_IMMUDB_GATEWAY (empty, "none" or "off": not used), else
    `[immudb] gateway` in notary.toml, else None (gRPC)."""
    raw = os.environ.get("NOTARY_IMMUDB_GATEWAY")
    if raw is not None:
        return None if raw.strip().lower() in ("", "none", "off") else raw
    configured = config.section("immudb").get("gateway") if config is not None else None
    return str(configured) if configured else None


MIRROR_OFF_NOTICE = ("the verified immudb mirror is off (NOTARY_IMMUDB_MIRROR=0 or [immudb] mirror = false): "
                     "reads prove inclusion only, so a lying server can hide a newest version, a revocation "
                     "or a signer (docs/immudb.md)")


def mirror_setting(config: Config | None, *, default: bool = True) -> bool:
    """Whether to keep the verified immudb mirror: NOTARY_IMMUDB_MIRROR (1/0, true/false, yes/no, on/off), else
    `[immudb] mirror` in notary.toml, else on: completeness is the default on every path, one-shot commands
    included (the mirror catches up incrementally from the state directory); off is an explicit, noticed
    opt-out."""
    raw = os.environ.get("NOTARY_IMMUDB_MIRROR", "").strip().lower()
    if raw:
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"NOTARY_IMMUDB_MIRROR={raw!r} is neither 1 nor 0")
    configured = config.section("immudb").get("mirror") if config is not None else None
    return default if configured is None else bool(configured)
