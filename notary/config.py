"""Configuration: notary.toml plus NOTARY_* environment, with defaults that work with no file at all.

Precedence, highest first: command-line flag, environment variable, config file, built-in default.
The file is looked up at --config / NOTARY_CONFIG, then ./notary.toml, then the user's config dir. Secrets
never live here: keys and passwords are named by path or taken from the environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple, TypeVar

from notary.environment import Environment, given
from notary.errors import UsageError
from notary.fsio import MAX_CONFIG_FILE, read_regular

KNOWN_TOP_LEVEL = {"ledger", "state_dir", "signing", "registry", "policy", "gate", "docker", "immudb", "sync"}
# The type of every plain setting, checked when the file is loaded: a wrong type is a usage error naming the
# setting and the file, never coerced (`state_dir = 5` must not become "./5", `insecure = "false"` must not be
# true). Tables map their settings to types; [gate] holds the webhook's drain. [policy] is validated in
# full by notary.gate.policy (it loads key files), here only as a table. A setting listed in KNOWN_TOP_LEVEL
# but not here is checked where it is read.
SETTING_TYPES: dict[str, type | dict[str, type]] = {
    "ledger": str,
    "state_dir": str,
    "signing": {"key": str},
    "registry": {"insecure": bool, "auth_file": str},
    "docker": {"host": str},
    # [immudb] mirror = true: reads checked against a verified replay; gateway = "http://HOST:8080": immudb's
    # HTTP gateway instead of gRPC; replicas = ["HOST:PORT"]: read while the primary is down (docs/immudb.md)
    # read_from = "replicas": reads go to a replica while the primary is up too (docs/immudb.md, "Replicas")
    "immudb": {"mirror": bool, "gateway": str, "gateway_ca": str, "replicas": list, "read_from": str},
    "gate": {"webhook_drain_seconds": int},  # notary.gate.frontends.webhook_ha
    "sync": {"to": str, "batch": int},  # notary sync's destination and batch (docs/sync.md)
    "policy": dict,
}
_TYPE_NAMES = {str: "a non-empty string", bool: "true or false", int: "a whole number", dict: "a table",
               list: "a list"}


def _load_toml(path: Path) -> dict[str, object]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    raw = read_regular(path, MAX_CONFIG_FILE, "config file", error=UsageError)  # bounded; never a FIFO
    try:
        data: dict[str, object] = tomllib.loads(raw.decode("utf-8"))
        return data
    except UnicodeDecodeError as exc:
        raise UsageError(f"config {path} is not UTF-8 text (byte {exc.start})") from None
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise UsageError(f"config {path} is not valid TOML: nested too deep") from None
    except ValueError as exc:  # TOMLDecodeError, and int()'s limit on a 5,000-digit integer
        raise UsageError(f"config {path} is not valid TOML: {exc}") from None


def _check_types(data: Mapping[str, object], path: Path) -> None:
    """Every setting of SETTING_TYPES has its type (UsageError naming the setting and the file)."""
    for name, expected in SETTING_TYPES.items():
        if name not in data:
            continue
        value = data[name]
        if isinstance(expected, dict):
            if not isinstance(value, Mapping):
                raise UsageError(f"config {path}: [{name}] must be a table, not {type(value).__name__}")
            unknown = set(value) - set(expected)
            if unknown:
                raise UsageError(f"config {path}: unknown setting(s) {', '.join(sorted(unknown))} in [{name}]",
                                 hint=f"known: {', '.join(sorted(expected)) or 'none yet'}")
            for key, kind in expected.items():
                if key in value:
                    _check_value(value[key], kind, f"{name}.{key}", path)
        else:
            _check_value(value, expected, name, path)


def _check_value(value: object, kind: type, setting: str, path: Path) -> None:
    # bool is an int in Python, and TOML has no null: an exact type check is the whole rule
    ok = isinstance(value, Mapping) if kind is dict else type(value) is kind
    if ok and isinstance(value, str) and not value.strip():
        ok = False
    if not ok:
        raise UsageError(f"config {path}: {setting} must be {_TYPE_NAMES[kind]}, not {type(value).__name__} "
                         f"{value!r:.40}")


def user_config_path(env: Environment | None = None) -> Path:
    base = given(env).xdg_config_home or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "notary" / "notary.toml"


def find_config(explicit: str | None, env: Environment | None = None) -> Path | None:
    """The file at explicit (a flag or NOTARY_CONFIG, chosen by the caller), else ./notary.toml, else the
    user's config dir (env: its XDG_CONFIG_HOME)."""
    if explicit:
        return Path(explicit)  # read (and refused: missing, not a regular file, too long) by _load_toml
    for candidate in (Path("notary.toml"), user_config_path(env)):
        if candidate.is_file():
            return candidate
    return None


_T = TypeVar("_T")
_EMPTY: Mapping[str, object] = MappingProxyType({})  # a shared default no one can change


class Config(NamedTuple):
    path: Path | None
    data: Mapping[str, object] = _EMPTY

    def section(self, name: str) -> Mapping[str, object]:
        value = self.data.get(name, {})
        if not isinstance(value, Mapping):
            raise UsageError(f"config {self.path}: [{name}] must be a table")
        return value

    def setting(self, table: str, name: str, kind: type[_T]) -> _T | None:
        """A plain setting of a table, None when unset: its type was checked when the file was loaded
        (SETTING_TYPES), so a value of another kind is only possible in a Config built by hand."""
        value = self.section(table).get(name)
        if value is not None and not isinstance(value, kind):
            raise UsageError(f"config {self.path}: {table}.{name} must be {_TYPE_NAMES.get(kind, kind.__name__)}")
        return value

    def resolve_path(self, value: str) -> str:
        """Paths in the file are relative to the file, so a config works from any working directory."""
        if self.path is None or os.path.isabs(value) or "://" in value:
            return value
        return str((self.path.parent / value).resolve())

    @property
    def ledger_url(self) -> str | None:
        value = self.data.get("ledger")
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"config {self.path}: ledger must be a URL string")
        if value.startswith("file://") or "://" in value:
            return value
        return Path(self.resolve_path(value)).resolve().as_uri()

    @property
    def state_dir(self) -> str | None:
        value = self.data.get("state_dir")
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"config {self.path}: state_dir must be a non-empty string (a directory path)")
        return self.resolve_path(value)


def load_config(explicit: str | None = None, env: Environment | None = None) -> Config:
    env = given(env)
    path = find_config(explicit or env.config, env)
    if path is None:
        return Config(path=None, data={})
    data = _load_toml(path)
    unknown = set(data) - KNOWN_TOP_LEVEL
    if unknown:
        raise UsageError(
            f"config {path}: unknown setting(s) {', '.join(sorted(unknown))}",
            hint=f"known: {', '.join(sorted(KNOWN_TOP_LEVEL))}",
        )
    _check_types(data, path)
    return Config(path=path, data=data)


def ledger_url_from(flag: str | None, config: Config, env: Environment | None = None) -> str | None:
    return flag or given(env).ledger or config.ledger_url


def state_dir_from(config: Config, env: Environment | None = None) -> str | None:
    return given(env).state_dir or config.state_dir
