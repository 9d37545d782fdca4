"""Prometheus metrics and server logs for the resident gate front ends (hook server, Docker plugin, webhook).

Written by hand in the text exposition format (version 0.0.4): a handful of metric families do not justify a
client library in a process that sits in front of every container start. What is exposed:

- `notary_gate_decisions_total{front_end,decision,exit_code}`: every decision, including refusals made
  before the ledger was consulted (bad input, busy), as in the decision log;
- `notary_gate_decision_duration_seconds{front_end}`: histogram of Gate.check latency (policy, proven ledger
  reads, the decision-log write);
- `notary_gate_proof_failures_total{front_end}`: decisions that were integrity failures (exit 3: a proof,
  signature or rollback check failed), the number to alert on;
- `notary_gate_ledger_tree_size` and `notary_gate_ledger_head_age_seconds`: the newest ledger head this
  process has verified, and the seconds since it last verified one (a proven read). The age grows while the
  ledger is unreachable or broken, or while no decision needs it;
- `notary_build_info{version,python,implementation}` 1: which notary and interpreter answer, so a fleet's
  versions can be counted and a rollout watched (`count by (version) (notary_build_info)`);
- the Prometheus client conventions' process metrics, read from /proc/self at scrape time (never on the
  decision path) and left out where there is no /proc rather than failing the scrape:
  `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
  `process_open_fds`, `process_max_fds`; and `process_start_time_seconds` (when the metrics were set up).

Every counter and histogram series a front end can produce exists at zero from start-up (`declare`, which
ObservedGate calls with its gate's front end): `increase()` and `rate()` need a sample before the first event,
otherwise a series born at 1 shows no increase and the first proof failure never alerts. The label sets are
bounded and known: allow is exit 0, refuse is exit 1 (refused), 2 (bad input), 3 (integrity) or 4
(unreachable, busy, decision log unwritable), as notary.errors defines them.

`ObservedGate` wraps a Gate: every check and log_only is counted, timed and (refusals) logged, and the
call itself is the Gate's, unchanged. `ServerLog` writes the servers' own lines to stderr, as text or as
one JSON object per line (`--log-format json`), for journald or `kubectl logs`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import IO, TYPE_CHECKING

from notary import __version__

if TYPE_CHECKING:
    from notary.gate.decision import Gate, GateDecision
    from notary.ledger.base import TreeHead
from notary.errors import EXIT_INTEGRITY, EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE, EXIT_USAGE

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LOG_FORMATS = ("text", "json")
# every (decision, exit code) a GateDecision can carry: these series exist at zero before the first decision
OUTCOMES = (("allow", EXIT_OK), ("refuse", EXIT_REFUSED), ("refuse", EXIT_USAGE), ("refuse", EXIT_INTEGRITY),
            ("refuse", EXIT_UNAVAILABLE))
PROC = "/proc/self"
_PY = sys.version_info
BUILD = (("version", __version__), ("python", f"{_PY.major}.{_PY.minor}.{_PY.micro}"),
         ("implementation", sys.implementation.name))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Sequence[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in pairs) + "}" if pairs else ""


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def _family(name: str, kind: str, doc: str, value: float) -> list[str]:
    return [f"# HELP {name} {doc}", f"# TYPE {name} {kind}", f"{name} {_number(value)}"]


def process_metrics(proc: str = PROC) -> list[str]:
    """The exposition lines of the process metrics Prometheus client libraries export, under the same names and
    units so stock dashboards and alerts work; each source that cannot be read (no /proc: not Linux, a
    sandbox) leaves its metrics out, because a scrape that fails hides the gate's own numbers too."""
    out: list[str] = []
    try:
        with open(f"{proc}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        # fields after the command name, which may hold spaces and parentheses: state is field 3 of proc(5)
        fields = stat[stat.rindex(")") + 2:].split()
        ticks, page = os.sysconf("SC_CLK_TCK"), os.sysconf("SC_PAGE_SIZE")
        cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime, fields 14 and 15
        vsize, rss = int(fields[20]), int(fields[21]) * page  # fields 23 (bytes) and 24 (pages)
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    else:
        out += _family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
                       float(cpu))
        out += _family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vsize)
        out += _family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss)
    try:
        fds = len(os.listdir(f"{proc}/fd"))
    except OSError:
        pass
    else:
        out += _family("process_open_fds", "gauge", "Number of open file descriptors.", fds)
    try:
        with open(f"{proc}/limits", encoding="ascii", errors="replace") as f:
            soft = next(line.split()[3] for line in f if line.startswith("Max open files"))
        out += _family("process_max_fds", "gauge", "Maximum number of open file descriptors.", int(soft))
    except (OSError, ValueError, IndexError, StopIteration):
        pass  # "unlimited" has no number: no sample rather than a made-up one
    return out


