"""The verified immudb mirror, against a real immudb and a real man in the middle (tests/support/grpc_proxy.py).

Each attack is first shown to work without the mirror (the lie passes: the test can fail), then to be caught
with it (exit 3 / IntegrityError), with the trusted state left where it was.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from notary.errors import ProofError, RollbackError, TrustStoreError, UsageError
from notary.ledger import open_immudb
from notary.ledger.immudb._mirrored import MirroredLedger
from notary.ledger.immudb.mirror import mirror_path
from notary.ledger.trust import TrustStore
from tests.support.cli import Notary
from tests.support.grpc_proxy import GrpcProxy, Rewrite
from tests.support.immudb import ImmudbServer, immudb_binaries
from tests.support.immudb_fixtures import fresh_database, grpc_man_in_the_middle  # noqa: F401 - fixtures "url", "proxy"


def _via(proxy: GrpcProxy, url: str) -> str:
    return f"immudb://immudb@{proxy.address}/{url.rsplit('/', 1)[1]}"


def _drop_newest_history_entry(raw: bytes) -> bytes:
    from immudb.grpc import schema_pb2

    answer = schema_pb2.Entries.FromString(raw)
    if len(answer.entries) > 1:
        del answer.entries[-1]  # notary asks oldest first: the last one is the newest version
    return answer.SerializeToString()


def _ask_at_tx(key: bytes, tx: int) -> Rewrite:
    def rewrite(raw: bytes) -> bytes:
        from immudb.grpc import schema_pb2

        request = schema_pb2.VerifiableGetRequest.FromString(raw)
        if request.keyRequest.key == key and request.keyRequest.atTx == 0:
            request.keyRequest.atTx = tx  # "now" becomes "the version written in tx": a proven, older answer
        return request.SerializeToString()

    return rewrite


def _ask_for_another_key(key: bytes, message: str) -> Rewrite:
    def rewrite(raw: bytes) -> bytes:
        from immudb.grpc import schema_pb2

        request = getattr(schema_pb2, message).FromString(raw)
        target = request.keyRequest if message == "VerifiableGetRequest" else request
        if target.key == key:
            target.key = b"subject/nothing-here"  # the server truthfully answers "key not found"
        return request.SerializeToString()

    return rewrite


def test_server_hiding_newest_revision_is_caught(url: str, proxy: GrpcProxy, tmp_path: Path) -> None:
    user = Notary(tmp_path, ledger_url=_via(proxy, url))
    user.env["NOTARY_IMMUDB_PASSWORD"] = "immudb"
    key = user.key()
    artifact, digest = user.notarize_file(key, b"release 1.4", job_id="77")
    user.run("revoke", digest, "--reason", "CVE-2026-1234", "--key", str(key))
    pub = f"{key}.pub"
    assert "was revoked" in user.run("verify", str(artifact), "--key", pub, expect=1).err

    proxy.responses["History"] = _drop_newest_history_entry  # the revocation vanishes from every history
    before = user.trusted_state()
    caught = user.run("verify", str(artifact), "--key", pub, expect=3)  # complete by default: no opting in
    assert "hides the newest versions" in caught.err and len(caught.err.strip().splitlines()) == 1, caught.err
    assert "Traceback" not in caught.err
    after = user.trusted_state()
    assert {k: v for k, v in after.items() if k in before} == before, "a failed check never moves trust"
    for args in (("history", str(artifact)), ("get", str(artifact)), ("history", str(artifact), "--key", pub)):
        assert "hides the newest versions" in user.run(*args, expect=3).err, args
    # the explicit opt-out is heard, and says what it gives up: the lie passes there
    lie = user.run("verify", str(artifact), "--key", pub, env={"NOTARY_IMMUDB_MIRROR": "0"}, expect=0)
    assert "notarized by" in lie.out and "mirror is off" in lie.err and "revocation" in lie.err, lie

    # `get` now: the proxy turns verifiedGet(key) into "the version written in the notarization's tx"
    proxy.responses.clear()
    plain = open_immudb(_via(proxy, url), trust=TrustStore(tmp_path / "plain"))
    mirrored = open_immudb(_via(proxy, url), trust=TrustStore(tmp_path / "mirrored"), mirror=True)
    subject_key = next(k for k in plain.keys("subject/"))
    versions = plain.history(subject_key)
    proxy.requests["VerifiableGet"] = _ask_at_tx(subject_key.encode(), versions[0].tx)
    assert plain.get(subject_key).tx == versions[0].tx  # type: ignore[union-attr]  # the lie passes
    with pytest.raises(ProofError, match="hides the newest version"):
        mirrored.get(subject_key)
    plain.close()
    mirrored.close()


def test_server_hiding_a_key_is_caught(url: str, proxy: GrpcProxy, tmp_path: Path) -> None:
    writer = open_immudb(url, trust=TrustStore(tmp_path / "writer"))
    writer.write({"subject/a": b"notarized"})
    writer.write({"subject/a": b"revoked", "job/j": b"{}"})
    plain = open_immudb(_via(proxy, url), trust=TrustStore(tmp_path / "plain"))
    mirrored = open_immudb(_via(proxy, url), trust=TrustStore(tmp_path / "mirrored"), mirror=True)
    proxy.requests["VerifiableGet"] = _ask_for_another_key(b"subject/a", "VerifiableGetRequest")
    proxy.requests["History"] = _ask_for_another_key(b"subject/a", "HistoryRequest")
    assert plain.get("subject/a") is None and plain.history("subject/a") == []  # the lie passes
    with pytest.raises(ProofError, match="not found.*hides the key"):
        mirrored.get("subject/a")
    with pytest.raises(ProofError, match="hides the newest versions"):
        mirrored.history("subject/a")
    with pytest.raises(ProofError, match="not found.*hides the key"):
        mirrored.get("subject/a", at_tx=2)  # as-of reads go through the history too
    assert mirrored.get("subject/never-written") is None  # absence the replay proves still reads as absent
    assert mirrored.keys("subject/") == ["subject/a"]  # keys come from the replay, not the server's scan
    for ledger in (writer, plain, mirrored):
        ledger.close()


def test_tampered_mirror_file_is_caught(url: str, tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "state")
    ledger = open_immudb(url, trust=store, mirror=True)
    ledger.write({"subject/a": b"notarized", "job/1": b"{}"})
    revocation = ledger.write({"subject/a": b"revoked"}).tx
    ledger.write({"job/2": b"{}"})
    assert ledger.get("subject/a").value == b"revoked"  # type: ignore[union-attr]
    path = mirror_path(store, ledger.ledger_id)
    assert path.stat().st_mode & 0o777 == 0o600
    pristine = tmp_path / "pristine.db"
    ledger.close()
    _copy_db(path, pristine)
    trusted = store.path_for(ledger.ledger_id).read_bytes()

    edits = {
        "deleted revocation": f"DELETE FROM entries WHERE tx = {revocation}",
        "renamed key": f"UPDATE entries SET key = x'00' || CAST('subject/b' AS BLOB) WHERE tx = {revocation}",
        "altered value hash": f"UPDATE entries SET hvalue = zeroblob(32) WHERE tx = {revocation}",
        "altered Alh": f"UPDATE txs SET alh = zeroblob(32) WHERE id = {revocation}",
        "dropped transaction": f"DELETE FROM txs WHERE id = {revocation}",
        "partial index": "DROP INDEX entries_by_key; "
                         f"CREATE INDEX entries_by_key ON entries (key, tx) WHERE tx != {revocation}",
        "other ledger": "UPDATE meta SET value = 'immudb:other/db' WHERE name = 'ledger_id'",
    }
    for name, sql in edits.items():
        _copy_db(pristine, path)
        with sqlite3.connect(path) as db:
            db.executescript(sql)
        with pytest.raises(TrustStoreError, match="mirror .* was altered"):
            open_immudb(url, trust=store, mirror=True)
        assert store.path_for(ledger.ledger_id).read_bytes() == trusted, name

    path.write_bytes(os.urandom(8192))  # not a database at all
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    with pytest.raises(TrustStoreError, match="was altered or is corrupt"):
        open_immudb(url, trust=store, mirror=True)

    # a resident process notices an edit made while it runs (another connection changed the file)
    _copy_db(pristine, path)
    resident = open_immudb(url, trust=store, mirror=True)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM entries WHERE tx = ?", (revocation,))
    with pytest.raises(TrustStoreError, match="was altered"):
        resident.get("subject/a")
    resident.close()

    # a mirror cut short (last transactions dropped consistently) is caught up again, never read short
    _copy_db(pristine, path)
    with sqlite3.connect(path) as db:
        db.executescript(f"DELETE FROM entries WHERE tx >= {revocation}; DELETE FROM txs WHERE id >= {revocation}; "
                         f"UPDATE meta SET value = {revocation - 1} WHERE name = 'last_tx';")
    healed = open_immudb(url, trust=store, mirror=True)
    assert healed.get("subject/a").value == b"revoked"  # type: ignore[union-attr]
    healed.close()


def test_tampered_mirror_is_exit_3_at_the_cli(url: str, tmp_path: Path) -> None:
    user = Notary(tmp_path, ledger_url=url)
    user.env.update({"NOTARY_IMMUDB_PASSWORD": "immudb", "NOTARY_IMMUDB_MIRROR": "1"})
    user.run("ledger", "info")
    ledger = open_immudb(url, trust=TrustStore(user.state_dir))
    ledger.write({"subject/a": b"v"})
    user.run("ledger", "mirror")
    path = mirror_path(TrustStore(user.state_dir), ledger.ledger_id)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE entries SET key = x'00' || CAST('subject/z' AS BLOB)")
    failed = user.run("ledger", "info", expect=3)
    assert "was altered" in failed.err and len(failed.err.strip().splitlines()) == 1, failed.err
    user.run("ledger", "mirror", "--rebuild")  # the remedy the error names
    user.run("ledger", "info")
    ledger.close()


def test_mirror_catches_up_incrementally(url: str, proxy: GrpcProxy, tmp_path: Path) -> None:
    from immudb.grpc import schema_pb2

    writer = open_immudb(url, trust=TrustStore(tmp_path / "writer"))
    writer.write_batch([{f"subject/{i}": b"x", f"job/{i}": b"{}", f"artifact/{i}": b"{}"} for i in range(5)])
    scans: list[int] = []

    def record(raw: bytes) -> bytes:
        scans.append(schema_pb2.TxScanRequest.FromString(raw).initialTx)
        return raw

    proxy.requests["TxScan"] = record
    store = TrustStore(tmp_path / "reader")
    reader = open_immudb(_via(proxy, url), trust=store, mirror=True)
    assert isinstance(reader, MirroredLedger) and reader.last_catch_up[0] == 5 and scans == [1]
    writer.write_batch([{f"subject/{i}": b"y"} for i in range(7)])
    assert reader.get("subject/3").value == b"y"  # type: ignore[union-attr]
    assert reader.last_catch_up[0] == 7 and scans == [1, 6], "only the new transactions are fetched"
    assert reader.get("subject/4").revision == 2 and scans == [1, 6]  # type: ignore[union-attr]
    reader.close()

    # a second process on the same state dir appends to the same mirror; the first re-checks and goes on
    first = open_immudb(_via(proxy, url), trust=store, mirror=True)
    second = open_immudb(_via(proxy, url), trust=store, mirror=True)
    writer.write({"subject/0": b"revoked"})
    assert second.get("subject/0").value == b"revoked"  # type: ignore[union-attr]
    assert first.get("subject/0").value == b"revoked"  # type: ignore[union-attr]
    assert first.last_catch_up[0] == 0 and first.mirror.last_tx == 13  # type: ignore[attr-defined]
    assert scans == [1, 6, 13]
    for ledger in (first, second, writer):
        ledger.close()


def test_audit_of_immudb_passes_on_an_honest_server(url: str, tmp_path: Path) -> None:
    writer = open_immudb(url, trust=TrustStore(tmp_path / "writer"))
    writer.write_batch([{f"subject/{i}": b"x", f"job/{i}": b"{}"} for i in range(40)])
    user = Notary(tmp_path, ledger_url=url)
    user.env["NOTARY_IMMUDB_PASSWORD"] = "immudb"
    report = user.run("--json", "ledger", "audit").json
    assert report["ok"] and report["replayed"] == report["transactions"] == 40
    assert report["entries"] == 80 and report["keys"] == 80
    assert "audit ok: replayed 40 transactions" in user.run("ledger", "audit").out
    writer.write({"subject/0": b"revoked"})
    status = user.run("--json", "ledger", "mirror").json
    assert status["tx"] == 41 and status["added"] == 1
    assert user.run("--json", "ledger", "mirror", "--rebuild").json["added"] == 41
    info = user.run("--json", "ledger", "info", env={"NOTARY_IMMUDB_MIRROR": "1"}).json
    assert info["details"]["mirror"]["tx"] == 41 and info["entries"] == 81
    mirrored = open_immudb(url, trust=TrustStore(tmp_path / "mirrored"), mirror=True)
    now, long_ago = datetime.now(timezone.utc), datetime(2000, 1, 1, tzinfo=timezone.utc)
    assert mirrored.tx_at_time(now) == writer.tx_at_time(now) == 41  # served from the replayed headers
    assert mirrored.tx_at_time(long_ago) is None
    mirrored.close()
    writer.close()


def test_audit_of_a_server_rewriting_a_transaction_fails(url: str, proxy: GrpcProxy, tmp_path: Path) -> None:
    from immudb.grpc import schema_pb2

    writer = open_immudb(url, trust=TrustStore(tmp_path / "writer"))
    writer.write_batch([{f"subject/{i}": b"x"} for i in range(6)])
    user = Notary(tmp_path, ledger_url=_via(proxy, url))
    user.env["NOTARY_IMMUDB_PASSWORD"] = "immudb"
    user.run("ledger", "audit")

    def rewrite_tx_3(raw: bytes) -> bytes:
        answer = schema_pb2.TxList.FromString(raw)
        for tx in answer.txs:
            if tx.header.id == 3:
                tx.entries[0].key = b"\x00subject/renamed"
        return answer.SerializeToString()

    proxy.responses["TxScan"] = rewrite_tx_3
    failed = user.run("ledger", "audit", expect=3)
    assert "transaction 3" in failed.err and "Traceback" not in failed.err, failed.err
    writer.close()


def test_every_gate_front_end_uses_the_mirror_by_default(url: str, proxy: GrpcProxy, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from notary import keys
    from notary.config import Config
    from notary.gate.decision import gate_for
    from notary.notarize import notarize, revoke
    from notary.sources import identify

    signer = keys.generate_private_key()
    pub = keys.write_key_pair(tmp_path / "ci.key", signer)
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"release 2")
    subjects = identify(str(artifact))
    writer = open_immudb(url, trust=TrustStore(tmp_path / "writer"))
    notarize(writer, subjects, signer, {"system": "local", "jobId": "1"})
    revoke(writer, subjects[0].digest, signer, "bad build")
    lying = _via(proxy, url)
    # a file, not an image: no repository names to bind (require_name_match is about images)
    config = Config(None, {"policy": {"require_name_match": False, "trust": [{"images": ["*"], "keys": [str(pub)]}]}})
    proxy.responses["History"] = _drop_newest_history_entry

    def decide(front_end: str, cfg: Config = config) -> tuple[int, bool]:
        monkeypatch.setenv("NOTARY_STATE_DIR", str(tmp_path / f"state-{front_end}-{len(os.listdir(tmp_path))}"))
        gate = gate_for(cfg, lying, front_end=front_end)
        try:
            decision = gate.check("registry.example.com/app:2", [subjects[0].digest])
            return decision.exit_code, isinstance(gate._ledger, MirroredLedger)
        finally:
            gate.close()

    for front_end in ("oci-hook-server", "docker-authz", "webhook", "check", "oci-hook"):
        assert decide(front_end) == (3, True), front_end  # every front end, one-shot ones too
    assert decide("check", Config(None, {**config.data, "immudb": {"mirror": False}})) == (0, False)
    monkeypatch.setenv("NOTARY_IMMUDB_MIRROR", "0")
    assert decide("webhook") == (0, False)
    monkeypatch.setenv("NOTARY_IMMUDB_MIRROR", "1")
    assert decide("oci-hook") == (3, True)
    monkeypatch.setenv("NOTARY_IMMUDB_MIRROR", "sometimes")
    with pytest.raises(UsageError, match="NOTARY_IMMUDB_MIRROR"):
        gate_for(config, lying, front_end="webhook")
    writer.close()


def test_replay_hashes_every_kind_of_entry_like_immudb(immudb_server: ImmudbServer, url: str, tmp_path: Path) -> None:
    """SQL rows, sorted sets, deletions and expiring entries all hash into the chain the replay rebuilds."""
    import datetime

    from immudb import schema
    from immudb.grpc import schema_pb2

    database = url.rsplit("/", 1)[1].encode()
    admin = immudb_server.admin_client()
    admin.useDatabase(database)
    admin.set(b"subject/gone", b"1")
    admin.setAll({b"subject/kept": b"2", b"job/x": b"3"})
    admin.sqlExec("CREATE TABLE t (id INTEGER, PRIMARY KEY id)")
    admin.sqlExec("INSERT INTO t (id) VALUES (1)")
    admin.zAdd(b"set", 1.0, b"subject/kept")
    admin.delete(schema_pb2.DeleteKeysRequest(keys=[b"subject/gone"]))
    admin.expireableSet(b"subject/expiring", b"4", datetime.datetime(2100, 1, 1))
    ledger = open_immudb(url, trust=TrustStore(tmp_path / "state"), mirror=True)
    head = ledger.info().head.tx
    assert ledger.mirror.last_tx == head  # type: ignore[attr-defined]  # the chain ended at the server's Alh
    for tx in range(1, head + 1):  # and each Alh is what immudb-py's own hashing gives for that header
        header = admin._stub.TxById(schema_pb2.TxRequest(tx=tx)).header
        assert ledger.mirror.header(tx).alh == schema.TxHeaderFromProto(header).Alh()  # type: ignore[attr-defined]
    assert ledger.keys("subject/") == ["subject/expiring", "subject/kept"]  # the deleted key is gone
    assert ledger.get("subject/gone") is None
    assert [v.tx for v in ledger.history("subject/kept")] == [2]
    with pytest.raises(ProofError, match="expiring version"):
        ledger.get("subject/expiring")
    admin.shutdown()
    ledger.close()


def _copy_db(source: Path, dest: Path) -> None:
    """Copy a SQLite database consistently (WAL folded in) and drop dest's stale WAL/SHM files."""
    for suffix in ("-wal", "-shm"):
        dest.with_name(dest.name + suffix).unlink(missing_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    with sqlite3.connect(source) as src, sqlite3.connect(tmp) as out:
        src.backup(out)
    shutil.move(tmp, dest)
    dest.chmod(0o600)


def test_rolled_back_server_is_refused_with_the_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Also when this client's trusted state lags its mirror (a crash between the two writes): the mirror's
    own rows then show the server went back."""
    immudb_binaries()
    server = ImmudbServer(tmp_path / "data").start()
    monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD", server.password)
    try:
        store = TrustStore(tmp_path / "state")
        ledger = open_immudb(server.url, trust=store, mirror=True)
        for i in range(3):
            ledger.write({f"subject/{i}": b"notarized"})
        ledger.get("subject/0")
        lagging = store.path_for(ledger.ledger_id).read_bytes()  # trust (and mirror) at tx 3
        ledger.close()
        server.stop()
        shutil.copytree(server.data_dir, tmp_path / "at-tx-3")
        server.start()
        ledger = open_immudb(server.url, trust=store, mirror=True)
        ledger.write({"subject/0": b"revoked"})
        ledger.write({"subject/1": b"revoked"})
        assert ledger.get("subject/0").value == b"revoked"  # type: ignore[union-attr]  # mirror at tx 5
        ledger.close()
        server.stop()
        shutil.rmtree(server.data_dir)
        shutil.copytree(tmp_path / "at-tx-3", server.data_dir)
        server.start()  # the revocations are gone from the server
        with pytest.raises(RollbackError, match="rolled back"):
            open_immudb(server.url, trust=store, mirror=True)
        store.path_for(ledger.ledger_id).write_bytes(lagging)  # trust at tx 3, as the server; the mirror at 5
        with pytest.raises(RollbackError, match="mirror already holds tx 5"):
            open_immudb(server.url, trust=store, mirror=True)
        assert store.path_for(ledger.ledger_id).read_bytes() == lagging
    finally:
        server.stop()


def test_large_transactions_are_replayed_in_smaller_pages(immudb_server: ImmudbServer, url: str,
                                                         tmp_path: Path) -> None:
    """A page of big transactions exceeds gRPC's 4 MiB answer limit: the catch-up shrinks its pages."""
    admin = immudb_server.admin_client()
    admin.useDatabase(url.rsplit("/", 1)[1].encode())
    for t in range(40):
        admin.setAll({f"artifact/sha256:{t:04d}{i:060d}/sha256:{i:064d}".encode(): b"{}" for i in range(1000)})
    admin.shutdown()
    ledger = open_immudb(url, trust=TrustStore(tmp_path / "state"), mirror=True)
    from notary.ledger.immudb._grpc import GrpcTransport

    assert isinstance(ledger, MirroredLedger) and isinstance(ledger.session.transport, GrpcTransport)
    assert ledger.last_catch_up[0] == 40 and ledger.mirror.entries == 40_000
    assert ledger.session.transport.scan_page < 40
    assert len(ledger.keys("artifact/sha256:0039")) == 1000
    ledger.close()


def test_server_hiding_a_signer_is_caught_by_default(url: str, proxy: GrpcProxy, tmp_path: Path) -> None:
    """Two signers on one digest; the proxy hides every answer about the second one (its subject key and the
    signer index versions naming it are 'not found' / dropped). history without --key must not read
    'all proofs verified' with that signer gone: the default mirror proves the signer set complete."""
    user = Notary(tmp_path, ledger_url=_via(proxy, url))
    user.env["NOTARY_IMMUDB_PASSWORD"] = "immudb"
    a, b = user.key("a"), user.key("b")
    artifact, digest = user.notarize_file(a, b"release 9", job_id="a1")
    user.run("notarize", str(artifact), "--job-id", "b1", "--key", str(b))
    user.run("revoke", digest, "--reason", "CVE-2026-4321", "--key", str(b))
    honest = user.run("--json", "history", digest).json["subjects"][0]
    assert len(honest["signer_set"]["signers"]) == 2 and len(honest["versions"]) == 3
    b_id = next(v["signer"] for v in honest["versions"] if v["type"] == "revocation")
    proxy.requests["History"] = _ask_for_another_key(f"subject/{digest}/{b_id}".encode(), "HistoryRequest")
    proxy.requests["VerifiableGet"] = _ask_for_another_key(f"subject/{digest}/{b_id}".encode(),
                                                           "VerifiableGetRequest")
    for args in (("history", digest), ("get", digest)):
        caught = user.run(*args, expect=3)
        assert "hides" in caught.err and "Traceback" not in caught.err, caught.err
    lie = user.run("--json", "history", digest, env={"NOTARY_IMMUDB_MIRROR": "0"}, expect=0)  # opted out
    assert len(lie.json["subjects"][0]["versions"]) == 1 and "mirror is off" in lie.err


def test_server_hiding_a_job_finder_as_of_a_tx_is_caught(url: str, proxy: GrpcProxy, tmp_path: Path) -> None:
    """lookup --at-tx on immudb: the finders written up to N, complete by the mirror; a proxy that makes the
    server say 'not found' for a job's key is caught, not reported as 'nothing recorded as of N'."""
    user = Notary(tmp_path, ledger_url=_via(proxy, url))
    user.env["NOTARY_IMMUDB_PASSWORD"] = "immudb"
    key = user.key()
    user.notarize_file(key, b"first build", name="one.bin", job_id="j1")
    found = user.run("--json", "lookup", "--job-id", "j1").json["results"]
    at = found[0]["tx"]
    user.notarize_file(key, b"second build", name="two.bin", job_id="j2")
    assert [r["tx"] for r in user.run("--json", "lookup", "--job-id", "j1", "--at-tx", str(at)).json["results"]] == [at]
    later = user.run("--json", "lookup", "--job-id", "j2", "--at-tx", str(at), expect=1).json["error"]
    assert {p["method"] for p in later["absence"]} == {"mirror-replay"} and later["head"]["tx"] > at
    proxy.requests["History"] = _ask_for_another_key(b"job/local/j1", "HistoryRequest")
    caught = user.run("lookup", "--job-id", "j1", "--at-tx", str(at), expect=3)
    assert "Traceback" not in caught.err, caught.err
    user.run("lookup", "--job-id", "j1", "--at-tx", str(at), env={"NOTARY_IMMUDB_MIRROR": "0"}, expect=1)  # the lie
