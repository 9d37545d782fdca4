"""Ledger URLs for the backend-agnostic contract suite: one behaviour, every backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

BACKENDS = ["file", "immudb", "immudb-gateway", "partitioned"]


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
    if request.param == "partitioned":
        yield _partitioned(server, tmp_path)
        return
    if request.param == "immudb-gateway":
        monkeypatch.setenv("NOTARY_IMMUDB_GATEWAY", server.gateway_url)
    yield fresh_immudb_url(server)


def partitioned_url(members: list[str]) -> str:
    return "partitioned:" + ",".join(members)


def _partitioned(server: object, tmp_path: Path) -> str:
    """Two immudb databases and an embedded file as one partitioned ledger, its layout written (`ledger init`)
    with a trust store of its own, so the test's users meet it first-hand."""
    from notary.ledger import open_ledger
    from notary.ledger.partitioned import PartitionedLedger
    from tests.support.immudb import fresh_immudb_url

    members = [fresh_immudb_url(server), fresh_immudb_url(server), (tmp_path / "partition2.db").as_uri()]  # type: ignore[arg-type]
    url = partitioned_url(members)
    ledger = open_ledger(url, state_dir=tmp_path / "init-state", mirror=True)
    assert isinstance(ledger, PartitionedLedger)
    try:
        ledger.initialize()
    finally:
        ledger.close()
    return url


class EmbeddedPartitions:
    """`count` embedded members set up as one partitioned ledger (`ledger init`), its user and a key."""

    def __init__(self, root: Path, count: int = 3) -> None:
        from tests.support.cli import Notary

        self.root = root
        self.paths = [root / f"p{n}.db" for n in range(count)]
        self.members = [p.as_uri() for p in self.paths]
        self.url = partitioned_url(self.members)
        self.notary = Notary(root / "ci", ledger_url=self.url)
        self.notary.root.mkdir(parents=True)
        self.notary.run("ledger", "init")
        self.key = self.notary.key()
        self.pub = f"{self.key}.pub"
