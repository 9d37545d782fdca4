"""Ledger URLs for the backend-agnostic contract suite: one behaviour, every backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

BACKENDS = ["file", "immudb", "immudb-gateway"]


@pytest.fixture(params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty ledger of each backend (immudb: a new database on the session's real server, read and
    written through gRPC, or through its HTTP gateway, which NOTARY_IMMUDB_GATEWAY also hands to the
    processes a test starts)."""
    if request.param == "file":
        yield (tmp_path / "ledger.db").as_uri()
        return
    from tests.support.immudb import fresh_immudb_url

    server = request.getfixturevalue("immudb_server")
    if request.param == "immudb-gateway":
        monkeypatch.setenv("NOTARY_IMMUDB_GATEWAY", server.gateway_url)
    yield fresh_immudb_url(server)
