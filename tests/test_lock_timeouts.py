"""A process that holds one of notary's file locks and never lets go (stopped with SIGSTOP, hung on a stalled
disk) costs one clear refusal, never every caller behind it waiting forever: the gate's trusted state, the
decision log's rotation, a witness's state. The holder here is a real second process with a real flock."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from notary import fsio
from notary.errors import LedgerUnavailableError
from notary.sources.base import Subject
from tests.support.runtimes import GateWorld

DIGEST = "sha256:" + "ab" * 32


def _hold(path: Path) -> subprocess.Popen[str]:
    """A second process holding an exclusive flock on path until killed (what a stopped notary leaves)."""
    proc = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture
def holder() -> Iterator[list[subprocess.Popen[str]]]:
    held: list[subprocess.Popen[str]] = []
    yield held
    for proc in held:
        proc.kill()
        proc.wait()


def test_an_uncontended_lock_is_taken_at_once(tmp_path: Path) -> None:
    import os

    fd = os.open(tmp_path / "l", os.O_RDWR | os.O_CREAT, 0o600)
    started = time.monotonic()
    fsio.lock_within(fd, 5, "the test lock")
    assert time.monotonic() - started < 0.05
    os.close(fd)


def test_a_lock_held_forever_is_a_timeout_error_within_its_bound(tmp_path: Path,
                                                                 holder: list[subprocess.Popen[str]]) -> None:
    import os

    holder.append(_hold(tmp_path / "l"))
    fd = os.open(tmp_path / "l", os.O_RDWR | os.O_CREAT, 0o600)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="stayed locked by another process for 0.3 s"):
        fsio.lock_within(fd, 0.3, "the test lock")
    assert 0.3 <= time.monotonic() - started < 1.5
    os.close(fd)
    with pytest.raises(LedgerUnavailableError):  # a caller's own error type, e.g. exit 4
        fd = os.open(tmp_path / "l", os.O_RDWR)
        try:
            fsio.lock_within(fd, 0.1, "x", error=LedgerUnavailableError)
        finally:
            os.close(fd)


@pytest.mark.slow
def test_a_stopped_process_holding_the_trusted_state_lock_is_a_refusal_not_a_hung_gate(
        tmp_path: Path, holder: list[subprocess.Popen[str]]) -> None:
    world = GateWorld(tmp_path / "world")
    world.notarize(Subject(DIGEST, "registry.example/app:1", "oci-manifest"))
    assert world.gate_check(DIGEST).returncode == 0  # the gate's trusted state now exists, with its lock file
    locks = list(world.gate_state.glob("*.lock"))
    assert len(locks) == 1, locks
    holder.append(_hold(locks[0]))
    started = time.monotonic()
    refused = world.gate_check(DIGEST)
    waited = time.monotonic() - started
    assert refused.returncode == 4, refused.stderr
    assert "stayed locked by another process" in refused.stderr and "Traceback" not in refused.stderr
    assert waited < 30, f"the gate waited {waited:.0f} s"
    assert world.decisions()[-1]["allowed"] is False
    holder.pop().kill()
    assert world.gate_check(DIGEST).returncode == 0  # and once the holder is gone, the gate decides again


def test_a_held_rotation_lock_makes_the_append_an_oserror_not_a_hang(
        tmp_path: Path, holder: list[subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    from notary.gate import decision_log

    monkeypatch.setattr(decision_log, "ROTATE_LOCK_SECONDS", 0.3)
    log = decision_log.DecisionLog(str(tmp_path / "decisions.jsonl"), max_bytes=4096, keep=2)
    holder.append(_hold(tmp_path / "decisions.jsonl.lock"))
    started = time.monotonic()
    with pytest.raises(OSError, match="rotation lock"):
        for _ in range(100):  # past max_bytes: the append that rotates must wait for the lock
            log.append({"allowed": True, "pad": "x" * 200})
    assert time.monotonic() - started < 5