class Metrics:
    """Counters, a latency histogram and ledger freshness for one process; thread-safe, bounded (labels come
    from a fixed set: front ends, allow/refuse, exit codes 0-4)."""

    def __init__(self, *, clock: Callable[[], float] = time.time, front_ends: Sequence[str] = (), proc: str = PROC) -> None:
        self._clock = clock
        self._proc = proc
        self._lock = threading.Lock()
        self._decisions: dict[tuple[str, str, str], int] = {}
        self._proof_failures: dict[str, int] = {}
        self._latency: dict[str, list[float]] = {}  # front end -> bucket counts, then sum, then count
        self._tree_size: int | None = None
        self._verified_at: float | None = None
        self._started = clock()
        for front_end in front_ends:
            self.declare(front_end)

    def declare(self, front_end: str) -> None:
        """Give front_end's series their zero samples now, so the first decision is an increase from 0."""
        with self._lock:
            for decision, code in OUTCOMES:
                self._decisions.setdefault((front_end, decision, str(code)), 0)
            self._proof_failures.setdefault(front_end, 0)
            self._latency.setdefault(front_end, [0.0] * (len(BUCKETS) + 2))

    def observe(self, decision: GateDecision, front_end: str, seconds: float | None = None) -> None:
        """Count one decision (a GateDecision); seconds: how long Gate.check took, if it was one."""
        code = int(getattr(decision, "exit_code", 0) or 0)
        key = (front_end, "allow" if decision.allowed else "refuse", str(code))
        with self._lock:
            self._decisions[key] = self._decisions.get(key, 0) + 1
            if code == 3:
                self._proof_failures[front_end] = self._proof_failures.get(front_end, 0) + 1
            tree = getattr(decision, "tree_size", None)
            if isinstance(tree, int) and decision.via == "verified" and code != 3:
                self._tree_size = max(tree, self._tree_size or 0)
                self._verified_at = self._clock()
            if seconds is not None:
                row = self._latency.setdefault(front_end, [0.0] * (len(BUCKETS) + 2))
                for i, bound in enumerate(BUCKETS):
                    if seconds <= bound:
                        row[i] += 1
                row[-2] += seconds
                row[-1] += 1

    def render(self) -> str:
        """The text exposition of every metric, as of now (the process metrics read /proc only here)."""
        now = self._clock()
        process = process_metrics(self._proc)
        with self._lock:
            decisions = sorted(self._decisions.items())
            failures = sorted(self._proof_failures.items())
            latency = sorted((k, list(v)) for k, v in self._latency.items())
            tree, verified = self._tree_size, self._verified_at
        out = ["# HELP notary_gate_decisions_total Gate decisions, by front end, decision and exit code.",
               "# TYPE notary_gate_decisions_total counter"]
        out += [f"notary_gate_decisions_total{_labels([('front_end', f), ('decision', d), ('exit_code', c)])} {n}"
                for (f, d, c), n in decisions]
        out += ["# HELP notary_gate_decision_duration_seconds Time to decide (policy, proven ledger reads, log).",
                "# TYPE notary_gate_decision_duration_seconds histogram"]
        for front_end, row in latency:
            for i, bound in enumerate(BUCKETS):
                labels = _labels([("front_end", front_end), ("le", _number(bound))])
                out.append(f"notary_gate_decision_duration_seconds_bucket{labels} {int(row[i])}")
            inf = _labels([("front_end", front_end), ("le", "+Inf")])
            out.append(f"notary_gate_decision_duration_seconds_bucket{inf} {int(row[-1])}")
            out.append(f"notary_gate_decision_duration_seconds_sum{_labels([('front_end', front_end)])} "
                       f"{_number(row[-2])}")
            out.append(f"notary_gate_decision_duration_seconds_count{_labels([('front_end', front_end)])} "
                       f"{int(row[-1])}")
        out += ["# HELP notary_gate_proof_failures_total Decisions refused for an integrity failure (exit 3).",
                "# TYPE notary_gate_proof_failures_total counter"]
        out += [f"notary_gate_proof_failures_total{_labels([('front_end', f)])} {n}" for f, n in failures]
        out += ["# HELP notary_gate_ledger_tree_size Size of the newest ledger head this process has verified.",
                "# TYPE notary_gate_ledger_tree_size gauge"]
        if tree is not None:
            out.append(f"notary_gate_ledger_tree_size {tree}")
        out += ["# HELP notary_gate_ledger_head_age_seconds Seconds since this process last verified a ledger "
                "head (since start if never).",
                "# TYPE notary_gate_ledger_head_age_seconds gauge",
                f"notary_gate_ledger_head_age_seconds {max(0.0, now - (verified or self._started))!r}",
                "# HELP process_start_time_seconds Start time of the process since the Unix epoch in seconds.",
                "# TYPE process_start_time_seconds gauge",
                f"process_start_time_seconds {_number(self._started)}",
                "# HELP notary_build_info The notary version and Python interpreter of this process (always 1).",
                "# TYPE notary_build_info gauge",
                f"notary_build_info{_labels(BUILD)} 1", *process]
        return "\n".join(out) + "\n"


