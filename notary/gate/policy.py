"""The gate's policy: which keys are trusted for which image names, and how the gate fails.

Lives under [policy] in notary.toml and is validated strictly: a typo in a security policy must stop the
gate at load time, not silently widen what it allows. Trust rules are ordered and the *first* rule whose
globs match an image name decides its keys, so a narrow rule for `registry.example/prod/*` placed before a
catch-all `*` cannot be bypassed by a key that is only trusted for the catch-all.

Revocation is always checked: `check_revocation = false` is rejected rather than honoured.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from notary import keys
from notary.config import Config
from notary.durations import parse_duration
from notary.errors import NotaryError, UsageError
from notary.gate.decision_log import DEFAULT_KEEP, DEFAULT_MAX_BYTES, MAX_KEEP, parse_size
from notary.gate.witnessed import WitnessRule, parse_witness_rule
from notary.names import normalize_name
from notary.records import check_digest, parse_time
from notary.status import ROLES, TrustedKey

if TYPE_CHECKING:
    from notary.attest.require import Requirement

POLICY_KEYS = {"trust", "fail", "max_age", "check_revocation", "decision_log", "decision_log_max_size",
               "decision_log_keep", "break_glass", "require_name_match", "witnesses"}
TRUST_KEYS = {"images", "keys", "require"}
KEY_ENTRY_KEYS = {"path", "roles", "not_after"}
BREAK_GLASS_KEYS = {"digest", "reason", "expires", "images"}
_GLOB_CHARS = re.compile(r"^[a-z0-9._\-/:*?]+\Z")


# ---------------------------------------------------------------- image globs


def _check_glob(glob: object, where: str) -> str:
    if not isinstance(glob, str) or not glob or not _GLOB_CHARS.match(glob):
        raise UsageError(
            f"{where}: bad image glob {glob!r}",
            hint="lower-case registry/repository with * and ? wildcards, e.g. registry.example/team/*",
        )
    last = glob.rsplit("/", 1)[-1]
    if "@" in glob or (":" in last and glob.count("/") > 0):
        raise UsageError(f"{where}: image glob {glob!r} names a tag or digest", hint="globs match names only")
    if "//" in glob or glob.startswith("/") or glob.endswith("/"):
        raise UsageError(f"{where}: image glob {glob!r} has an empty path segment")
    return glob


def _glob_regex(glob: str) -> re.Pattern[str]:
    """`*` matches any run of characters including `/`; `?` one character. Everything else is literal."""
    out = []
    for ch in glob:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("^" + "".join(out) + r"\Z")


# ---------------------------------------------------------------- the policy


class TrustRule:
    """Keys trusted for the image names its globs match. (Plain classes here: the hook imports this module on
    every container start, and dataclass creation is measurable there.)"""

    __slots__ = ("images", "key_paths", "keys", "patterns", "require")

    def __init__(self, images: tuple[str, ...], key_paths: tuple[str, ...], keys: tuple[TrustedKey, ...],
                 patterns: tuple[re.Pattern[str], ...] = (), require: tuple[Requirement, ...] = ()) -> None:
        self.require = require  # notary.attest.Requirement: attestations a trusted key must have made
        self.images = images
        self.key_paths = key_paths
        self.keys = keys
        self.patterns = patterns

    def matches(self, name: str | None) -> bool:
        if name is None:
            return "*" in self.images
        return any(p.match(name) for p in self.patterns)


class BreakGlass:
    __slots__ = ("digest", "reason", "expires", "images", "patterns")

    def __init__(self, digest: str, reason: str, expires: datetime | None = None, images: tuple[str, ...] = (),
                 patterns: tuple[re.Pattern[str], ...] = ()) -> None:
        self.digest = digest
        self.reason = reason
        self.expires = expires
        self.images = images
        self.patterns = patterns

    def applies(self, digest: str, name: str | None, now: datetime) -> bool:
        if digest != self.digest:
            return False
        if self.expires is not None and now >= self.expires:
            return False
        if self.patterns:
            return name is not None and any(p.match(name) for p in self.patterns)
        return True


class Policy:
    __slots__ = ("trust", "fail_open", "max_age", "decision_log", "break_glass", "source", "require_name_match",
                 "decision_log_max_bytes", "decision_log_keep", "witnesses")

    def __init__(self, trust: tuple[TrustRule, ...], fail_open: bool = False, max_age: timedelta | None = None,
                 decision_log: str | None = None, break_glass: tuple[BreakGlass, ...] = (),
                 source: str | None = None, require_name_match: bool = True,
                 decision_log_max_bytes: int = DEFAULT_MAX_BYTES, decision_log_keep: int = DEFAULT_KEEP,
                 witnesses: WitnessRule | None = None) -> None:
        self.witnesses = witnesses
        self.decision_log_max_bytes = decision_log_max_bytes
        self.decision_log_keep = decision_log_keep
        self.trust = trust
        self.fail_open = fail_open
        self.max_age = max_age
        self.decision_log = decision_log
        self.break_glass = break_glass
        self.source = source
        self.require_name_match = require_name_match

    def rule_for(self, name: str | None) -> TrustRule | None:
        """The first rule matching the (normalized) image name; None: no key is trusted for it."""
        normalized = normalize_name(name) if name else None
        for rule in self.trust:
            if rule.matches(normalized):
                return rule
        return None

    def keys_for(self, name: str | None) -> tuple[TrustedKey, ...]:
        rule = self.rule_for(name)
        return rule.keys if rule else ()

    def break_glass_for(self, digests: Sequence[str], name: str | None,
                        now: datetime | None = None) -> BreakGlass | None:
        current = now or datetime.now(timezone.utc)
        normalized = normalize_name(name) if name else None
        for entry in self.break_glass:
            for digest in digests:
                if entry.applies(digest, normalized, current):
                    return entry
        return None

    def describe(self) -> dict[str, object]:
        return {
            "source": self.source,
            "fail": "open" if self.fail_open else "closed",
            "max_age_seconds": int(self.max_age.total_seconds()) if self.max_age else None,
            "check_revocation": True,
            "require_name_match": self.require_name_match,
            "decision_log": self.decision_log,
            "decision_log_max_size": self.decision_log_max_bytes,
            "decision_log_keep": self.decision_log_keep,
            "witnesses": ({"keys": list(self.witnesses.vkeys), "min": self.witnesses.min_witnesses,
                           "checkpoint": self.witnesses.checkpoint,
                           **({"log_key": self.witnesses.log_key} if self.witnesses.log_key else {})}
                          if self.witnesses else None),
            "trust": [
                {"images": list(r.images),
                 "keys": [{"key_id": k.key_id,
                           "roles": {role: end.isoformat() if end else None for role, end in k.grants}}
                          for k in r.keys],
                 **({"require": [q.to_json() for q in r.require]} if r.require else {})}
                for r in self.trust
            ],
            "break_glass": [
                {"digest": b.digest, "reason": b.reason, "expires": b.expires.isoformat() if b.expires else None}
                for b in self.break_glass
            ],
        }


def _table_list(value: object, where: str) -> list[Mapping[str, object]]:
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise UsageError(f"{where} must be an array of tables ([[{where}]])")
    return value


def _str_list(value: object, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{where} must be a non-empty list of strings")
    return value


def _unknown(table: Mapping[str, object], allowed: set[str], where: str) -> None:
    extra = set(table) - allowed
    if extra:
        raise UsageError(f"{where}: unknown setting(s) {', '.join(sorted(extra))}",
                         hint=f"known: {', '.join(sorted(allowed))}")


def parse_policy(section: Mapping[str, object], resolve: Callable[[str], str] = str, source: str | None = None) -> Policy:
    """Validate a [policy] table; resolve maps a key path in the file to a real path."""
    where = f"config {source}: [policy]" if source else "[policy]"
    _unknown(section, POLICY_KEYS, where)
    revocation = section.get("check_revocation", True)
    if not isinstance(revocation, bool):
        raise UsageError(f"{where}: check_revocation must be true or false, not {revocation!r:.40}")
    if revocation is not True:
        raise UsageError(f"{where}: check_revocation cannot be turned off",
                         hint="revocation is always checked; remove the setting")
    fail = section.get("fail", "closed")
    if fail not in ("closed", "open") or not isinstance(fail, str):
        raise UsageError(f"{where}: fail must be \"closed\" or \"open\", not {fail!r:.40}")
    max_age = section.get("max_age")
    age = parse_duration(max_age, f"{where}: max_age") if max_age is not None else None
    log = section.get("decision_log")
    if log is not None and (not isinstance(log, str) or not log):
        raise UsageError(f"{where}: decision_log must be a file path")

    log_size = parse_size(section.get("decision_log_max_size", DEFAULT_MAX_BYTES), f"{where}: decision_log_max_size")
    keep = section.get("decision_log_keep", DEFAULT_KEEP)
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= MAX_KEEP:
        raise UsageError(f"{where}: decision_log_keep must be a whole number from 1 to {MAX_KEEP}, not {keep!r:.40}")
    names = section.get("require_name_match", True)
    if not isinstance(names, bool):
        raise UsageError(f"{where}: require_name_match must be true or false, not {names!r:.40}")

    rules: list[TrustRule] = []
    key_cache: dict[str, keys.PublicKey] = {}
    for i, table in enumerate(_table_list(section.get("trust", []), f"{where}.trust")):
        rwhere = f"{where} trust rule {i + 1}"
        _unknown(table, TRUST_KEYS, rwhere)
        images = tuple(_check_glob(g, rwhere) for g in _str_list(table.get("images"), f"{rwhere}: images"))
        entries = [_key_entry(e, f"{rwhere}: keys[{j}]", resolve)
                   for j, e in enumerate(_entry_list(table.get("keys"), f"{rwhere}: keys"))]
        loaded = []
        for path, roles, not_after, kwhere in entries:
            if path not in key_cache:
                try:
                    key_cache[path] = keys.load_public_key(Path(path))
                except NotaryError as exc:
                    raise UsageError(f"{kwhere}: {exc.one_line()}") from exc
            try:
                loaded.append(TrustedKey.of(key_cache[path], roles, not_after, label=path))
            except NotaryError as exc:
                raise UsageError(f"{kwhere}: {exc.one_line()}") from exc
        require: tuple[Requirement, ...] = ()
        if "require" in table:  # the attestation module loads only for a policy that requires attestations
            from notary.attest import parse_requirements

            require = parse_requirements(table["require"], rwhere)
        rules.append(TrustRule(images, tuple(e[0] for e in entries), tuple(loaded),
                               tuple(_glob_regex(g) for g in images), require))
    if not rules:
        raise UsageError(f"{where}: no [[policy.trust]] rules", hint="name at least one image glob and key")

    glass: list[BreakGlass] = []
    for i, table in enumerate(_table_list(section.get("break_glass", []), f"{where}.break_glass")):
        bwhere = f"{where} break_glass entry {i + 1}"
        _unknown(table, BREAK_GLASS_KEYS, bwhere)
        try:
            digest = check_digest(table.get("digest"))
        except NotaryError as exc:
            raise UsageError(f"{bwhere}: {exc.one_line()}") from exc
        reason = table.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise UsageError(f"{bwhere}: a reason is required", hint="say who allowed it and why")
        expires = table.get("expires")
        when: datetime | None = None
        if isinstance(expires, datetime):
            if expires.tzinfo is None:
                raise UsageError(f"{bwhere}: expires has no UTC offset", hint="append Z for UTC")
            when = expires.astimezone(timezone.utc)
        elif isinstance(expires, str):
            try:
                when = parse_time(expires)
            except NotaryError as exc:
                raise UsageError(f"{bwhere}: {exc.one_line()}") from exc
        elif expires is not None:
            raise UsageError(f"{bwhere}: expires must be an RFC 3339 time")
        imgs = table.get("images")  # present but empty must not silently mean "every image"
        globs = () if imgs is None else tuple(_check_glob(g, bwhere) for g in _str_list(imgs, f"{bwhere}: images"))
        glass.append(BreakGlass(digest, reason.strip(), when, globs, tuple(_glob_regex(g) for g in globs)))

    witnesses = section.get("witnesses")
    rule = parse_witness_rule(witnesses, resolve, f"{where}.witnesses") if witnesses is not None else None
    return Policy(tuple(rules), fail == "open", age, resolve(log) if log else None, tuple(glass), source, names,
                  log_size, keep, rule)


def _entry_list(value: object, where: str) -> list[object]:
    if isinstance(value, (str, Mapping)):
        value = [value]
    if not isinstance(value, list) or not value:
        raise UsageError(f"{where} must be a non-empty list of key paths or {{ path = ..., roles = [...] }} tables")
    return value


def _key_entry(entry: object, where: str, resolve: Callable[[str], str]) -> tuple[str, tuple[str, ...] | None, datetime | None, str]:
    """A trusted key: a path, or { path, roles = ["notarize", "revoke"], not_after = RFC 3339 }."""
    if isinstance(entry, str) and entry:
        return resolve(entry), None, None, where
    if not isinstance(entry, Mapping):
        raise UsageError(f"{where} must be a key path or a {{ path = ..., roles = [...] }} table")
    _unknown(entry, KEY_ENTRY_KEYS, where)
    path = entry.get("path")
    if not isinstance(path, str) or not path:
        raise UsageError(f"{where}: path must name a public key file")
    roles = entry.get("roles")
    if roles is not None:
        if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
            raise UsageError(f"{where}: roles must be a non-empty list of \"notarize\" / \"revoke\"")
        unknown = sorted(set(roles) - ROLES)
        if unknown:
            raise UsageError(f"{where}: unknown role(s) {', '.join(unknown)}", hint="roles are notarize and revoke")
    return resolve(path), tuple(roles) if roles is not None else None, _time(entry.get("not_after"), where), where


def _time(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise UsageError(f"{where}: not_after has no UTC offset", hint="append Z for UTC")
        return value.astimezone(timezone.utc)
    if isinstance(value, str):
        try:
            return parse_time(value)
        except NotaryError as exc:
            raise UsageError(f"{where}: not_after: {exc.one_line()}") from exc
    raise UsageError(f"{where}: not_after must be an RFC 3339 time, e.g. 2026-11-20T00:00:00Z")


def load_policy(config: Config) -> Policy:
    """The [policy] of a loaded config; a config without one is a usage error (the gate never guesses)."""
    section = config.section("policy")
    if not section:
        where = f"config {config.path}" if config.path else "no notary.toml found"
        raise UsageError(f"{where}: no [policy] for the gate",
                         hint="see docs/policy-example.toml; pass --config or set NOTARY_CONFIG")
    return parse_policy(section, config.resolve_path, str(config.path) if config.path else None)
