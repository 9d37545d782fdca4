"""Batched writes on immudb with the verified mirror (what `notary sync` and bulk notarizations use): many
transactions written, then one catch-up replay proves them all, each holding exactly what was written. A real
gRPC proxy in front of a real immudb alters one write of a batch, the way a man in the middle on the
plain-HTTP/2 channel could."""

from __future__ import annotations

from pathlib import Path

import pytest

from notary.errors import ProofError
from notary.ledger import open_ledger
from notary.ledger.immudb._mirrored import MirroredLedger
from tests.support.grpc_proxy import GrpcProxy
from tests.support.immudb import ImmudbServer
from tests.support.immudb_fixtures import fresh_database, grpc_man_in_the_middle  # noqa: F401 - "url", "proxy"

pytestmark = pytest.mark.integration


def _via(proxy: GrpcProxy, url: str) -> str:
    return f"immudb://immudb@{proxy.address}/{url.rsplit('/', 1)[1]}"


def _mirrored(url: str, state: Path, monkeypatch: pytest.MonkeyPatch) -> MirroredLedger:
    monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD", "immudb")
    ledger = open_ledger(url, state_dir=state, mirror=True)
    assert isinstance(ledger, MirroredLedger)
    return ledger


def test_a_batch_is_proven_by_one_replay_and_reads_back_exactly(url: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = _mirrored(url, tmp_path / "w", monkeypatch)
    try:
        receipts = ledger.write_batch([{f"subject/{i}": b"v%d" % i, f"job/{i}": b"{}"} for i in range(40)])
        assert [r.tx for r in receipts] == sorted({r.tx for r in receipts}) and len(receipts) == 40
        assert all(r.head.tx == receipts[-1].tx and r.time is not None for r in receipts)
        assert ledger.get("subject/7") is not None and ledger.get("subject/7").value == b"v7"  # type: ignore[union-attr]
    finally:
        ledger.close()
    reader = _mirrored(url, tmp_path / "r", monkeypatch)
    try:
        assert [e.value for e in reader.history("subject/39")] == [b"v39"]
    finally:
        reader.close()


@pytest.mark.parametrize("alter", ["value", "key"])
def test_a_proxy_altering_one_write_of_a_batch_is_caught(url: str, proxy: GrpcProxy, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, alter: str) -> None:
    from immudb.grpc import schema_pb2

    seen = {"sets": 0}

    def rewrite(raw: bytes) -> bytes:
        request = schema_pb2.SetRequest.FromString(raw)
        seen["sets"] += 1
        if seen["sets"] == 3:  # the third transaction of the batch
            if alter == "value":
                request.KVs[0].value = b"forged"
            else:
                request.KVs[0].key = b"subject/elsewhere"
        return request.SerializeToString()

    ledger = _mirrored(_via(proxy, url), tmp_path / "w", monkeypatch)
    try:
        proxy.requests["Set"] = rewrite
        with pytest.raises(ProofError, match="does not hold exactly the values notary wrote"):
            ledger.write_batch([{f"subject/{i}": b"honest"} for i in range(5)])
    finally:
        ledger.close()
    assert seen["sets"] >= 3, "the proxy never saw the writes: the test proved nothing"


def test_a_batch_through_the_http_gateway_is_proven_the_same_way(url: str, immudb_server: ImmudbServer,
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from notary.ledger.immudb._gateway import GatewayTransport

    monkeypatch.setenv("NOTARY_IMMUDB_GATEWAY", immudb_server.gateway_url)
    ledger = _mirrored(url, tmp_path / "w", monkeypatch)
    try:
        assert isinstance(ledger, MirroredLedger) and isinstance(ledger.session.transport, GatewayTransport)
        receipts = ledger.write_batch([{f"subject/{i}": b"gw%d" % i} for i in range(12)])
        assert len({r.tx for r in receipts}) == 12
        assert [e.value for e in ledger.history("subject/11")] == [b"gw11"]
    finally:
        ledger.close()