class ServerLog:
    """The servers' own lines on stderr (start, stop, warnings, refusals), as text or JSON lines."""

    def __init__(self, fmt: str = "text", stream: IO[str] | None = None) -> None:
        if fmt not in LOG_FORMATS:
            raise ValueError(f"log format {fmt!r} is not one of {LOG_FORMATS}")
        self.fmt = fmt
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, level: str, message: str, **fields: object) -> None:
        if self.fmt == "json":
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
            line = json.dumps({"time": stamp, "level": level, "msg": message,
                               **{k: v for k, v in fields.items() if v is not None}}, sort_keys=True)
        else:
            extra = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
            prefix = "" if level == "info" else f"{level}: "
            line = f"notary: {prefix}{message}" + (f" ({extra})" if extra else "")
        stream = self._stream or sys.stderr
        with self._lock:
            stream.write(line.replace("\n", " ") + "\n")
            stream.flush()

    def info(self, message: str, **fields: object) -> None:
        self.write("info", message, **fields)

    def warning(self, message: str, **fields: object) -> None:
        self.write("warning", message, **fields)


class ObservedGate:
    """A Gate whose decisions are also counted, timed and (refusals) logged; the rest is the inner Gate's."""

    def __init__(self, gate: Gate, metrics: Metrics, log: ServerLog | None = None) -> None:
        self._gate = gate
        self.metrics = metrics
        self.server_log = log
        self.front_end = gate.front_end
        self.policy = gate.policy
        metrics.declare(gate.front_end)  # every front end passes its gate's name: its series start at 0

    def check(self, image: str | None, digests: Sequence[str], *, now: datetime | None = None,
              front_end: str | None = None, extra: Mapping[str, object] | None = None) -> GateDecision:
        start = time.perf_counter()
        decision = self._gate.check(image, digests, now=now, front_end=front_end, extra=extra)
        self._seen(decision, front_end, time.perf_counter() - start)
        return decision

    def verified_head(self) -> TreeHead:
        return self._gate.verified_head()

    def log_only(self, decision: GateDecision, now: datetime | None = None) -> None:
        self._gate.log_only(decision, now)
        self._seen(decision, None, None)

    def close(self, timeout: float | None = None) -> bool:
        return self._gate.close(timeout)

    def _seen(self, decision: GateDecision, front_end: str | None, seconds: float | None) -> None:
        where = front_end or self._gate.front_end
        self.metrics.observe(decision, where, seconds)
        if self.server_log is not None and not decision.allowed:
            self.server_log.warning(f"refused {decision.image or decision.digest or 'unknown image'}",
                                    front_end=where, digest=decision.digest, exit_code=decision.exit_code,
                                    reason=decision.reason,
                                    container=decision.extra.get("container"), action=decision.extra.get("action"))
