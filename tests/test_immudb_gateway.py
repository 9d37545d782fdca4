"""The immudb ledger through immudb's HTTP gateway: notary's own proof checks, attacked through a real proxy.

The gateway path loads neither grpc nor immudb-py, so every proof is checked by notary/ledger/immudb/_verify.py.
Its verdicts are compared with immudb-py's on a live server's proofs (honest and altered), and a real HTTP man
in the middle in front of the real gateway lies the ways an attacker on the path would.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from notary.errors import LedgerUnavailableError, ProofError, RollbackError, UsageError
from notary.ledger import open_immudb
from notary.ledger.immudb._gateway import GatewayTransport
from notary.ledger.immudb._mirrored import MirroredLedger
from notary.ledger.immudb._proto import rows_from_proto
from notary.ledger.immudb._replay import TxRow, alh
from notary.ledger.immudb._verify import DualProof, LinearAdvanceProof, LinearProof, dual_proof_holds
from notary.ledger.trust import TrustStore
from tests.support.cli import Notary
from tests.support.gateway import (
    b64,
    json_rewrite,
    notarized_then_revoked,
    open_gateway,
)
from tests.support.http_proxy import HttpProxy, Reply
from tests.support.immudb import ImmudbServer
from tests.support.immudb_fixtures import fresh_database, gateway_man_in_the_middle  # noqa: F401 - fixtures "url", "proxy"
from tests.support.runtimes import self_signed_cert

# -- notary's dual proof check against immudb-py's, on the live server's proofs ------------------------------------


def _header(h: object) -> TxRow:
    row, _ = rows_from_proto(type("Tx", (), {"header": h, "entries": []})())
    return row._replace(alh=alh(row, bytes(h.prevAlh)))  # type: ignore[attr-defined]


def _ours(dp: object) -> DualProof:
    p = dp  # a schema_pb2.DualProof
    lp, ap = p.linearProof, p.LinearAdvanceProof  # type: ignore[attr-defined]
    return DualProof(
        _header(p.sourceTxHeader), _header(p.targetTxHeader),  # type: ignore[attr-defined]
        [bytes(t) for t in p.inclusionProof], [bytes(t) for t in p.consistencyProof],  # type: ignore[attr-defined]
        bytes(p.targetBlTxAlh), [bytes(t) for t in p.lastInclusionProof],  # type: ignore[attr-defined]
        LinearProof(int(lp.sourceTxId), int(lp.TargetTxId), [bytes(t) for t in lp.terms]),
        LinearAdvanceProof([bytes(t) for t in ap.linearProofTerms], [[bytes(t) for t in i.terms]
                                                                      for i in ap.inclusionProofs]),
    )


def test_dual_proof_verdicts_match_immudb_py_on_honest_and_altered_proofs(immudb_server: ImmudbServer) -> None:
    from immudb import schema
    from immudb.embedded import store
    from immudb.grpc import schema_pb2

    name = immudb_server.create_database()
    client = immudb_server.admin_client()
    try:
        client.useDatabase(name.encode())
        for i in range(40):
            client.set(f"k{i}".encode(), b"v")
        stub = client._stub
        checked = altered = 0
        for source in (1, 2, 3, 7, 8, 9, 16, 17, 31):
            for target in (source, source + 1, 33, 40):
                vtx = stub.VerifiableTxById(schema_pb2.VerifiableTxRequest(tx=target, proveSinceTx=source))
                dp = vtx.dualProof
                ours = _ours(dp)
                src_alh, tgt_alh = ours.source.alh, ours.target.alh
                theirs = store.VerifyDualProof(schema.DualProofFromProto(dp), source, target, src_alh, tgt_alh)
                assert theirs and dual_proof_holds(ours, source, target, src_alh, tgt_alh)
                checked += 1
                for field in ("inclusion", "consistency", "last_inclusion"):
                    terms = list(getattr(ours, field))
                    for n in range(len(terms)):
                        bad = terms.copy()
                        bad[n] = bytes([bad[n][0] ^ 1]) + bad[n][1:]
                        assert not dual_proof_holds(ours._replace(**{field: bad}), source, target, src_alh, tgt_alh)
                        altered += 1
                if len(ours.linear.terms) > 1:
                    bad = list(ours.linear.terms)
                    bad[-1] = bytes(32)
                    assert not dual_proof_holds(ours._replace(linear=ours.linear._replace(terms=bad)),
                                                source, target, src_alh, tgt_alh)
                assert not dual_proof_holds(ours, source, target, src_alh, bytes(32))
                if source < target:
                    assert not dual_proof_holds(ours, source, target, bytes(32), tgt_alh)
        assert checked == 36 and altered > 50
    finally:
        client.shutdown()


# -- the ledger through the gateway -----------------------------------------------------------------------------


def test_gateway_and_grpc_share_one_trusted_state(url: str, immudb_server: ImmudbServer, tmp_path: Path) -> None:

    state = tmp_path / "state"
    grpc_ledger = open_immudb(url, trust=TrustStore(state))
    first = grpc_ledger.write({"subject/a": b"one"})
    grpc_ledger.close()
    gw = open_gateway(url, immudb_server.gateway_url, state)
    second = gw.write({"subject/a": b"two", "job/local/1": b"{}"})
    assert gw.ledger_id == grpc_ledger.ledger_id
    assert [(e.tx, e.value) for e in gw.history("subject/a")] == [(first.tx, b"one"), (second.tx, b"two")]
    gw.close()
    again = open_immudb(url, trust=TrustStore(state))
    assert again.info().head.tx == second.tx and again.get("subject/a").value == b"two"  # type: ignore[union-attr]
    again.close()


def test_values_over_a_chunked_reply_read_back(url: str, immudb_server: ImmudbServer, tmp_path: Path) -> None:
    """The gateway switches to chunked transfer for bodies over 2 KiB: a 300 KB envelope crosses many chunks."""
    gw = open_gateway(url, immudb_server.gateway_url, tmp_path / "state")
    big = os.urandom(300_000)
    gw.write({"subject/big": big})
    assert gw.get("subject/big").value == big  # type: ignore[union-attr]
    assert gw.history("subject/big")[0].value == big


def test_login_token_is_cached_private_and_replaced_when_refused(url: str, immudb_server: ImmudbServer,
                                                                 tmp_path: Path) -> None:
    state = tmp_path / "state"
    open_gateway(url, immudb_server.gateway_url, state).close()
    [token] = state.glob("immudb-token-*")
    assert token.stat().st_mode & 0o777 == 0o600
    first = token.read_bytes()
    reopened = open_gateway(url, immudb_server.gateway_url, state)
    assert token.read_bytes() == first  # reused: no second login
    reopened.close()
    # a token the server refuses (forged, or from before a restart) but that claims a far expiry
    payload = base64.urlsafe_b64encode(json.dumps({"exp": "2999-01-01T00:00:00Z"}).encode() + bytes(64))
    forged = b"v2.public." + payload.rstrip(b"=") + b".x"
    token.write_bytes(forged)
    gw = open_gateway(url, immudb_server.gateway_url, state)
    gw.write({"subject/t": b"x"})
    assert gw.get("subject/t") is not None
    assert token.read_bytes().startswith(b"v2.public.") and token.read_bytes() != forged


def test_wrong_password_is_refused_in_one_line(url: str, immudb_server: ImmudbServer, tmp_path: Path) -> None:
    with pytest.raises(LedgerUnavailableError, match="refused user"):
        open_immudb(url, trust=TrustStore(tmp_path), gateway=immudb_server.gateway_url, password="wrong")


@pytest.mark.parametrize("gateway", ["ftp://127.0.0.1:8080", "http://u:p@127.0.0.1:8080", "http://h:8080/api",
                                     "http://127.0.0.1:0", "http://", "http://h:99999"])
def test_malformed_gateway_url_is_a_usage_error(url: str, tmp_path: Path, gateway: str) -> None:
    with pytest.raises(UsageError):
        open_immudb(url, trust=TrustStore(tmp_path), gateway=gateway)


def test_gateway_pointing_at_nothing_is_unavailable(url: str, tmp_path: Path) -> None:
    from tests.support.processes import free_port

    with pytest.raises(LedgerUnavailableError, match="unreachable"):
        open_immudb(url, trust=TrustStore(tmp_path), gateway=f"http://127.0.0.1:{free_port()}")


def test_gateway_pointing_at_the_grpc_port_is_unavailable(url: str, immudb_server: ImmudbServer,
                                                          tmp_path: Path) -> None:
    with pytest.raises(LedgerUnavailableError):
        open_immudb(url, trust=TrustStore(tmp_path), gateway=f"http://{immudb_server.address}")


def test_pinned_server_key_checks_every_state(url: str, immudb_server: ImmudbServer, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTARY_IMMUDB_SERVER_KEY", str(immudb_server.public_key))
    gw = open_gateway(url, immudb_server.gateway_url, tmp_path / "state")
    gw.write({"subject/s": b"x"})
    assert gw.get("subject/s").proof["checked"] == ["entry-inclusion", "dual-proof", "state-signature"]  # type: ignore[union-attr]


def test_a_key_other_than_the_servers_is_a_proof_error(url: str, immudb_server: ImmudbServer, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.immudb import write_signing_key

    (tmp_path / "other").mkdir()
    _, other_public = write_signing_key(tmp_path / "other")
    monkeypatch.setenv("NOTARY_IMMUDB_SERVER_KEY", str(other_public))
    with pytest.raises(ProofError, match="not signed by the pinned server key"):
        open_gateway(url, immudb_server.gateway_url, tmp_path / "state")


# -- a man in the middle ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("attack", ["value", "key", "tx", "inclusion-term", "header-eh", "linear-term",
                                    "state-hash", "revision-only-is-harmless"])
def test_rewritten_verifiable_get_is_refused(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                             tmp_path: Path, attack: str) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)

    def change(doc: dict) -> None:  # type: ignore[type-arg]
        entry, vtx = doc["entry"], doc["verifiableTx"]
        dp = vtx["dualProof"]
        if attack == "value":
            entry["value"] = b64(b"notarized")
        elif attack == "key":
            entry["key"] = b64(b"other")
        elif attack == "tx":
            entry["tx"] = str(int(entry["tx"]) - 1)
        elif attack == "inclusion-term":
            doc["inclusionProof"]["terms"] = [b64(bytes(32))] * len(doc["inclusionProof"].get("terms", [1]))
        elif attack == "header-eh":
            dp["targetTxHeader"]["eH"] = b64(bytes(32))
        elif attack == "linear-term":
            dp["linearProof"]["terms"][-1] = b64(bytes(32))
        elif attack == "state-hash":
            dp["sourceTxHeader"]["prevAlh"] = b64(bytes(32))
        else:
            entry["revision"] = "2"

    proxy.rewrite = json_rewrite("/verifiable/get", change)
    gw = open_gateway(url, proxy.url, state)
    if attack == "revision-only-is-harmless":
        assert gw.get("subject/m").value == b"revoked"  # type: ignore[union-attr]
        return
    with pytest.raises(ProofError):
        gw.get("subject/m")


def test_forged_current_state_is_refused(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                         tmp_path: Path) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)

    def change(doc: dict) -> None:  # type: ignore[type-arg]
        doc["txHash"] = b64(bytes(32))

    proxy.rewrite = json_rewrite("/db/state", change)
    with pytest.raises(RollbackError, match="forked"):
        open_gateway(url, proxy.url, state)


def test_state_behind_trust_is_a_rollback(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                          tmp_path: Path) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)

    def change(doc: dict) -> None:  # type: ignore[type-arg]
        doc["txId"] = "1"

    proxy.rewrite = json_rewrite("/db/state", change)
    with pytest.raises(RollbackError, match="rolled back"):
        open_gateway(url, proxy.url, state)


def test_another_server_answering_mid_session_is_refused(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                         tmp_path: Path) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    gw = open_gateway(url, proxy.url, state)

    def swap(path: str, reply: Reply) -> Reply:
        return reply._replace(headers=[(k, "otherserver1" if k.lower() == "grpc-metadata-immudb-uuid" else v)
                                       for k, v in reply.headers])

    proxy.rewrite = swap
    with pytest.raises(RollbackError, match="replaced"):
        gw.get("subject/m")


def test_a_write_answered_with_other_entries_is_refused(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                        tmp_path: Path) -> None:
    """The proxy names another writer's newer transaction as ours: its proof is valid, but it does not hold
    what notary wrote."""
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    gw = open_gateway(url, proxy.url, state)
    other = open_gateway(url, immudb_server.gateway_url, tmp_path / "other-state")
    proxy.paths.clear()

    def to_the_other_writers_tx(path: str, reply: Reply) -> Reply:
        if "/db/set" in path and reply.status == 200:
            doc = json.loads(reply.body)
            doc["id"] = str(int(doc["id"]) - 1)  # "your write is transaction N-1", written by someone else
            return reply._replace(body=json.dumps(doc).encode())
        return reply

    other.write({"subject/theirs": b"not yours"})  # after gw's trusted state: a new tx, not one gw verified
    proxy.rewrite = to_the_other_writers_tx
    with pytest.raises(ProofError, match="does not hold exactly"):
        gw.write({"subject/w": b"mine"})
    assert any(p.startswith("/api/db/verifiable/tx/") for p in proxy.paths)


def test_a_write_answered_with_a_transaction_already_verified_is_refused(
    url: str, immudb_server: ImmudbServer, proxy: HttpProxy, tmp_path: Path
) -> None:
    """An older transaction holding the same values would prove: any tx this client had verified before it
    wrote cannot be its write."""
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    gw = open_gateway(url, proxy.url, state)

    def to_older_tx(path: str, reply: Reply) -> Reply:
        if "/db/set" in path and reply.status == 200:
            doc = json.loads(reply.body)
            doc["id"] = str(int(doc["id"]) - 1)
            return reply._replace(body=json.dumps(doc).encode())
        return reply

    proxy.rewrite = to_older_tx
    with pytest.raises(ProofError, match="says the write is tx"):
        gw.write({"subject/w": b"mine"})


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"txId": "1", "txId": "2"}', b"\xff\xfe",
                                  b"not json", b'{"db": 5}'])
def test_hostile_gateway_bodies_are_one_error_not_a_crash(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                          tmp_path: Path, body: bytes) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    proxy.rewrite = lambda path, reply: reply._replace(body=body) if "/db/state" in path else reply
    with pytest.raises((ProofError, LedgerUnavailableError)):
        open_gateway(url, proxy.url, state)


def test_notary_verify_through_the_gateway_in_one_process(url: str, immudb_server: ImmudbServer,
                                                          tmp_path: Path) -> None:
    """The CLI end to end, and proof that the process never imported grpc or immudb-py."""
    notary = Notary(tmp_path, ledger_url=url)
    notary.env.update({"NOTARY_IMMUDB_PASSWORD": immudb_server.password,
                       "NOTARY_IMMUDB_GATEWAY": immudb_server.gateway_url})
    key = notary.key()
    artifact, _ = notary.notarize_file(key, b"release\n")
    notary.run("verify", str(artifact), "--key", f"{key}.pub")
    assert f"through its HTTP gateway {immudb_server.gateway_url}" in notary.run("ledger", "info").out
    notary.run("revoke", str(artifact), "--reason", "leaked", "--key", str(key))
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "notary.cli.main", "verify", str(artifact),
                          "--key", f"{key}.pub"], env=notary.env, capture_output=True, text=True, cwd=tmp_path,
                         timeout=60)
    assert out.returncode == 1 and "leaked" in out.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time")}
    assert "notary.ledger.immudb._gateway" in imported
    assert not {"grpc", "immudb", "google.protobuf", "http.client"} & imported


def test_history_listing_a_transaction_twice_is_refused(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                        tmp_path: Path) -> None:
    """Each listed version is re-read with a proof, so a repeated one would verify: the order must be strict."""
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)

    def change(doc: dict) -> None:  # type: ignore[type-arg]
        doc["entries"] = doc["entries"] + doc["entries"][-1:]

    proxy.rewrite = json_rewrite("/db/history", change)
    with pytest.raises(ProofError, match="lists tx"):
        open_gateway(url, proxy.url, state).history("subject/m")


def test_scan_pages_that_never_move_forward_end(url: str, immudb_server: ImmudbServer, proxy: HttpProxy,
                                                tmp_path: Path) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)

    def change(doc: dict) -> None:  # type: ignore[type-arg]
        doc["entries"] = [{"key": b64(b"subject/m"), "value": ""}] * 1000  # a full page, every time the same

    proxy.rewrite = json_rewrite("/db/scan", change)
    with pytest.raises(ProofError, match="does not move forward"):
        open_gateway(url, proxy.url, state).keys("subject/")


def test_a_trickling_gateway_times_out(url: str, immudb_server: ImmudbServer, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that sends a byte now and then never ends a reply: the whole reply has one deadline."""
    import socket
    import threading
    import time

    listener = socket.create_server(("127.0.0.1", 0))

    def trickle() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            for _ in range(100):
                conn.sendall(b"x")
                time.sleep(0.3)
        except OSError:
            pass
        finally:
            conn.close()

    threading.Thread(target=trickle, daemon=True).start()
    monkeypatch.setenv("NOTARY_IMMUDB_TIMEOUT", "1")
    started = time.monotonic()
    with pytest.raises(LedgerUnavailableError, match="timed out"):
        open_immudb(url, trust=TrustStore(tmp_path), gateway=f"http://127.0.0.1:{listener.getsockname()[1]}")
    assert time.monotonic() - started < 5
    listener.close()


