"""Ledger backends behind one interface; `open_ledger(url)` picks one by URL scheme.

Backends are imported only when opened, so the embedded path never pays for grpc/immudb imports.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
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
        replicas = replicas_setting(config)
        read_from = read_from_setting(config)
        if gateway:
            from notary.ledger.immudb.gateway import GatewayLedger

            ca = os.environ.get("NOTARY_IMMUDB_GATEWAY_CA") or (
                config.section("immudb").get("gateway_ca") if config is not None else None)
            ledger: Ledger = _primary_or_replica(lambda: GatewayLedger.open(
                url, trust=trust, gateway=gateway, gateway_ca=str(ca) if ca else None, mirror=mirrored),
                url, trust, mirrored, replicas, read_from)
        else:
            ledger = _primary_or_replica(lambda: ImmudbLedger.open(url, trust=trust, mirror=mirrored),
                                         url, trust, mirrored, replicas, read_from)
        if not mirrored and mirror is None:
            ledger.notices.append(MIRROR_OFF_NOTICE)
        return ledger
    if scheme == "partitioned":
        from notary.ledger.partitioned import PartitionedLedger

        return PartitionedLedger(url, trust, lambda member: open_ledger(
            member, state_dir=state_dir, create=create, mirror=mirror, config=config))
    raise UsageError(
        f"unsupported ledger URL {url!r}",
        hint="use file:///path/ledger.db, immudb://user@host:3322/database or partitioned:URL1,URL2,...",
    )


def _primary_or_replica(primary_open: Callable[[], Ledger], url: str, trust: TrustStore, mirrored: bool,
                        replicas: list[str], read_from: str = "primary") -> Ledger:
    """The primary; when it cannot be reached, the first replica that can, read as the primary's ledger
    (checked against its trusted state, writes refused: docs/immudb.md, "Replicas"). read_from "replicas":
    reads go to a replica while the primary is up too, writes to the primary (ReplicaReads)."""
    from notary.errors import LedgerUnavailableError
    from notary.ledger.immudb._conn import parse_url

    if read_from == "replicas" and replicas:
        from notary.ledger.immudb.replica_reads import ReplicaReads

        def offload() -> Ledger | None:
            ledger, _ = _first_replica(url, trust, mirrored, replicas)
            if ledger is not None:
                ledger.notices.append(f"reading from the immudb replica at {parse_url(ledger.url).address} "
                                      "(read_from = replicas); writes go to the primary")
            return ledger

        return ReplicaReads(url, primary_open, offload)
    try:
        return primary_open()
    except LedgerUnavailableError as down:
        if not replicas:
            raise
        ledger, failures = _first_replica(url, trust, mirrored, replicas)
        if ledger is None:
            if failures is None:
                raise LedgerUnavailableError(f"{down.message}; its replicas cannot be checked before this client "
                                             "has read from the primary once") from down
            raise LedgerUnavailableError("; ".join([down.message, *failures])) from down
        ledger.notices.append(f"the immudb primary at {parse_url(url).address} is unreachable: reading "
                              f"{getattr(ledger, 'ledger_id', '')} from its replica at {parse_url(ledger.url).address} "
                              "(writes refused until the primary is back)")
        return ledger


def _first_replica(url: str, trust: TrustStore, mirrored: bool,
                   replicas: list[str]) -> tuple[Ledger | None, list[str] | None]:
    """The first replica that answers and is not behind this client's trust, read as the primary's ledger;
    (None, None) when no replica can be checked (this client never read the primary), (None, failures) when
    none answered."""
    from notary.errors import LedgerUnavailableError
    from notary.ledger.immudb import ImmudbLedger
    from notary.ledger.immudb._conn import parse_url

    primary = parse_url(url)
    pin = trust.load(f"immudb-address:{primary.address}/{primary.database}")
    ledger_id = pin.extra.get("ledger_id") if pin is not None else None
    if not isinstance(ledger_id, str):
        return None, None
    failures: list[str] = []
    for address in replicas:
        replica_url = f"immudb://{primary.user}@{address}/{primary.database}"
        try:
            return ImmudbLedger.open(replica_url, trust=trust, mirror=mirrored, replica_of=ledger_id), failures
        except LedgerUnavailableError as exc:
            failures.append(exc.message)
    return None, failures


def replicas_setting(config: Config | None) -> list[str]:
    """Read replicas of an immudb ledger (host:port each, same database and user): NOTARY_IMMUDB_REPLICAS
    (comma-separated), else `[immudb] replicas` in notary.toml; read from only while the primary is down."""
    from notary.ledger.immudb._conn import parse_url

    raw = os.environ.get("NOTARY_IMMUDB_REPLICAS")
    if raw is not None:
        listed: Any = [part.strip() for part in raw.split(",") if part.strip()]
        where = "NOTARY_IMMUDB_REPLICAS"
    else:
        listed = config.section("immudb").get("replicas", []) if config is not None else []
        where = "[immudb] replicas"
    if not isinstance(listed, list) or not all(isinstance(a, str) for a in listed) or len(listed) > 16:
        raise UsageError(f"{where} must be a list of at most 16 host:port strings")
    for address in listed:  # the URL parser's checks, one per replica, before any connection
        if "/" in address or "@" in address:
            raise UsageError(f"{where}: {address[:80]!r} is not a host:port")
        parse_url(f"immudb://replica@{address}/db")
    return list(listed)


def read_from_setting(config: Config | None) -> str:
    """Where an immudb ledger's reads go while its primary is up: NOTARY_IMMUDB_READ_FROM, else `[immudb]
    read_from`: "primary" (the default) or "replicas" (the first replica that answers and is not behind)."""
    raw = os.environ.get("NOTARY_IMMUDB_READ_FROM")
    where = "NOTARY_IMMUDB_READ_FROM"
    if raw is None:
        raw = str(config.section("immudb").get("read_from", "primary")) if config is not None else "primary"
        where = "[immudb] read_from"
    value = raw.strip().lower() or "primary"
    if value not in ("primary", "replicas"):
        raise UsageError(f"{where} is {raw[:40]!r}: it is \"primary\" or \"replicas\"")
    return value


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
