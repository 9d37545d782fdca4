"""kill -9 in the middle of a large notarize: the ledger still opens, verifies, and holds all of it or none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import Notary

FILES = 3000


@pytest.mark.slow
def test_kill_9_during_notarize_leaves_all_or_nothing(tmp_path: Path) -> None:
    notary = Notary(tmp_path)
    key = notary.key()
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(FILES):
        (tree / f"f{i:05d}.txt").write_bytes(f"file {i}\n".encode() * 50)
    # Calibrate: how long does a full run take here?
    start = time.monotonic()
    notary.run("notarize", str(tree), "--job-id", "calibrate", "--key", str(key))
    full = time.monotonic() - start
    killed = 0
    for attempt in range(12):
        job = f"crash-{attempt}"
        (tree / "f00000.txt").write_bytes(f"changed {attempt}\n".encode())  # a new subject each time
        proc = subprocess.Popen([sys.executable, "-m", "notary.cli.main", "notarize", str(tree), "--job-id", job,
                                 "--key", str(key)], env=notary.env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(full * (0.3 + 0.06 * attempt))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait()
        info = notary.run("--json", "ledger", "info")
        assert info.json["head"]["tree_size"] >= 1
        found = notary.run("--json", "lookup", "--job-id", job, expect=None)
        if found.code == 0:
            subjects = found.json["results"][0]["subjects"]
            digest = subjects[0]["digest"]
            history = notary.run("--json", "history", digest).json["subjects"][0]["versions"]
            assert history and len(history[0]["artifacts"]) == FILES
        else:
            assert found.code == 1 and "nothing recorded" in found.err, found.err
    assert killed >= 3, "the test must actually interrupt runs to mean anything"
