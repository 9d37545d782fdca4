"""One decision path for every gate front end: policy -> verified ledger read -> decision -> log line.

The hook, the webhook, the authz plugin, the containerd verifier and `gate check` all call `Gate.check`, so
they cannot disagree. Everything fails closed: a broken proof refuses (exit 3), an unreachable ledger refuses
(exit 4) unless the policy says `fail = "open"`, and any unexpected exception refuses too. Every decision,
including break-glass and fail-open allows, is written as one JSON line before it is returned; an allow that
cannot be logged becomes a refusal.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol

from notary.config import Config
from notary.errors import (
    EXIT_INTEGRITY,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    IntegrityError,
    LedgerUnavailableError,
    NotaryError,
)
from notary.gate.decision_log import DecisionLog
from notary.gate.policy import Policy
from notary.ledger.base import HistoryReader, Ledger, TreeHead, rfc3339
from notary.names import normalize_name

if TYPE_CHECKING:
    from notary.attest.require import Requirement
    from notary.environment import Environment
    from notary.gate.witnessed import Witnessed
    from notary.status import TrustedKey
    from notary.verify import Decision

ALLOW, REFUSE = "allow", "refuse"
# how the gate reached a decision: the ledger's word, a policy allow-list, a fail-open allow, the policy alone
# (no rule or no digest), an error before the ledger was asked, or a Docker call about nothing that exists;
# fail-closed: the ledger could not be asked and the policy refuses then (no proof was checked)
Via = Literal["verified", "break-glass", "fail-open", "fail-closed", "policy", "error", "absent"]


class GateDecision(NamedTuple):
    """What the gate said about one image, and why (a typed, immutable value; built with keywords).

    exit_code follows the CLI contract (notary.errors): 0 allowed, 1 refused, 2 bad input, 3 integrity,
    4 unreachable. A NamedTuple rather than a dataclass: the runtime hook imports this on every start.
    """

    image: str | None
    digest: str | None
    allowed: bool
    exit_code: int
    reason: str
    via: Via
    tree_size: int | None = None
    status: str | None = None
    signer: str | None = None
    digests: tuple[str, ...] = ()
    extra: Mapping[str, object] = MappingProxyType({})
    head: TreeHead | None = None  # the proven head a verified decision rests on (a recheck starts there)

    def __repr__(self) -> str:
        return f"GateDecision({self.decision} {self.image or self.digest}: {self.reason})"

    @property
    def decision(self) -> str:
        return ALLOW if self.allowed else REFUSE

    def to_json(self) -> dict[str, object]:
        return {
            "image": self.image,
            "digest": self.digest,
            "digests": list(self.digests),
            "decision": self.decision,
            "allowed": self.allowed,
            "exit_code": self.exit_code,
            "via": self.via,
            "status": self.status,
            "signer": self.signer,
            "reason": self.reason,
            "tree_size": self.tree_size,
            **({"head": {"ledger_id": self.head.ledger_id, "tx": self.head.tx, "tree_size": self.head.tree_size,
                         "root_hash": self.head.root.hex()}} if self.head is not None else {}),
            **self.extra,
        }


class GateReader(HistoryReader, Protocol):
    """What a Gate decides from: proven histories and the head (a Ledger is one; so is a recheck's view of a
    ledger as of a past transaction, notary.audit.recheck.AsOf), and a way to let it go."""

    def close(self) -> None: ...


class Gate(Protocol):
    """What every front end asks (the hook, the webhook, the authz plugin, the containerd verifier, `gate
    check`): a LedgerGate, or one wrapped to be observed (notary.gate.metrics.ObservedGate)."""

    front_end: str
    policy: Policy

    def check(self, image: str | None, digests: Sequence[str], *, now: datetime | None = None,
              front_end: str | None = None, extra: Mapping[str, object] | None = None) -> GateDecision: ...

    def verified_head(self) -> TreeHead: ...

    def log_only(self, decision: GateDecision, now: datetime | None = None) -> None: ...

    def close(self, timeout: float | None = None) -> bool: ...


class LedgerGate:
    """Policy plus a way to reach the ledger. Thread-safe: servers share one gate across requests.

    The ledger is opened on first use and kept; ledger access is serialized (the embedded backend's SQLite
    connection and the trusted-state file are per process, and proofs are cheap compared to a request).
    After an unreachable-ledger error the ledger is reopened on the next request.
    """

    def __init__(self, policy: Policy, open_ledger: Callable[[], GateReader], *, front_end: str = "check",
                 keep_open: bool = True) -> None:
        self.policy = policy
        self._open = open_ledger
        self._ledger: GateReader | None = None
        self._lock = threading.Lock()
        self.keep_open = keep_open
        self.front_end = front_end
        self.log = DecisionLog(policy.decision_log, max_bytes=policy.decision_log_max_bytes,
                               keep=policy.decision_log_keep)
        self._witnessed: Witnessed | None = None
        if policy.witnesses is not None:
            from notary.gate.witnessed import Witnessed

            self._witnessed = Witnessed(policy.witnesses)

    def close(self, timeout: float | None = None) -> bool:
        """Close the ledger; with timeout, give up (False) when a read still holds it that long: a process
        shutting down must not wait on a ledger read that hangs (an NFS stall, a blackholed server)."""
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            return False
        try:
            self._drop()
        finally:
            self._lock.release()
        return True

    def _drop(self) -> None:
        if self._ledger is not None:
            with contextlib.suppress(Exception):  # closing must never mask a decision
                self._ledger.close()
            self._ledger = None

    def check(self, image: str | None, digests: Sequence[str], *, now: datetime | None = None,
              front_end: str | None = None, extra: Mapping[str, object] | None = None) -> GateDecision:
        """Decide about an image known by name (may be None) and candidate digests (manifest, image id).

        Allowed when no candidate is revoked or fails a proof, and at least one is trusted. Several candidates
        exist when the runtime knows both a manifest digest and an image id; a revocation of either wins.
        """
        current = now or datetime.now(timezone.utc)
        try:
            decision = self._decide(image, list(dict.fromkeys(digests)), current)
        except Exception as exc:  # noqa: BLE001 - fail closed on anything unforeseen
            decision = GateDecision(image=image, digest=digests[0] if digests else None, allowed=False,
                                    exit_code=EXIT_INTEGRITY,
                                    reason=f"internal error, refusing: {type(exc).__name__}: {exc}",
                                    via="error", digests=tuple(digests))
        if extra:
            decision = _with_extra(decision, extra)
        try:
            self._log(decision, front_end or self.front_end, current)
        except OSError as exc:
            if decision.allowed:
                decision = decision._replace(
                    allowed=False, exit_code=EXIT_UNAVAILABLE, via="error",
                    reason=f"cannot write the decision log {self.log.path}: {exc.strerror}; refusing an allow "
                    "that would not be recorded")
        return decision

    def verified_head(self) -> TreeHead:
        """The ledger's current head, checked as every decision's reads are (its signature, consistency with
        this gate's trusted state, no rollback; trust moves forward): what the webhook's /readyz asks. Opens
        the ledger on first use; after an unreachable-ledger error it is reopened next time."""
        with self._reading() as ledger:
            return ledger.info().head

    @contextlib.contextmanager
    def _reading(self) -> Iterator[GateReader]:
        """The ledger, open, under the gate's lock: every read of a decision or a probe in one hold. Dropped
        after an unreachable-ledger error (reopened next time) and after use unless the gate keeps it open."""
        with self._lock:
            try:
                if self._ledger is None:
                    self._ledger = self._open()
                yield self._ledger
            except LedgerUnavailableError:
                self._drop()
                raise
            finally:
                if not self.keep_open:
                    self._drop()

    def log_only(self, decision: GateDecision, now: datetime | None = None) -> None:
        """Record a decision made before the gate could look at the ledger (e.g. unreadable input)."""
        with contextlib.suppress(OSError):  # the decision is already a refusal
            self._log(decision, self.front_end, now or datetime.now(timezone.utc))

    def _log(self, decision: GateDecision, front_end: str, now: datetime) -> None:
        self.log.append({"time": rfc3339(now), "front_end": front_end, **decision.to_json()})

    def _decide(self, image: str | None, digests: list[str], now: datetime) -> GateDecision:
        policy = self.policy
        name = normalize_name(image) if image else None
        if not digests:
            return GateDecision(image=image, digest=None, allowed=False, exit_code=EXIT_REFUSED,
                                reason=f"no image digest known for {image or 'the container'}: cannot verify",
                                via="policy")
        glass = policy.break_glass_for(digests, image, now)
        if glass is not None:
            until = f" until {glass.expires.isoformat()}" if glass.expires else ""
            return GateDecision(image=image, digest=glass.digest, allowed=True, exit_code=EXIT_OK,
                                reason=f"break-glass allow of {glass.digest}{until}: {glass.reason}",
                                via="break-glass", digests=tuple(digests))
        rule = policy.rule_for(image)
        if rule is None:
            return GateDecision(image=image, digest=digests[0], allowed=False, exit_code=EXIT_REFUSED,
                                reason=f"no trust rule in the policy matches image {name or '(unnamed)'}",
                                via="policy", digests=tuple(digests))
        try:
            return self._verify(image, digests, rule.keys, now, rule.require)
        except IntegrityError as exc:
            return GateDecision(image=image, digest=digests[0], allowed=False, exit_code=EXIT_INTEGRITY,
                                reason=f"integrity failure: {exc.one_line()}", via="verified",
                                status="integrity", digests=tuple(digests))
        except LedgerUnavailableError as exc:
            if policy.fail_open:
                return GateDecision(image=image, digest=digests[0], allowed=True, exit_code=EXIT_OK,
                                    reason=f"ledger unreachable, allowed by fail-open policy: {exc.one_line()}",
                                    via="fail-open", status="unreachable", digests=tuple(digests))
            return GateDecision(image=image, digest=digests[0], allowed=False, exit_code=EXIT_UNAVAILABLE,
                                reason=f"ledger unreachable, refusing (fail closed): {exc.one_line()}",
                                via="fail-closed", status="unreachable", digests=tuple(digests))
        except NotaryError as exc:
            return GateDecision(image=image, digest=digests[0], allowed=False,
                                exit_code=exc.exit_code if exc.exit_code else EXIT_REFUSED,
                                reason=f"{exc.kind}: {exc.one_line()}", via="error", digests=tuple(digests))

    def _verify(self, image: str | None, digests: list[str], trusted: Sequence[TrustedKey], now: datetime,
                require: Sequence[Requirement] = ()) -> GateDecision:
        from notary.verify import verify_digest

        with self._reading() as ledger:
            results = [verify_digest(ledger, d, trusted, max_age=self.policy.max_age, now=now) for d in digests]
            if not any(r.allowed or r.status == "revoked" for r in results):
                for d in digests:
                    results.extend(_by_image_id(ledger, d, trusted, self.policy.max_age, now))
            unwitnessed = self._unwitnessed(ledger, results, trusted, now)
            unmet = _unmet(ledger, results, trusted, require) if require else None
        head = next((r.head for r in results if r.head is not None), None)
        tree = head.tree_size if head is not None else None
        revoked = [r for r in results if r.status == "revoked"]
        good = [r for r in results if r.allowed]
        if revoked or not good:
            stale = [r for r in results if r.status == "too-old"]
            r = (revoked or stale or results)[0]
            reason = r.reason if len(results) == 1 or revoked or stale else "; ".join(x.reason for x in results)
            revocation = {"revocation": r.revocation.to_json()} if r.revocation is not None else {}
            return GateDecision(image=image, digest=r.digest, allowed=False, exit_code=EXIT_REFUSED,
                                reason=reason, via="verified", tree_size=tree, head=head, status=r.status,
                                signer=r.signer, digests=tuple(digests), extra=revocation)
        if unwitnessed is not None:
            r = good[0]
            return GateDecision(image=image, digest=r.digest, allowed=False, exit_code=EXIT_REFUSED,
                                reason=unwitnessed, via="verified", tree_size=tree, head=head, status="unwitnessed",
                                signer=r.signer, digests=tuple(digests))
        r = good[0]
        via_id = "" if r.digest in digests else f" (image id {', '.join(digests)} is its config)"
        extra: dict[str, object] = {}
        if image and self.policy.require_name_match:
            # The record binds the digest to the repositories it was built or pushed as: a key trusted for
            # prod/* cannot lend an image signed for prod/a to prod/b (docs/gate.md, "Names are bound").
            unbound = name_not_bound(image, good)
            if unbound is not None:
                return GateDecision(image=image, digest=r.digest, allowed=False, exit_code=EXIT_REFUSED,
                                    reason=unbound, via="verified", tree_size=tree, head=head, status="name-mismatch",
                                    signer=r.signer, digests=tuple(digests))
            extra["name_matched"] = normalize_name(image)
        if unmet is not None:  # required attestations (policy `require`): they can only refuse, never admit
            return GateDecision(image=image, digest=r.digest, allowed=False, exit_code=EXIT_REFUSED,
                                reason=unmet, via="verified", tree_size=tree, head=head,
                                status="missing-attestation", signer=r.signer, digests=tuple(digests))
        return GateDecision(image=image, digest=r.digest, allowed=True, exit_code=EXIT_OK,
                            reason=r.reason + via_id, via="verified", tree_size=tree, head=head, status=r.status,
                            signer=r.signer, digests=tuple(digests), extra=extra)


    def _unwitnessed(self, ledger: GateReader, results: list[Decision], trusted: Sequence[TrustedKey],
                     now: datetime) -> str | None:
        """None when no witnesses are required, or a trusted result also admits on the witnessed prefix
        (notary.gate.witnessed); else why not. A revoked or refused result needs no witness to refuse."""
        if self._witnessed is None or not any(r.allowed for r in results) or any(r.status == "revoked"
                                                                                 for r in results):
            return None
        from notary.gate.witnessed import Prefix, Shortfall
        from notary.verify import verify_digest

        head = next(r.head for r in results if r.head is not None)
        try:
            size = self._witnessed.size(ledger, head)
        except Shortfall as exc:
            return f"no head is witnessed as the policy requires: {exc}"
        prefix = Prefix(ledger, size)
        for r in results:
            if r.allowed and verify_digest(prefix, r.digest, trusted, max_age=self.policy.max_age, now=now).allowed:
                return None
        digest = next(r.digest for r in results if r.allowed)
        return (f"{digest} is notarized after the last witnessed checkpoint (size {size}; the verified head is "
                f"at {head.tree_size}): it is admitted once a checkpoint covering it is cosigned by "
                f"{self._witnessed.rule.min_witnesses} of the policy's witnesses")


def name_not_bound(image: str, trusted: Sequence[Decision]) -> str | None:
    """None when a trusted decision's records bind image's repository; else why it is refused.

    One wording for the gate and `notary verify` (which applies it with keys from [policy]), so both say the
    same thing: which name was asked, which names the records hold."""
    name = normalize_name(image)
    bound = {n for x in trusted for n in x.names}
    if name in bound:
        return None
    digest = trusted[0].digest if trusted else "the image"
    shown = ", ".join(sorted(bound)) or "none, it was notarized without an image name"
    return (f"{digest} is not notarized under the name {name} (its records name: {shown}; to add the name, "
            f"notarize the image again with a trusted key and --name {name})")


def _by_image_id(ledger: HistoryReader, image_id: str, trusted: Sequence[TrustedKey], max_age: timedelta | None,
                 now: datetime) -> list[Decision]:
    """Decisions about the manifests whose *signed* record names image_id as their config (the image id).

    Runtimes that know only an image id (CRI-O's ImageRef, a `docker load`ed image) are matched through the
    ledger's artifact index, which is only a hint: a manifest counts only if a counted record of a trusted key
    names image_id as its config or imageId (gather.holders_of), so a forged index entry can neither borrow
    another image's trust nor veto this one with an unrelated revocation. Layers never identify an image.
    """
    from notary.gather import holders_of
    from notary.revocation import TooManyTies
    from notary.status import as_trusted
    from notary.verify import Decision, verify_digest

    try:
        holders = holders_of(ledger, image_id, as_trusted(trusted))
    except TooManyTies as exc:
        return [Decision(image_id, False, "unverifiable", f"{image_id} is refused: {exc}")]
    return [verify_digest(ledger, manifest, trusted, max_age=max_age, now=now)
            for manifest, role in holders if role == "config"]


def _unmet(ledger: HistoryReader, results: Sequence[Decision], trusted: Sequence[TrustedKey],
           require: Sequence[Requirement]) -> str | None:
    """None when an allowed result's digest has every required attestation from a trusted key
    (notary.attest.unmet); else why the first allowed one has not."""
    from notary.attest import unmet

    reasons = []
    for r in results:
        if r.allowed:
            reason = unmet(ledger, r.digest, trusted, require)
            if reason is None:
                return None
            reasons.append(reason)
    return reasons[0] if reasons else None


def _with_extra(decision: GateDecision, extra: Mapping[str, object]) -> GateDecision:
    return decision._replace(extra={**decision.extra, **extra})


def gate_for(config: Config, ledger_url: str | None, *, front_end: str, keep_open: bool = True,
             env: Environment | None = None) -> LedgerGate:
    """A Gate for a loaded config: its [policy], and the ledger it names (opened lazily, never created).

    Every front end checks immudb reads against the verified mirror unless NOTARY_IMMUDB_MIRROR=0 or
    [immudb] mirror = false opts out (a revocation the server withholds is caught; the catch-up is paid once,
    then per new transaction; open_ledger reads the setting and notices an opt-out).
    """
    from notary.config import state_dir_from
    from notary.environment import given
    from notary.gate.policy import load_policy
    from notary.ledger.settings import ImmudbSettings

    env = given(env)  # the front end's (read once where it started)
    policy = load_policy(config)
    state_dir = state_dir_from(config, env)
    ImmudbSettings.load(config, env.variables)  # a malformed immudb setting is a usage error at start, not a refusal per request

    def opener() -> Ledger:
        from notary.ledger import open_ledger

        return open_ledger(ledger_url, state_dir=state_dir, create=False, config=config, env=env)

    return LedgerGate(policy, opener, front_end=front_end, keep_open=keep_open)


def gate_from_flags(config_flag: str | None, ledger_flag: str | None, *, front_end: str,
                    keep_open: bool = True, env: Environment | None = None) -> LedgerGate:
    """As gate_for, from --config / --ledger values and the NOTARY_* environment (env: the edge's)."""
    from notary.config import ledger_url_from, load_config
    from notary.environment import given

    env = given(env)
    config = load_config(config_flag, env)
    return gate_for(config, ledger_url_from(ledger_flag, config, env), front_end=front_end, keep_open=keep_open,
                    env=env)
