"""A byte progress bar on stderr, shown only on a terminal and never with --json."""

from __future__ import annotations

import sys
import threading
import time


class TerminalProgress:
    """Thread-safe (hashing runs in worker threads); redraws at most ten times a second."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.total = 0
        self.done = 0
        self.started = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()
        self._drawn = False

    def add_total(self, nbytes: int) -> None:
        with self._lock:
            self.total += nbytes

    def advance(self, nbytes: int) -> None:
        with self._lock:
            self.done += nbytes
            now = time.monotonic()
            if now - self._last >= 0.1:
                self._last = now
                self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed / 1e6
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            text = f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}% {self.done / 1e6:,.0f}/{self.total / 1e6:,.0f} MB {rate:,.0f} MB/s"
        else:
            text = f"\r{self.label} {self.done / 1e6:,.0f} MB {rate:,.0f} MB/s"
        sys.stderr.write(text)
        sys.stderr.flush()
        self._drawn = True

    def finish(self) -> None:
        with self._lock:
            if self._drawn:
                self._draw(time.monotonic())
                sys.stderr.write("\n")
                sys.stderr.flush()
