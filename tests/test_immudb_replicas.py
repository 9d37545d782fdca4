"""Reading from an immudb replica while the primary is down: two real immudb processes on loopback, the second a
replica through immudb's own replication. What must hold: the replica is read as the primary's ledger, checked
against the same trusted state (no new trust, no false rollback); writes fail with exit 4 and nothing
half-written; when the primary returns, writes resume; a "replica" that is another ledger is exit 3; a client
that never read the primary cannot be pointed at a replica."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import Notary
from tests.support.immudb import ADMIN_PASSWORD, ADMIN_USER, ImmudbServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Pair:
    def __init__(self, root: Path) -> None:
        self.primary = ImmudbServer(root / "primary").start()
        self.replica = ImmudbServer(root / "replica", extra_args=(
            "--replication-is-replica", "--replication-primary-host", "127.0.0.1",
            "--replication-primary-port", str(self.primary.port),
            "--replication-primary-username", ADMIN_USER, "--replication-primary-password", ADMIN_PASSWORD,
        )).start()

    def caught_up(self, timeout: float = 30) -> None:
        want = self.primary.admin_client().currentState().txId
        deadline = time.monotonic() + timeout
        while self.replica.admin_client().currentState().txId < want:
            assert time.monotonic() < deadline, "the replica did not catch up"
            time.sleep(0.1)

    def kill_primary(self) -> None:
        assert self.primary.proc is not None
        self.primary.proc.send_signal(signal.SIGKILL)
        self.primary.proc.wait()
        self.primary.proc = None

    def stop(self) -> None:
        self.replica.stop()
        self.primary.stop()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    servers = Pair(tmp_path / "immudb")
    try:
        yield servers
    finally:
        servers.stop()


def _user(tmp_path: Path, pair: Pair, name: str = "ci") -> Notary:
    user = Notary(tmp_path / name, ledger_url=pair.primary.url)
    user.root.mkdir(parents=True, exist_ok=True)
    user.env.update({"NOTARY_IMMUDB_PASSWORD": ADMIN_PASSWORD, "NOTARY_IMMUDB_REPLICAS": pair.replica.address,
                     "NOTARY_IMMUDB_TIMEOUT": "3"})
    return user


def test_reads_go_on_from_the_replica_and_writes_fail_until_the_primary_is_back(pair: Pair, tmp_path: Path) -> None:
    user = _user(tmp_path, pair)
    key = user.key()
    artifact, digest = user.notarize_file(key, b"release 1")
    user.run("revoke", digest, "--reason", "CVE-2026-9", "--key", str(key))
    other, _ = user.notarize_file(key, b"release 2", name="two.bin", job_id="j2")
    pair.caught_up()
    pub = f"{key}.pub"
    before = user.trusted_state()
    pair.kill_primary()

    ok = user.run("--json", "verify", str(other), "--key", pub)
    assert ok.json["allowed"] is True and "replica" in ok.err, ok.err
    user.run("verify", str(artifact), "--key", pub, expect=1)  # the revocation is read from the replica too
    added = {k: json.loads(v) for k, v in user.trusted_state().items() if k not in before}
    # the replica is no ledger of its own: only its address is pinned, to the primary's ledger id
    assert [d["ledger_id"] for d in added.values()] == [f"immudb-address:{pair.replica.address}/defaultdb"]
    assert {d["extra"]["ledger_id"] for d in added.values()} == {ok.json["head"]["ledger_id"]}

    third = user.root / "three.bin"
    third.write_bytes(b"release 3")
    refused = user.run("notarize", str(third), "--job-id", "j3", "--key", str(key), expect=4)
    assert "read-only replica" in refused.err and "Traceback" not in refused.err

    pair.primary.start()
    user.run("notarize", str(third), "--job-id", "j3", "--key", str(key))
    assert user.run("--json", "verify", str(third), "--key", pub).json["allowed"] is True


def test_a_replica_that_is_another_ledger_is_an_integrity_error(pair: Pair, tmp_path: Path) -> None:
    user = _user(tmp_path, pair)
    key = user.key()
    artifact, _ = user.notarize_file(key, b"release 1")
    pair.caught_up()
    impostor = ImmudbServer(tmp_path / "impostor").start()  # a fresh immudb, not replicating anything
    try:
        writer = impostor.admin_client()
        for i in range(5):  # its own history, longer than the real one
            writer.set(f"k{i}".encode(), b"v")
        pair.kill_primary()
        result = user.run("verify", str(artifact), "--key", f"{key}.pub",
                          env={"NOTARY_IMMUDB_REPLICAS": impostor.address}, expect=3)
        assert "Traceback" not in result.err
    finally:
        impostor.stop()


def test_a_client_that_never_read_the_primary_cannot_start_from_a_replica(pair: Pair, tmp_path: Path) -> None:
    writer = _user(tmp_path, pair)
    key = writer.key()
    artifact, _ = writer.notarize_file(key, b"release 1")
    pair.caught_up()
    pair.kill_primary()
    newcomer = _user(tmp_path, pair, "newcomer")
    result = newcomer.run("verify", str(artifact), "--key", f"{key}.pub", expect=4)
    assert "read from the primary once" in result.err or "cannot be checked" in result.err, result.err
    assert newcomer.trusted_state() == {}


def test_a_primary_killed_during_notarizations_leaves_each_whole_or_absent(pair: Pair, tmp_path: Path) -> None:
    """notarize processes run back to back while the primary is SIGKILLed: each that said 0 is in the ledger
    whole once the primary is back; the one cut off said 4 (or 0) and is whole or absent, never half; reads
    from the replica meanwhile are answers (0 or 1) or "behind" (4), never an integrity error."""
    import subprocess
    import sys
    import threading

    user = _user(tmp_path, pair)
    key = user.key()
    user.notarize_file(key, b"seed")  # the client's trust of the primary, before the failure
    codes: dict[Path, int] = {}

    def notarize_many() -> None:
        for i in range(40):
            artifact = user.root / f"n{i}.bin"
            artifact.write_bytes(f"build {i}".encode())
            proc = subprocess.run([sys.executable, "-m", "notary.cli.main", "notarize", str(artifact), "--job-id",
                                   f"k{i}", "--key", str(key)], env=user.env, cwd=user.root, capture_output=True,
                                  text=True, timeout=60)
            codes[artifact] = proc.returncode
            assert proc.returncode in (0, 4) and "Traceback" not in proc.stderr, proc.stderr
            if proc.returncode == 4:
                return

    worker = threading.Thread(target=notarize_many)
    worker.start()
    time.sleep(2.0)
    pair.kill_primary()
    worker.join(timeout=120)
    assert codes and list(codes.values())[-1] == 4, f"the kill must land among the writes: {codes}"
    pub = f"{key}.pub"
    for artifact in codes:  # from the replica: an answer, or "behind" (its last commits may not have arrived:
        # replication is asynchronous), never a proof failure
        read = user.run("verify", str(artifact), "--key", pub, expect=None)
        assert read.code in (0, 1) or (read.code == 4 and "behind" in read.err), read.err
    pair.primary.start()
    for artifact, code in codes.items():
        result = user.run("--json", "verify", str(artifact), "--key", pub, expect=None)
        assert result.code in (0, 1), result.err
        if code == 0:
            assert result.code == 0, f"{artifact.name} was acknowledged but is not in the ledger"


def test_reads_go_to_the_replica_while_the_primary_is_up_and_writes_to_the_primary(pair: Pair, tmp_path: Path) -> None:
    """read_from = replicas: with the primary frozen (SIGSTOP: up, but answering no one), verify still answers
    from the replica, revocation included; a write waits on the primary and fails with exit 4."""
    user = _user(tmp_path, pair)
    user.env["NOTARY_IMMUDB_READ_FROM"] = "replicas"
    key = user.key()
    artifact, digest = user.notarize_file(key, b"release 1")  # first contact: no replica can be checked yet
    user.run("revoke", digest, "--reason", "CVE-2026-10", "--key", str(key))
    other, _ = user.notarize_file(key, b"release 2", name="two.bin", job_id="j2")
    pair.caught_up()
    pub = f"{key}.pub"
    assert pair.primary.proc is not None
    pair.primary.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        ok = user.run("--json", "verify", str(other), "--key", pub)
        assert ok.json["allowed"] is True and "reading from the immudb replica" in ok.err, ok.err
        assert time.monotonic() - started < 3, "the read waited on the frozen primary"
        user.run("verify", str(artifact), "--key", pub, expect=1)
        third = user.root / "three.bin"
        third.write_bytes(b"release 3")
        refused = user.run("notarize", str(third), "--job-id", "j3", "--key", str(key), expect=4)
        assert "Traceback" not in refused.err
    finally:
        pair.primary.proc.send_signal(signal.SIGCONT)
    user.run("notarize", str(third), "--job-id", "j3", "--key", str(key))
    # at once, the replica perhaps not caught up yet: behind is not a rollback, the read goes to the primary
    assert user.run("--json", "verify", str(third), "--key", pub).json["allowed"] is True


def test_with_the_replica_down_reads_go_to_the_primary(pair: Pair, tmp_path: Path) -> None:
    user = _user(tmp_path, pair)
    user.env["NOTARY_IMMUDB_READ_FROM"] = "replicas"
    key = user.key()
    artifact, _ = user.notarize_file(key, b"release 1")
    pair.replica.stop()
    result = user.run("--json", "verify", str(artifact), "--key", f"{key}.pub")
    assert result.json["allowed"] is True and "Traceback" not in result.err


def test_a_read_from_setting_that_is_neither_is_a_usage_error(pair: Pair, tmp_path: Path) -> None:
    user = _user(tmp_path, pair)
    user.env["NOTARY_IMMUDB_READ_FROM"] = "sometimes"
    result = user.run("ledger", "info", expect=2)
    assert "NOTARY_IMMUDB_READ_FROM" in result.err
