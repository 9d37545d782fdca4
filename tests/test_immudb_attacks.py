"""Attacks on and failures of the immudb ledger, each against real immudb processes on loopback.

Servers here are private (they get stopped, rolled back and swapped), so they do not disturb the session server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from notary.errors import IntegrityError, LedgerUnavailableError, ProofError, RollbackError
from notary.ledger import open_immudb
from notary.ledger.trust import TrustStore
from tests.support.immudb import ImmudbServer, free_port, fresh_immudb_url, immudb_binaries


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ImmudbServer]:
    immudb_binaries()
    srv = ImmudbServer(tmp_path / "data")
    try:
        srv.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield srv
    srv.stop()


def _restart_with(server: ImmudbServer, data: Path) -> None:
    server.stop()
    shutil.rmtree(server.data_dir)
    shutil.copytree(data, server.data_dir)
    server.start()


def _snapshot(server: ImmudbServer, dest: Path) -> None:
    server.stop()
    shutil.copytree(server.data_dir, dest)
    server.start()


def test_rolled_back_immudb_is_refused(server: ImmudbServer, tmp_path: Path) -> None:
    url = fresh_immudb_url(server)
    store = TrustStore(tmp_path / "trust")
    ledger = open_immudb(url, trust=store)
    ledger.write({"subject/a": b"notarized"})
    _snapshot(server, tmp_path / "old")
    ledger.write({"subject/a": b"revoked"})  # the log-in token died with the restart: re-login is transparent
    assert ledger.get("subject/a").value == b"revoked"  # type: ignore[union-attr]
    trusted = store.path_for(ledger.ledger_id).read_bytes()

    _restart_with(server, tmp_path / "old")  # the revocation is gone from the server
    with pytest.raises(RollbackError, match="rolled back"):
        ledger.get("subject/a")
    with pytest.raises(RollbackError, match="already verified tx 2"):
        open_immudb(url, trust=store)
    assert store.path_for(ledger.ledger_id).read_bytes() == trusted


def test_rolled_back_and_rewritten_immudb_fails_its_consistency_proof(server: ImmudbServer, tmp_path: Path) -> None:
    url = fresh_immudb_url(server)
    store = TrustStore(tmp_path / "trust")
    ledger = open_immudb(url, trust=store)
    ledger.write({"subject/a": b"notarized"})
    _snapshot(server, tmp_path / "old")
    ledger.write({"subject/a": b"revoked"})
    trusted = store.path_for(ledger.ledger_id).read_bytes()

    _restart_with(server, tmp_path / "old")
    admin = server.admin_client()  # the attacker writes new history past the trusted transaction
    admin.useDatabase(url.rsplit("/", 1)[1].encode())
    for i in range(3):
        admin.set(f"noise/{i}".encode(), b"x")
    admin.shutdown()
    for attempt in (lambda: ledger.get("subject/a"), ledger.info,
                    lambda: open_immudb(url, trust=store).get("subject/a")):
        with pytest.raises(ProofError, match="does not verify"):
            attempt()
    assert store.path_for(ledger.ledger_id).read_bytes() == trusted


def test_swapped_immudb_on_the_same_address_is_detected(server: ImmudbServer, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD", server.password)
    store = TrustStore(tmp_path / "trust")
    ledger = open_immudb(server.url, trust=store)
    ledger.write({"subject/a": b"notarized"})
    before = sorted((p.name, p.read_bytes()) for p in store.directory.iterdir())

    impostor_dir = tmp_path / "impostor"
    server.stop()
    impostor = ImmudbServer(impostor_dir, server.port).start()
    try:
        with pytest.raises(IntegrityError, match="not the ledger this client trusts"):
            open_immudb(server.url, trust=store)
        with pytest.raises(IntegrityError):
            ledger.get("subject/a")  # the long-lived client sees a server that is behind its trust
    finally:
        impostor.stop()
    assert sorted((p.name, p.read_bytes()) for p in store.directory.iterdir()) == before


def test_unreachable_immudb_is_unavailable_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD", "immudb")
    url = f"immudb://immudb@127.0.0.1:{free_port()}/defaultdb"
    with pytest.raises(LedgerUnavailableError) as err:
        open_immudb(url, trust=TrustStore(tmp_path / "trust"))
    assert "unreachable (connection refused)" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "trust").exists()


def test_wrong_password_is_unavailable_not_a_crash(server: ImmudbServer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD", "not-the-password")
    with pytest.raises(LedgerUnavailableError, match="wrong user name or password"):
        open_immudb(server.url, trust=TrustStore(tmp_path / "trust"))
    monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD", server.password)
    with pytest.raises(LedgerUnavailableError, match="has no database nosuchdb"):
        open_immudb(server.url_for("nosuchdb"), trust=TrustStore(tmp_path / "trust"))


def test_server_going_away_mid_session_is_unavailable(server: ImmudbServer, tmp_path: Path) -> None:
    url = fresh_immudb_url(server)
    store = TrustStore(tmp_path / "trust")
    ledger = open_immudb(url, trust=store)
    ledger.write({"a": b"1"})
    trusted = store.path_for(ledger.ledger_id).read_bytes()
    server.stop()
    with pytest.raises(LedgerUnavailableError, match="unreachable"):
        ledger.get("a")
    assert store.path_for(ledger.ledger_id).read_bytes() == trusted


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "notary", *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


def test_cli_exit_codes_for_immudb_failures(server: ImmudbServer, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTARY_")}
    env["NOTARY_STATE_DIR"] = str(tmp_path / "trust")
    down = f"immudb://immudb@127.0.0.1:{free_port()}/defaultdb"
    cases = [
        (down, {"NOTARY_IMMUDB_PASSWORD": "immudb"}, 4, "unreachable"),
        (server.url, {"NOTARY_IMMUDB_PASSWORD": "wrong"}, 4, "wrong user name or password"),
        (server.url, {}, 2, "no password"),
        ("immudb://immudb:pw@127.0.0.1:3322/defaultdb", {"NOTARY_IMMUDB_PASSWORD": "x"}, 2, "must not contain"),
    ]
    for url, extra, code, text in cases:
        done = _cli("--ledger", url, "ledger", "info", env={**env, **extra})
        assert done.returncode == code, (url, done.stderr)
        assert text in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
    ok = _cli("--ledger", server.url, "ledger", "info", env={**env, "NOTARY_IMMUDB_PASSWORD": server.password})
    assert ok.returncode == 0, ok.stderr

    _snapshot(server, tmp_path / "old")
    writer = open_immudb(server.url, trust=TrustStore(tmp_path / "trust"), password=server.password)
    writer.write({"a": b"1"})
    _restart_with(server, tmp_path / "old")
    rolled = _cli("--ledger", server.url, "ledger", "info", env={**env, "NOTARY_IMMUDB_PASSWORD": server.password})
    assert rolled.returncode == 3 and "rolled back" in rolled.stderr, rolled.stderr


def test_corrupt_trusted_state_fails_closed(server: ImmudbServer, tmp_path: Path) -> None:
    from notary.errors import TrustStoreError

    url = fresh_immudb_url(server)
    store = TrustStore(tmp_path / "trust")
    ledger = open_immudb(url, trust=store)
    ledger.write({"a": b"1"})
    path = store.path_for(ledger.ledger_id)
    path.write_text("{ not json")
    with pytest.raises(TrustStoreError, match="corrupt"):
        open_immudb(url, trust=store)
    assert path.read_text() == "{ not json", "a corrupt state is never silently replaced by the server's word"


def test_silent_server_times_out_as_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket
    import time

    monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD", "immudb")
    monkeypatch.setenv("NOTARY_IMMUDB_TIMEOUT", "1")
    with socket.socket() as silent:  # accepts connections, never speaks gRPC
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"immudb://immudb@127.0.0.1:{silent.getsockname()[1]}/defaultdb"
        started = time.monotonic()
        with pytest.raises(LedgerUnavailableError, match="unreachable"):
            open_immudb(url, trust=TrustStore(tmp_path / "trust"))
        assert time.monotonic() - started < 10


def test_password_file_is_read(server: ImmudbServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "immudb-password"
    secret.write_text(server.password + "\n")
    secret.chmod(0o600)
    monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD_FILE", str(secret))
    ledger = open_immudb(server.url, trust=TrustStore(tmp_path / "trust"))
    assert ledger.info().details["server_version"]


def test_benchmark_reports_rates(server: ImmudbServer) -> None:
    from benchmarks.immudb_ledger import bench_notarize_vs_raw

    numbers = bench_notarize_vs_raw(server.url_for(server.create_database()), server.password, 5)
    rates = [v for k, v in numbers.items() if k.endswith("_per_s")]
    assert len(rates) == 6 and all(r > 0 for r in rates) and numbers["ledger_vs_raw"] > 0


def test_value_tampered_on_the_servers_disk_is_an_integrity_error(server: ImmudbServer, tmp_path: Path) -> None:
    url = fresh_immudb_url(server)
    store = TrustStore(tmp_path / "trust")
    ledger = open_immudb(url, trust=store)
    ledger.write({"subject/t": b'{"status":"revoked","mark":"NOTARY-TAMPER"}'})
    ledger.write({"other": b"x"})
    trusted = store.path_for(ledger.ledger_id).read_bytes()
    server.stop()
    touched = 0
    for f in (server.data_dir / url.rsplit("/", 1)[1]).rglob("*"):
        if f.is_file() and b'"revoked","mark":"NOTARY-TAMPER"' in (data := f.read_bytes()):
            f.write_bytes(data.replace(b'"revoked","mark":"NOTARY-TAMPER"', b'"trusted","mark":"NOTARY-TAMPER"'))
            touched += 1
    assert touched, "the value was found in the server's files"
    server.start()
    with pytest.raises(IntegrityError, match="corrupted"):
        ledger.get("subject/t")
    assert store.path_for(ledger.ledger_id).read_bytes() == trusted
