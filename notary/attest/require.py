"""Requirements on attestations (policy `require`, `verify --require`): they can only refuse, never admit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from notary.attest.envelopes import check_type
from notary.attest.predicates import SLSA_PROVENANCE, PredicateTypeError
from notary.attest.store import attestation_history
from notary.errors import UsageError
from notary.ledger.base import HistoryReader

# ---------------------------------------------------------------- requirements (policy `require`, verify --require)


_REQUIREMENT_FIELDS = {"type", "builder_id", "source"}


class Requirement(NamedTuple):
    """A predicate type the decision requires from a trusted key, with conditions on its predicate
    (provenance only: the builder id, the source repository)."""

    predicate_type: str
    builder_id: str | None = None
    source: str | None = None

    def describe(self) -> str:
        conditions = [f"{k} {v}" for k, v in (("builder id", self.builder_id), ("source", self.source)) if v]
        return self.predicate_type + (f" ({', '.join(conditions)})" if conditions else "")

    def to_json(self) -> dict[str, Any]:
        return {"type": self.predicate_type, "builder_id": self.builder_id, "source": self.source}

    def problem(self, predicate: Mapping[str, Any]) -> str | None:
        """None when the predicate meets the conditions; else what it holds instead."""
        if self.builder_id is not None:
            found = _get(predicate, "runDetails", "builder", "id")
            if found != self.builder_id:
                return f"builder id {_shown(found)}, not {self.builder_id}"
        if self.source is not None:
            wanted = normalize_source(self.source)
            build = predicate.get("buildDefinition")
            deps = build.get("resolvedDependencies") if isinstance(build, dict) else None
            uris = [d.get("uri") for d in deps if isinstance(d, dict)] if isinstance(deps, list) else []
            found_sources = [normalize_source(u) for u in uris if isinstance(u, str)]
            if wanted not in found_sources:
                return f"source {', '.join(found_sources) or '(none)'}, not {self.source}"
        return None


def _get(value: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _shown(value: Any) -> str:
    return str(value)[:120] if value is not None else "(none)"


def normalize_source(uri: str) -> str:
    """git+https://host/org/repo.git@refs/heads/main -> https://host/org/repo (what `source` compares)."""
    text = uri[4:] if uri.startswith("git+") else uri
    scheme, sep, rest = text.partition("://")
    if sep:
        rest = rest.split("@", 1)[0]
        text = f"{scheme}://{rest}"
    text = text.rstrip("/")
    return text[:-4] if text.endswith(".git") else text


def parse_requirements(value: Any, where: str) -> tuple[Requirement, ...]:
    """A policy's `require`: a list whose items are predicate type URIs or tables {type, builder_id?,
    source?}. An unknown type, an unknown field or a condition on a type without it is a usage error."""
    items = value if isinstance(value, list) else [value]
    out: list[Requirement] = []
    for i, item in enumerate(items):
        iwhere = f"{where}: require[{i}]"
        if isinstance(item, str):
            out.append(Requirement(_known(item, iwhere)))
            continue
        if not isinstance(item, Mapping):
            raise UsageError(f"{iwhere} must be a predicate type URI or a {{ type = URI, ... }} table")
        extra = set(item) - _REQUIREMENT_FIELDS
        if extra:
            raise UsageError(f"{iwhere}: unknown setting(s) {', '.join(sorted(extra))}",
                             hint=f"known: {', '.join(sorted(_REQUIREMENT_FIELDS))}")
        ptype = _known(item.get("type"), iwhere)
        conditions = {}
        for name in ("builder_id", "source"):
            v = item.get(name)
            if v is not None and (not isinstance(v, str) or not v or len(v) > 512):
                raise UsageError(f"{iwhere}: {name} must be a non-empty string")
            conditions[name] = v
        if any(conditions.values()) and ptype != SLSA_PROVENANCE:
            raise UsageError(f"{iwhere}: builder_id and source are conditions on {SLSA_PROVENANCE} only")
        out.append(Requirement(ptype, conditions["builder_id"], conditions["source"]))
    if not out:
        raise UsageError(f"{where}: require is empty", hint="leave it out, or name a predicate type")
    return tuple(out)


def _known(ptype: Any, where: str) -> str:
    try:
        return check_type(ptype, known=True)
    except PredicateTypeError as exc:
        raise UsageError(f"{where}: {exc.one_line()}") from exc


def unmet(ledger: HistoryReader, digest: str, trusted: Sequence[Any], requirements: Sequence[Requirement]) -> str | None:
    """None when, for each requirement, some trusted key (with the notarize role, before its not_after in
    proven ledger time) has an attestation of that type about digest whose newest version meets its
    conditions; else why not, naming what was missing. trusted: TrustedKeys (or public keys)."""
    from notary.status import as_trusted

    signers = [tk for tk in as_trusted(trusted) if "notarize" in tk.roles]
    for req in requirements:
        problems: list[str] = []
        met = False
        for tk in signers:
            history = [(a, e) for a, e in attestation_history(ledger, digest, tk.key, req.predicate_type)
                       if tk.counts("notarization", e)]
            if not history:
                continue
            problem = req.problem(history[-1][0].predicate)
            if problem is None:
                met = True
                break
            problems.append(f"{tk.key_id[:19]}…: {problem}")
        if not met:
            if problems:
                return (f"{digest} is refused: its {req.predicate_type} attestation by a trusted key does not meet "
                        f"the policy ({'; '.join(problems)})")
            return (f"{digest} is refused: no attestation of {req.describe()} by a trusted key "
                    f"({len(signers)} trusted)")
    return None
