"""Ledger backends behind one interface; `open_ledger(url)` picks one by URL scheme.

Backends are imported only when opened, so the embedded path never pays for grpc/immudb imports.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from notary.environment import Environment, given
from notary.errors import UsageError
from notary.ledger.base import Entry, Ledger, LedgerInfo, TreeHead, WriteReceipt
from notary.ledger.trust import TrustStore

if TYPE_CHECKING:
    from notary.config import Config
    from notary.ledger.immudb._conn import ImmudbTarget
    from notary.ledger.immudb._mirrored import MirroredLedger
    from notary.ledger.immudb._transport import Transport
    from notary.ledger.immudb.ledger import ImmudbLedger
    from notary.ledger.settings import ImmudbSettings

__all__ = ["Entry", "Ledger", "LedgerInfo", "TreeHead", "WriteReceipt", "default_ledger_url", "open_immudb", "open_ledger"]


def default_ledger_url(env: Environment | None = None) -> str:
    base = given(env).xdg_data_home or os.path.join(os.path.expanduser("~"), ".local", "share")
    return (Path(base) / "notary" / "ledger.db").resolve().as_uri()


def open_ledger(url: str | None = None, *, state_dir: str | Path | None = None, create: bool = True,
                mirror: bool | None = None, config: Config | None = None, env: Environment | None = None) -> Ledger:
    """Open the ledger named by url (default: the embedded ledger under the user's data dir).

    create=False refuses to create a missing embedded ledger (read commands must not invent one).
    mirror (immudb only): check every read against a local, verified replay of the ledger, which proves a read
    shows the newest version or that a key is absent; None leaves it to the settings (default on).
    config: notary.toml, whose `[immudb]` the immudb settings read after the environment
    (notary.ledger.settings: mirror, gateway, replicas, read_from, ...), once per opened ledger.
    env: the environment the caller read (the CLI's; None: this process's, now).
    """
    env = given(env)
    url = url or default_ledger_url(env)
    trust = TrustStore(state_dir, env=env)
    scheme = urlsplit(url).scheme
    if scheme == "file":
        from notary.ledger.embedded import EmbeddedLedger

        return EmbeddedLedger.open(url, trust=trust, create=create)
    if scheme == "immudb":
        from notary.ledger.settings import ImmudbSettings

        settings = ImmudbSettings.load(config, env.variables)
        mirrored = settings.mirror if mirror is None else mirror
        gateway = settings.gateway
        ledger: Ledger = _primary_or_replica(lambda: open_immudb(
            url, trust=trust, gateway=gateway, mirror=mirrored, settings=settings), url, trust, mirrored, settings)
        if not mirrored and mirror is None:
            ledger.notices.append(MIRROR_OFF_NOTICE)
        return ledger
    if scheme == "partitioned":
        from notary.ledger.partitioned import PartitionedLedger

        return PartitionedLedger(url, trust, lambda member: open_ledger(
            member, state_dir=state_dir, create=create, mirror=mirror, config=config, env=env))
    raise UsageError(
        f"unsupported ledger URL {url!r}",
        hint="use file:///path/ledger.db, immudb://user@host:3322/database or partitioned:URL1,URL2,...",
    )


def _primary_or_replica(primary_open: Callable[[], Ledger], url: str, trust: TrustStore, mirrored: bool,
                        settings: ImmudbSettings) -> Ledger:
    """The primary; when it cannot be reached, the first replica that can, read as the primary's ledger
    (checked against its trusted state, writes refused: docs/immudb.md, "Replicas"). read_from "replicas":
    reads go to a replica while the primary is up too, writes to the primary (ReplicaReads)."""
    from notary.errors import LedgerUnavailableError
    from notary.ledger.immudb._conn import parse_url

    replicas = settings.replicas
    if settings.read_from == "replicas" and replicas:
        from notary.ledger.immudb.replica_reads import ReplicaReads

        def offload() -> Ledger | None:
            ledger, _ = _first_replica(url, trust, mirrored, settings)
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
        ledger, failures = _first_replica(url, trust, mirrored, settings)
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
                   settings: ImmudbSettings) -> tuple[Ledger | None, list[str] | None]:
    """The first replica that answers and is not behind this client's trust, read as the primary's ledger;
    (None, None) when no replica can be checked (this client never read the primary), (None, failures) when
    none answered."""
    from notary.errors import LedgerUnavailableError
    from notary.ledger.immudb._conn import parse_url

    primary = parse_url(url)
    pin = trust.load(f"immudb-address:{primary.address}/{primary.database}")
    ledger_id = pin.extra.get("ledger_id") if pin is not None else None
    if not isinstance(ledger_id, str):
        return None, None
    failures: list[str] = []
    for address in settings.replicas:
        replica_url = f"immudb://{primary.user}@{address}/{primary.database}"
        try:
            return (open_immudb(replica_url, trust=trust, mirror=mirrored, replica_of=ledger_id, settings=settings),
                    failures)
        except LedgerUnavailableError as exc:
            failures.append(exc.message)
    return None, failures


MIRROR_OFF_NOTICE = ("the verified immudb mirror is off (NOTARY_IMMUDB_MIRROR=0 or [immudb] mirror = false): "
                     "reads prove inclusion only, so a lying server can hide a newest version, a revocation "
                     "or a signer (docs/immudb.md)")


def open_immudb(url: str, *, trust: TrustStore | None = None, settings: ImmudbSettings | None = None,
                password: str | None = None, mirror: bool = False, gateway: str | None = None,
                replica_of: str | None = None) -> ImmudbLedger | MirroredLedger:
    """One immudb ledger, the transport and the mirror chosen here: through immudb's HTTP gateway when one is
    named (http(s)://HOST:PORT; its TLS trusted through settings.gateway_ca, else the system's CA store), else
    gRPC; a replica (replica_of: the primary's ledger id) always over gRPC, its gateway not configured. mirror:
    checked against a local, fully verified replay (notary.ledger.immudb._mirrored), the one way to know a read
    shows the newest version, or that a key is absent. settings: the password source, timeout and server key
    (default: the environment's)."""
    from notary.ledger.immudb._conn import parse_url
    from notary.ledger.immudb.ledger import ImmudbLedger
    from notary.ledger.settings import ImmudbSettings

    settings = settings if settings is not None else ImmudbSettings.load()
    trust = trust or TrustStore()
    target = parse_url(url)
    transport = _transport(target, settings, trust, None if replica_of else gateway)
    secret = password if password is not None else settings.password(target.user)
    ledger = ImmudbLedger.open(target, transport, trust=trust, password=secret, server_key=settings.server_key(),
                               replica_of=replica_of)
    if not mirror:
        return ledger
    from notary.ledger.immudb._mirrored import MirroredLedger

    return MirroredLedger.over(ledger)


def _transport(target: ImmudbTarget, settings: ImmudbSettings, trust: TrustStore, gateway: str | None) -> Transport:
    if not gateway:
        from notary.ledger.immudb._grpc import GrpcTransport

        return GrpcTransport(target, settings.timeout)
    from notary.ledger.immudb._gateway import GatewayTransport
    from notary.ledger.immudb._http import parse_gateway, read_ca

    address = parse_gateway(gateway)
    tls = read_ca(settings.gateway_ca, address) if settings.gateway_ca else None
    return GatewayTransport(target, address, settings.timeout, tls, trust.directory)
