"""The gate's decision log: bounded, rotated once by many writers at a time, never a device renamed, and
written by `gate check` only when asked (a question from a shell is not an admission)."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from notary.errors import UsageError
from notary.gate.decision_log import DecisionLog, parse_size, read_decisions, rotated_files
from tests.support.runtimes import GateWorld

GOOD = "sha256:" + "a1" * 32


def _writer(path: str, n: int, who: int) -> None:
    log = DecisionLog(path, max_bytes=4096, keep=100)
    for i in range(n):
        log.append({"time": "2026-12-01T00:00:00Z", "who": who, "i": i, "digest": GOOD, "pad": "x" * 100})


def test_concurrent_writers_rotate_without_losing_or_splitting_a_line(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    procs = [multiprocessing.get_context("fork").Process(target=_writer, args=(str(path), 150, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    files = rotated_files(path)
    assert len(files) > 5, "4 x 150 lines of ~200 bytes must have rotated a 4 KiB log many times"
    seen = set()
    for f in files:
        for line in f.read_text().splitlines():
            obj = json.loads(line)  # a split or interleaved line would not parse
            seen.add((obj["who"], obj["i"]))
    assert seen == {(w, i) for w in range(4) for i in range(150)}
    assert all(f.stat().st_size < 4096 + 4 * 300 for f in files[:-1])


def test_rotation_keeps_only_the_configured_number_of_old_files(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(str(path), max_bytes=4096, keep=3)
    for i in range(400):
        log.append({"time": "2026-12-01T00:00:00Z", "i": i, "pad": "y" * 100})
    names = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("decisions.jsonl."))
    assert names == ["decisions.jsonl.1", "decisions.jsonl.2", "decisions.jsonl.3", "decisions.jsonl.lock"]


def test_a_log_that_is_a_fifo_is_never_renamed(tmp_path: Path) -> None:
    """/dev/stdout in a pod, a FIFO to a collector: no size to rotate on, and renaming it would break it."""
    fifo = tmp_path / "decisions.jsonl"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    # a writer held open for the whole test: the reader sees EOF only when it closes, not between two
    # lines (each append opens and closes the FIFO)
    holder = os.open(fifo, os.O_WRONLY)
    log = DecisionLog(str(fifo), max_bytes=4096, keep=2)
    for i in range(100):
        log.append({"i": i, "pad": "z" * 100})
    os.close(holder)
    reader.join(10)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and not (tmp_path / "decisions.jsonl.1").exists()
    assert len(b"".join(got).splitlines()) == 100


def test_a_fifo_nobody_reads_is_an_error_not_a_hang(tmp_path: Path) -> None:
    """A collector that died leaves its FIFO behind: the gate must answer (refuse the allow), never block."""
    fifo = tmp_path / "decisions.jsonl"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(OSError) as raised:
        DecisionLog(str(fifo)).append({"i": 0})
    assert raised.value.errno == errno.ENXIO and time.monotonic() - started < 5


@pytest.mark.parametrize("value", ["64", 100, "abc", True, "-1M", "1T", "9" * 20])
def test_a_size_that_would_rotate_on_every_line_or_is_not_a_size_is_a_usage_error(value: object) -> None:
    with pytest.raises(UsageError):
        parse_size(value, "decision_log_max_size")


def test_sizes_are_binary_units() -> None:
    assert parse_size("64MiB", "x") == 64 << 20 and parse_size("512K", "x") == 512 << 10
    assert parse_size(8192, "x") == 8192


def test_hostile_log_lines_are_counted_not_guessed(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    good = {"time": "2026-12-01T00:00:00Z", "front_end": "oci-hook", "image": "registry.example/app",
            "digests": [GOOD], "allowed": True, "via": "verified", "reason": "ok"}
    path.write_bytes(b"\n".join([
        json.dumps(good).encode(),
        b"{not json",
        json.dumps({**good, "digests": ["sha256:short"]}).encode(),
        json.dumps({**good, "time": "yesterday"}).encode(),
        b'{"time": "2026-12-01T00:00:00Z", "a": 1, "a": 2}',  # duplicate key
        b"[" * 10000 + b"]" * 10000,  # nesting depth
        b"x" * (70 << 10),  # over the line bound
        json.dumps(good).encode(),
    ]) + b"\n")
    read = read_decisions([path], max_lines=100)
    assert len(read.decisions) == 2 and len(read.unreadable) == 6
    assert all(w.startswith(f"{path}:") for w in read.unreadable)


def test_gate_check_without_log_writes_no_decision_log(tmp_path: Path) -> None:
    """The example policy's /var/log path, here a directory that does not exist: a check from a shell
    neither creates it nor appends; with --log it does."""
    from notary.sources.base import Subject

    world = GateWorld(tmp_path / "w")
    world.notarize(Subject(GOOD, "registry.example/app", "oci-manifest", names=("registry.example/app",)))
    log = tmp_path / "var-log-notary" / "decisions.jsonl"
    config = world.config.read_text().replace(f'decision_log = "{world.log}"', f'decision_log = "{log}"')
    assert config != world.config.read_text()
    world.config.write_text(config)
    run = [sys.executable, "-m", "notary.cli.main", "gate", "check", f"registry.example/app@{GOOD}"]
    proc = subprocess.run(run, env=world.env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert not log.parent.exists()
    proc = subprocess.run([*run, "--log"], env=world.env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    line = json.loads(log.read_text())
    assert line["front_end"] == "check" and line["decision"] == "allow"
    assert line["head"]["tx"] >= 1 and len(line["head"]["root_hash"]) == 64


def test_unreachable_ledger_refusal_is_logged_as_fail_closed_not_verified(tmp_path: Path) -> None:
    world = GateWorld(tmp_path / "w")
    world.write_policy(ledger_url=(tmp_path / "nowhere" / "ledger.db").as_uri())
    proc = world.gate_check(f"registry.example/app@{GOOD}")
    assert proc.returncode == 4, proc.stderr
    line = world.decisions()[-1]
    assert line["via"] == "fail-closed" and line["status"] == "unreachable" and "head" not in line


def test_gate_check_with_a_dead_collectors_fifo_refuses_instead_of_hanging(tmp_path: Path) -> None:
    """An allow that cannot be recorded is refused (exit 4), and promptly: the hook path has a deadline."""
    from notary.sources.base import Subject

    world = GateWorld(tmp_path / "w")
    world.notarize(Subject(GOOD, "registry.example/app", "oci-manifest", names=("registry.example/app",)))
    os.mkfifo(world.log)
    started = time.monotonic()
    proc = world.gate_check(f"registry.example/app@{GOOD}")
    assert proc.returncode == 4, proc.stderr
    assert "cannot write the decision log" in proc.stdout + proc.stderr
    assert time.monotonic() - started < 30
