"""Starting and stopping the real servers the tests run as child processes."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = 10) -> None:
    """SIGTERM (what a service manager sends), then SIGKILL if it has not exited within grace seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def wait_for_socket(proc: subprocess.Popen[bytes], socket: Path, log: Path, what: str, timeout: float = 20) -> None:
    """Return once proc serves on socket; stop it and raise with its log if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while not socket.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            raise RuntimeError(f"{what} did not start: {log.read_text(errors='replace')}")
        time.sleep(0.05)
