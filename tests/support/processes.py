"""Starting and stopping the real servers the tests run as child processes."""

from __future__ import annotations

import socket as _socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import requests


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


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, proc: subprocess.Popen[bytes], log: Path, ready: Callable[[], bool],
               timeout: float) -> None:
    """Return once ready() (an HTTP probe: its connection errors mean not yet); raise with the log's tail if
    proc exits first or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{what} exited with {proc.returncode}: {tail}")
        try:
            if ready():
                return
        except (requests.RequestException, ValueError):
            pass
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{what} was not ready within {timeout:.0f}s: {tail}")
        time.sleep(0.25)


def wait_for_socket(proc: subprocess.Popen[bytes], socket: Path, log: Path, what: str, timeout: float = 20) -> None:
    """Return once proc serves on socket; stop it and raise with its log if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while not socket.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_process(proc)
            raise RuntimeError(f"{what} did not start: {log.read_text(errors='replace')}")
        time.sleep(0.05)
