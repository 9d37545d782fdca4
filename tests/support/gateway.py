"""Shared pieces of the immudb HTTP gateway tests: the ledger opened through a gateway, a ledger with a
revocation in it, and JSON rewrites for the lying proxy (tests.support.http_proxy)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from notary.ledger import open_immudb
from notary.ledger.immudb import ImmudbLedger
from notary.ledger.immudb._gateway import GatewayTransport
from notary.ledger.trust import TrustStore
from tests.support.http_proxy import Reply, Rewrite


def open_gateway(url: str, gateway: str, state: Path, **kw: Any) -> ImmudbLedger:
    ledger = open_immudb(url, trust=TrustStore(state), gateway=gateway, **kw)
    assert isinstance(ledger, ImmudbLedger) and isinstance(ledger.session.transport, GatewayTransport)
    return ledger


def notarized_then_revoked(url: str, gateway: str, state: Path) -> None:
    """subject/m written twice (the second version a revocation, in a transaction with another key)."""
    gw = open_gateway(url, gateway, state)
    gw.write({"subject/m": b"notarized"})
    gw.write({"subject/m": b"revoked", "other": b"x"})
    gw.close()


def json_rewrite(path_part: str, change: Callable[[dict[str, Any]], Any]) -> Rewrite:
    """A proxy rewrite that edits the JSON of each 200 answer to a path containing path_part."""

    def rewrite(path: str, reply: Reply) -> Reply:
        if path_part not in path or reply.status != 200:
            return reply
        doc = json.loads(reply.body)
        change(doc)
        return reply._replace(body=json.dumps(doc).encode())

    return rewrite


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
