"""The gate's decision log: one JSON line per decision, bounded and rotated, and read back for a recheck.

Every front end appends with one write(2) under O_APPEND, so concurrent gates (many hook processes, a server's
threads) never interleave a line. The log is bounded because the gate writes it on every container start: past
`max_bytes` the file is renamed to `<log>.1` (`.1` to `.2`, ..., the oldest beyond `keep` dropped) under an
exclusive flock of `<log>.lock`, and the size is checked again under the lock, so two processes that both saw a
full log rotate it once. A writer that opened the old file just before the rename finishes its line there: no
line is lost or split, it lands in `.1`.

The reader (`notary audit recheck`) is bounded too: at most MAX_LINE bytes per line and `max_lines` lines in
all, each parsed with notary.jsonsafe; a line that is not a decision is counted and reported, never guessed at.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from notary.errors import InputError, NotFoundError, UsageError
from notary.fsio import lock_within

DEFAULT_MAX_BYTES = 64 << 20
DEFAULT_KEEP = 5
MAX_KEEP = 100
MAX_LINE = 64 << 10
ROTATE_LOCK_SECONDS = 5.0  # longer, and the append is an OSError: the caller refuses, never hangs
_SIZE = re.compile(r"^([0-9]{1,15})\s*([KMG]i?B?|B)?\Z", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(value: object, where: str) -> int:
    """Bytes from an integer or a string such as "64MiB" / "512K" (binary units); at least 4 KiB, so a typo
    such as `64` (bytes) does not rotate the log on every line."""
    if isinstance(value, bool):
        raise UsageError(f"{where} must be a size such as \"64MiB\", not {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (m := _SIZE.match(value.strip())):
        size = int(m.group(1)) * _UNITS[(m.group(2) or "")[:1].lower()]
    else:
        raise UsageError(f"{where} must be a size such as \"64MiB\", not {str(value)[:40]!r}")
    if size < 4096:
        raise UsageError(f"{where} must be at least 4KiB, not {size} bytes")
    return size


class DecisionLog:
    """Appends decision lines to path (nothing when path is None), rotating past max_bytes."""

    def __init__(self, path: str | None, *, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self._lock = threading.Lock()

    def append(self, line: Mapping[str, object]) -> None:
        """Write one line; OSError (the caller decides what an unwritable log means for the decision)."""
        if not self.path:
            return
        data = (json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n").encode()
        with self._lock:
            # O_NONBLOCK on open only: a FIFO nobody reads is ENXIO (the allow is refused) instead of an open
            # that blocks the gate, and every container start behind it, forever
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
            try:
                fd = os.open(self.path, flags, 0o640)
            except FileNotFoundError:  # first decision: its directory is made as the log is
                os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
                fd = os.open(self.path, flags, 0o640)
            try:
                os.set_blocking(fd, True)  # a collector reading slowly is back-pressure, not a lost line
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                st = os.fstat(fd)  # only a regular file rotates: never rename /dev/stdout or a FIFO
                full = stat.S_ISREG(st.st_mode) and st.st_size >= self.max_bytes
            finally:
                os.close(fd)
            if full:
                self._rotate()

    def _rotate(self) -> None:
        assert self.path is not None
        lock = os.open(self.path + ".lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            lock_within(lock, ROTATE_LOCK_SECONDS, "the decision log's rotation lock")
            try:
                if os.stat(self.path).st_size < self.max_bytes:
                    return  # another process rotated it while this one waited
            except FileNotFoundError:
                return
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}.{self.keep}")
            for n in range(self.keep - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(f"{self.path}.{n}", f"{self.path}.{n + 1}")
            os.rename(self.path, f"{self.path}.1")
        finally:
            os.close(lock)  # releases the flock


def rotated_files(path: str | Path, keep: int = MAX_KEEP) -> list[Path]:
    """The log and its rotated siblings that exist, oldest first (`.N` ... `.1`, then the log itself)."""
    base = Path(path)
    found = [p for n in range(keep, 0, -1) if (p := base.with_name(f"{base.name}.{n}")).is_file()]
    return found + ([base] if base.is_file() else [])


@dataclass(frozen=True)
class LoggedDecision:
    """One line of a decision log, as far as a recheck needs it."""

    time: str
    front_end: str
    image: str | None
    digests: tuple[str, ...]
    allowed: bool
    via: str
    reason: str
    head: Mapping[str, object] | None
    where: str  # file:line, for the report


@dataclass
class LogRead:
    decisions: list[LoggedDecision]
    unreadable: list[str]  # file:line: why, for each line that is not a decision
    lines: int


def read_decisions(files: Sequence[Path], *, max_lines: int, since: datetime | None = None) -> LogRead:
    """Every decision in files (oldest file first), bounded; lines older than since are skipped."""
    from notary.jsonsafe import parse
    from notary.records import is_digest, parse_time

    out = LogRead([], [], 0)
    for file in files:
        for number, raw in _lines(file):
            out.lines += 1
            if out.lines > max_lines:
                raise InputError(f"the decision log has more than {max_lines} lines",
                                 hint="narrow it with --since, or raise --max-lines")
            where = f"{file}:{number}"
            if raw is None:
                out.unreadable.append(f"{where}: longer than {MAX_LINE} bytes")
                continue
            try:
                line = parse(raw, where)
                if not isinstance(line, dict):
                    raise InputError("not a JSON object")
                when = parse_time(str(line.get("time")))
                digests = line.get("digests") or ([line["digest"]] if line.get("digest") else [])
                if not isinstance(digests, list) or not all(isinstance(d, str) and is_digest(d) for d in digests):
                    raise InputError("digests are not sha256 digests")
                image = line.get("image")
                head = line.get("head")
                decided = LoggedDecision(str(line["time"]), str(line.get("front_end", "")),
                                         image if isinstance(image, str) else None, tuple(str(d) for d in digests),
                                         line.get("allowed") is True, str(line.get("via", "")),
                                         str(line.get("reason", "")), head if isinstance(head, dict) else None, where)
            except (InputError, KeyError, ValueError) as exc:
                message = exc.one_line() if isinstance(exc, InputError) else f"missing {exc}"
                out.unreadable.append(f"{where}: {message[:200]}")
                continue
            if since is None or when >= since:
                out.decisions.append(decided)
    return out


def _lines(file: Path) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) of each line; None for a line over MAX_LINE (skipped, not held in memory)."""
    try:
        handle = open(file, "rb")  # noqa: SIM115 - closed below; iterating lazily
    except FileNotFoundError as exc:
        raise NotFoundError(f"no decision log at {file}") from exc
    except OSError as exc:
        raise InputError(f"cannot read the decision log {file}: {exc.strerror}") from exc
    with handle:
        number = 0
        while True:
            chunk = handle.readline(MAX_LINE + 1)
            if not chunk:
                return
            number += 1
            if len(chunk) > MAX_LINE and not chunk.endswith(b"\n"):
                while chunk and not chunk.endswith(b"\n"):  # drain the rest of the over-long line
                    chunk = handle.readline(MAX_LINE + 1)
                yield number, None
                continue
            if chunk.strip():
                yield number, chunk
