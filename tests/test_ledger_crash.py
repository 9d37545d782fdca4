"""kill -9 in the middle of a write leaves the embedded ledger with all of that transaction or none of it,
and the ledger still opens and verifies afterwards."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.local_ledger import ledger_path, open_local

ENTRIES = 48
VALUE_SIZE = 1 << 20

_CHILD = textwrap.dedent(
    """
    import os, sys
    from notary.ledger.embedded import EmbeddedLedger
    from notary.ledger.trust import TrustStore
    url, state, mode, n, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    ledger = EmbeddedLedger.open(url, trust=TrustStore(state), create=False)
    values = {f"crash/{i:04d}": os.urandom(size) for i in range(n)}
    print("writing", flush=True)
    if mode == "write":
        ledger.write(values)
    else:
        ledger.write_batch([{k: v} for k, v in values.items()])
    print("committed", flush=True)
    """
)


def _attempt(tmp_path: Path, mode: str, delay: float) -> bool:
    """Run one writer, SIGKILL it `delay` s after it starts writing; True if it died before committing."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, ledger_path(tmp_path).as_uri(), str(tmp_path / "state"), mode,
         str(ENTRIES), str(VALUE_SIZE)],
        stdout=subprocess.PIPE, env=env, text=True,
    )
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "writing"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        rest = child.stdout.read()
    finally:
        child.kill()
        child.wait()
    return "committed" not in rest


def _check_all_or_none(tmp_path: Path, before_size: int) -> int:
    with open_local(tmp_path, create=False) as ledger:
        info = ledger.info()  # verifies the head and its consistency with the trusted state
        keys = ledger.keys("crash/")
        assert keys == [] or len(keys) == ENTRIES, f"partial transaction: {len(keys)} of {ENTRIES} entries"
        grown = info.head.tree_size - before_size
        assert grown in (0, ENTRIES), f"the ledger grew by {grown} leaves, not 0 or {ENTRIES}"
        for key in keys[:: max(1, ENTRIES // 4)]:
            entry = ledger.get(key)
            assert entry is not None and len(entry.value) == VALUE_SIZE
        assert ledger.get("before").value == b"intact"  # type: ignore[union-attr]
        return info.head.tree_size


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["write", "write_batch"])
def test_kill_during_a_large_write_leaves_all_or_none(tmp_path: Path, mode: str) -> None:
    with open_local(tmp_path) as ledger:
        ledger.write({"before": b"intact"})
    rng = random.Random(20260)
    size, caught, tries = 1, 0, 0
    while caught < 2 and tries < 12:
        tries += 1
        died_early = _attempt(tmp_path, mode, rng.uniform(0.0, 0.4) if tries > 1 else 0.05)
        new_size = _check_all_or_none(tmp_path, size)
        if died_early and new_size == size:
            caught += 1  # killed mid-write: nothing of the transaction may remain
        size = new_size
    assert caught >= 1, "never managed to kill the writer mid-transaction"
