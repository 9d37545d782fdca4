"""Re-deciding what a gate admitted with today's rules, as of any point of the ledger's history.

The decision log says what the gate admitted, when, and on which proven head. A recheck reads each admitted
image again through the gate's own decision (gate.decision.LedgerGate, so it cannot disagree with a gate running
the same policy), against a view of the ledger cut at the point asked (AsOf: every proven history truncated
at that transaction, which is the complete as-of answer because each history is proven complete), with the
point's time as "now" for max_age and break-glass expiry. What would now be refused is the answer.

The log itself is not signed (it is the gate host's file), so the recheck also holds each head a decision
names against the ledger: on the embedded ledger a logged head must be a prefix of today's verified head
(RFC 9162 consistency), or the gate was shown another history (a split view, exit 3); a head of another
ledger, or ahead of today's, is a finding too. immudb heads are listed as not checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from notary import merkle
from notary.errors import ProofError
from notary.gate.decision import GateDecision, LedgerGate
from notary.gate.decision_log import DecisionLog, LoggedDecision
from notary.gate.policy import Policy
from notary.ledger.base import Entry, HistoryReader, LedgerInfo, TreeHead, written_by


class AsOf:
    """A HistoryReader of ledger as of transaction tx: each proven history cut after tx."""

    def __init__(self, ledger: HistoryReader, tx: int) -> None:
        self.ledger = ledger
        self.tx = tx

    def history(self, key: str) -> list[Entry]:
        return [e for e in self.ledger.history(key) if written_by(self.ledger, e, self.tx)]

    def info(self) -> LedgerInfo:
        return self.ledger.info()

    def close(self) -> None:
        """The ledger is the caller's: closing the view leaves it open."""


class CheckpointedAsOf(AsOf):
    """AsOf over the embedded ledger, which a policy's [policy.witnesses] can check a checkpoint against: the
    witnessed prefix is then cut at the checkpoint's size and, within it, at the point (both cuts hold)."""

    @property
    def ledger_id(self) -> str:
        return str(self.ledger.ledger_id)  # type: ignore[attr-defined]  # an embedded ledger's (as_of checks)

    @property
    def public_raw(self) -> bytes:
        return bytes(self.ledger.public_raw)  # type: ignore[attr-defined]

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        return list(self.ledger.consistency_proof(size1, size2))  # type: ignore[attr-defined]


def as_of(ledger: HistoryReader, tx: int) -> AsOf:
    """The view a recheck decides on: one a witness policy can use where the ledger allows it."""
    if all(hasattr(ledger, name) for name in ("public_raw", "consistency_proof", "ledger_id")):
        return CheckpointedAsOf(ledger, tx)
    return AsOf(ledger, tx)


@dataclass
class Admitted:
    """One image the log shows admitted (all its admissions), and what the gate says about it now."""

    image: str | None
    digests: tuple[str, ...]
    first: LoggedDecision
    last: LoggedDecision
    times: int
    now: GateDecision | None = None

    def to_json(self) -> dict[str, object]:
        assert self.now is not None
        return {"image": self.image, "digests": list(self.digests), "admissions": self.times,
                "first_admitted": self.first.time, "last_admitted": self.last.time,
                "last_front_end": self.last.front_end, "last_via": self.last.via, "last_head": self.last.head,
                "where": self.last.where, "decision": self.now.to_json()}


@dataclass
class HeadFinding:
    head: dict[str, object]
    where: str
    problem: str

    def to_json(self) -> dict[str, object]:
        return {"head": self.head, "where": self.where, "problem": self.problem}


@dataclass
class Recheck:
    as_of_tx: int
    as_of_time: datetime
    admitted: list[Admitted] = field(default_factory=list)
    head_findings: list[HeadFinding] = field(default_factory=list)
    heads_checked: int = 0
    heads_unchecked: int = 0

    @property
    def refused(self) -> list[Admitted]:
        return [a for a in self.admitted if a.now is not None and not a.now.allowed]


def group_admitted(decisions: Iterable[LoggedDecision]) -> list[Admitted]:
    """Admissions by (image, digests), oldest first: an image started a thousand times is rechecked once."""
    groups: dict[tuple[str | None, tuple[str, ...]], Admitted] = {}
    for d in decisions:
        if not d.allowed or not d.digests:
            continue
        key = (d.image, d.digests)
        seen = groups.get(key)
        if seen is None:
            groups[key] = Admitted(d.image, d.digests, d, d, 1)
        else:
            seen.last, seen.times = d, seen.times + 1
    return list(groups.values())


def recheck(ledger: HistoryReader, policy: Policy, decisions: Iterable[LoggedDecision], *, as_of_tx: int,
            as_of_time: datetime) -> Recheck:
    """Decide every admitted image again with policy as of as_of_tx (its time as now)."""
    gate = LedgerGate(policy, lambda: as_of(ledger, as_of_tx), front_end="recheck")
    gate.log = DecisionLog(None)  # a recheck admits nothing: the log stays the gate's record
    out = Recheck(as_of_tx, as_of_time, group_admitted(decisions))
    for item in out.admitted:
        item.now = gate.check(item.image, item.digests, now=as_of_time)
    return out


def check_heads(result: Recheck, decisions: Iterable[LoggedDecision], head: TreeHead,
                consistency: Callable[[int, int], list[bytes]] | None) -> None:
    """Hold each distinct logged head against today's verified head (see the module docstring)."""
    seen: set[tuple[object, ...]] = set()
    for d in decisions:
        h = d.head
        if not h:
            continue
        key = (h.get("ledger_id"), h.get("tree_size"), h.get("root_hash"))
        if key in seen:
            continue
        seen.add(key)
        problem = _head_problem(h, head, consistency)
        if problem is None:
            result.heads_checked += 1
        elif problem == "":
            result.heads_unchecked += 1
        else:
            result.head_findings.append(HeadFinding(dict(h), d.where, problem))


def _head_problem(logged: Mapping[str, object], head: TreeHead,
                  consistency: Callable[[int, int], list[bytes]] | None) -> str | None:
    """None when logged is a prefix of head; "" when it cannot be checked here; else what is wrong."""
    if logged.get("ledger_id") != head.ledger_id:
        return f"decided on ledger {str(logged.get('ledger_id'))[:80]!r}, not this ledger ({head.ledger_id})"
    size, root_hex = logged.get("tree_size"), logged.get("root_hash")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or not isinstance(root_hex, str):
        return "the logged head has no tree size and root"
    if size > head.tree_size:
        return (f"decided on a head at size {size}, beyond this client's verified head ({head.tree_size}): "
                "read the ledger again, or the gate was shown another history")
    if consistency is None:
        return ""
    try:
        root = bytes.fromhex(root_hex)
        merkle.verify_consistency(size, head.tree_size, root, head.root, consistency(size, head.tree_size)
                                  if size < head.tree_size else [])
    except ValueError:
        return "the logged head's root is not hex"
    except ProofError as exc:
        return (f"split view: the gate decided on a head at size {size} that is not a prefix of the verified "
                f"head at size {head.tree_size}: {exc.message}")
    return None
