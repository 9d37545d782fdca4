"""Requirements on attestations (policy `require`, `verify --require`): they can only refuse, never admit."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from notary.attest.envelopes import check_type
from notary.attest.predicates import SLSA_PROVENANCE, PredicateTypeError
from notary.attest.store import attestation_history
from notary.errors import UsageError
from notary.ledger.base import HistoryReader

if TYPE_CHECKING:
    from notary.keys import PublicKey
    from notary.status import TrustedKey

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

    def to_json(self) -> dict[str, object]:
        return {"type": self.predicate_type, "builder_id": self.builder_id, "source": self.source}

    def problem(self, predicate: Mapping[str, object]) -> str | None:
        """None when the predicate meets the conditions; else what it holds instead (escaped: the predicate is
        the signer's data, and a refusal is one line of a log or a terminal)."""
        if self.builder_id is not None:
            found = _get(predicate, "runDetails", "builder", "id")
            if not isinstance(found, str) or found != self.builder_id:
                return f"builder id {_shown(found)}, not {self.builder_id}"
        if self.source is not None:
            wanted = normalize_source(self.source)
            build = predicate.get("buildDefinition")
            deps = build.get("resolvedDependencies") if isinstance(build, dict) else None
            uris = [d.get("uri") for d in deps if isinstance(d, dict)] if isinstance(deps, list) else []
            strings = [u for u in uris if isinstance(u, str)]
            if wanted is None or not any(normalize_source(u) == wanted for u in strings):
                shown = [_shown(n) if n is not None else f"{_shown(u, 80)} (not a repository URL)"
                         for u, n in ((u, normalize_source(u)) for u in strings[:8])]
                return f"source {', '.join(shown) or '(none)'}, not {self.source}"
        return None


def _get(value: object, *path: str) -> object:
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _shown(value: object, limit: int = 120) -> str:
    """Printable ASCII: a newline or escape sequence in a signed predicate must not forge another log line,
    and a look-alike letter (Cyrillic і for i) shows as what it is."""
    if value is None:
        return "(none)"
    text = (value if isinstance(value, str) else repr(value))[:limit]
    return "".join(c if c.isascii() and c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*\Z")
_LABEL = r"[a-z0-9](?:[a-z0-9\-]*[a-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*(?::[0-9]{{1,5}})?\Z")
_SEGMENT = re.compile(r"[A-Za-z0-9._~+\-]+\Z")
_NEVER = frozenset("%?#\\ ")  # percent-encoding, query, fragment, backslash, space: refused, never decoded


def normalize_source(uri: object) -> str | None:
    """The repository a source URI names, as `source` compares it: git+https://host/org/repo.git@refs/heads/main
    is https://host/org/repo (the scheme and host in lower case, the path as written).

    None when the URI has no single reading that URL parsers and git agree on: userinfo (in
    https://github.com@evil.com/x the host is evil.com), percent-encoding (decoders disagree on %2F), a query
    or fragment, a backslash (a path separator to WHATWG parsers, not to urlsplit), dot or empty path segments,
    anything but printable ASCII (look-alike letters). Such a URI meets no condition. After the host, the first
    @ starts the revision (the SPDX / SLSA VCS convention), which `source` does not compare."""
    if not isinstance(uri, str) or len(uri) > 1024 or not uri.isascii() or not uri.isprintable():
        return None
    if _NEVER.intersection(uri):
        return None
    text = uri[4:] if uri[:4].lower() == "git+" else uri
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    authority, _, path = rest.partition("/")
    host = authority.lower()
    if not sep or not _SCHEME.match(scheme) or not _HOST.match(host):
        return None  # no scheme, or userinfo (an @ before the path), or not a DNS host name
    repository = path.split("@", 1)[0].rstrip("/")
    segments = repository.split("/") if repository else []
    if segments and segments[-1].endswith(".git"):
        segments[-1] = segments[-1][:-4]
    if any(s in ("", ".", "..") or not _SEGMENT.match(s) for s in segments):
        return None
    return f"{scheme}://{host}" + "".join("/" + s for s in segments)


def parse_requirements(value: object, where: str) -> tuple[Requirement, ...]:
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
        conditions: dict[str, str | None] = {}
        for name in ("builder_id", "source"):
            v = item.get(name)
            if v is not None and (not isinstance(v, str) or not v or len(v) > 512 or not v.isprintable()):
                raise UsageError(f"{iwhere}: {name} must be a non-empty string of printable characters")
            if name == "source" and v is not None:
                _check_source(v, iwhere)
            conditions[name] = v
        if any(conditions.values()) and ptype != SLSA_PROVENANCE:
            raise UsageError(f"{iwhere}: builder_id and source are conditions on {SLSA_PROVENANCE} only")
        out.append(Requirement(ptype, conditions["builder_id"], conditions["source"]))
    if not out:
        raise UsageError(f"{where}: require is empty", hint="leave it out, or name a predicate type")
    return tuple(out)


def _check_source(source: str, where: str) -> None:
    """A policy's source names a repository one way: a condition no URI could meet, or one that reads as
    comparing a revision (it does not), is a usage error at load, not a gate that refuses everything."""
    if normalize_source(source) is None:
        raise UsageError(f"{where}: source {_shown(source, 80)} is not a repository URL",
                         hint="scheme://host/path, without userinfo, query, fragment, percent-encoding or dot "
                         "segments, e.g. https://github.com/example/app")
    if "@" in source:
        raise UsageError(f"{where}: source {_shown(source, 80)} names a revision after @",
                         hint="source compares the repository only: leave the @revision out")


def _known(ptype: object, where: str) -> str:
    try:
        return check_type(ptype, known=True)
    except PredicateTypeError as exc:
        raise UsageError(f"{where}: {exc.one_line()}") from exc


def unmet(ledger: HistoryReader, digest: str, trusted: Sequence[PublicKey | TrustedKey],
          requirements: Sequence[Requirement]) -> str | None:
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