# -- TLS: the gateway gives notary an encrypted channel to immudb (immudb-py has none) ------------------------------


@pytest.fixture(scope="module")
def tls_immudb(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    base = tmp_path_factory.mktemp("immudb-tls")
    cert, key = self_signed_cert(base / "pki")
    server = ImmudbServer(base / "data", tls=(cert, key)).start()
    yield server, cert
    server.stop()


def test_https_gateway_with_its_ca_reads_and_writes(tls_immudb: tuple[ImmudbServer, Path], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    server, cert = tls_immudb
    monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD", server.password)
    monkeypatch.setenv("NOTARY_IMMUDB_GATEWAY_CA", str(cert))
    gw = open_gateway(server.url, server.gateway_url, tmp_path / "state")
    receipt = gw.write({"subject/tls": b"over TLS"})
    assert gw.get("subject/tls").tx == receipt.tx  # type: ignore[union-attr]
    assert gw.info().details["gateway"].startswith("https://")


def test_https_gateway_with_an_unknown_certificate_is_refused(tls_immudb: tuple[ImmudbServer, Path],
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A man in the middle with his own certificate (here: the real server's, which the system does not trust)."""
    server, _ = tls_immudb
    monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD", server.password)
    with pytest.raises(LedgerUnavailableError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        open_gateway(server.url, server.gateway_url, tmp_path / "state")
    other, _ = self_signed_cert(tmp_path / "other-ca")
    monkeypatch.setenv("NOTARY_IMMUDB_GATEWAY_CA", str(other))
    with pytest.raises(LedgerUnavailableError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        open_gateway(server.url, server.gateway_url, tmp_path / "state")


@pytest.mark.parametrize("problem", ["http-gateway", "not-pem", "fifo"])
def test_gateway_ca_problems_are_usage_errors(url: str, immudb_server: ImmudbServer, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch, problem: str) -> None:
    ca = tmp_path / "ca.pem"
    if problem == "fifo":
        os.mkfifo(ca)
    else:
        ca.write_text("not a certificate\n" if problem == "not-pem" else self_signed_cert(tmp_path / "p")[0].read_text())
    gateway = immudb_server.gateway_url if problem == "http-gateway" else "https://127.0.0.1:1"
    monkeypatch.setenv("NOTARY_IMMUDB_GATEWAY_CA", str(ca))
    with pytest.raises(UsageError):
        open_immudb(url, trust=TrustStore(tmp_path / "state"), gateway=gateway)


# -- the verified mirror through the gateway: completeness without grpc ------------------------------------------


def _mirrored(url: str, gateway: str, state: Path) -> MirroredLedger:
    ledger = open_immudb(url, trust=TrustStore(state), gateway=gateway, mirror=True)
    assert isinstance(ledger, MirroredLedger) and isinstance(ledger.session.transport, GatewayTransport)
    return ledger


def test_mirror_through_the_gateway_replays_and_marks_reads(url: str, immudb_server: ImmudbServer,
                                                            tmp_path: Path) -> None:
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)
    ledger = _mirrored(url, immudb_server.gateway_url, state)
    assert ledger.last_catch_up[0] >= 2
    entry = ledger.get("subject/m")
    assert entry is not None and entry.value == b"revoked" and "mirror-replay" in entry.proof["checked"]
    assert [v.value for v in ledger.history("subject/m")] == [b"notarized", b"revoked"]
    assert ledger.get("never/written") is None
    report = ledger.audit()
    assert report.replayed == ledger.info().head.tx


@pytest.mark.parametrize("lie", ["history-without-the-revocation", "revocation-not-found"])
def test_withheld_revocation_passes_without_the_mirror_and_is_caught_with_it(
    url: str, immudb_server: ImmudbServer, proxy: HttpProxy, tmp_path: Path, lie: str
) -> None:
    """The attack the mirror exists for: the newest version (a revocation) withheld by a proxy on the gateway."""
    state = tmp_path / "state"
    notarized_then_revoked(url, immudb_server.gateway_url, state)

    def withhold(path: str, reply: Reply) -> Reply:
        if lie == "history-without-the-revocation" and "/db/history" in path and reply.status == 200:
            doc = json.loads(reply.body)
            doc["entries"] = doc["entries"][:-1]
            return reply._replace(body=json.dumps(doc).encode())
        if lie == "revocation-not-found" and "/db/verifiable/get" in path:
            return reply._replace(status=500, body=b'{"error":"tbtree: key not found","code":2,'
                                                   b'"message":"tbtree: key not found"}')
        return reply

    proxy.rewrite = withhold
    plain = open_gateway(url, proxy.url, tmp_path / "plain-state")
    if lie == "history-without-the-revocation":
        assert [v.value for v in plain.history("subject/m")] == [b"notarized"]  # the server's word, proven
    else:
        assert plain.get("subject/m") is None
    mirrored = _mirrored(url, proxy.url, state)
    with pytest.raises(ProofError, match="withholds|hides|newest|missing|not found"):
        if lie == "history-without-the-revocation":
            mirrored.history("subject/m")
        else:
            mirrored.get("subject/m")


def test_tls_immudb_gets_the_mirror_through_the_gateway(tls_immudb: tuple[ImmudbServer, Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    server, cert = tls_immudb
    monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD", server.password)
    monkeypatch.setenv("NOTARY_IMMUDB_GATEWAY_CA", str(cert))
    open_gateway(server.url, server.gateway_url, tmp_path / "state").write({"subject/t": b"x"})
    ledger = _mirrored(server.url, server.gateway_url, tmp_path / "state")
    assert "mirror-replay" in ledger.get("subject/t").proof["checked"]  # type: ignore[union-attr]
