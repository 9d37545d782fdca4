"""Configuration: notary.toml plus NOTARY_* environment, with defaults that work with no file at all.

Precedence, highest first: command-line flag, environment variable, config file, built-in default.
The file is looked up at --config / NOTARY_CONFIG, then ./notary.toml, then the user's config dir. Secrets
never live here: keys and passwords are named by path or taken from the environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notary.errors import UsageError

KNOWN_TOP_LEVEL = {"ledger", "state_dir", "signing", "registry", "policy", "gate", "docker"}


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise UsageError(f"cannot read config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config {path} is not valid TOML: {exc}") from exc


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "notary" / "notary.toml"


def find_config(explicit: str | None) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise UsageError(f"config file {path} does not exist")
        return path
    for candidate in (Path("notary.toml"), user_config_path()):
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class Config:
    path: Path | None
    data: Mapping[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> Mapping[str, Any]:
        value = self.data.get(name, {})
        if not isinstance(value, Mapping):
            raise UsageError(f"config {self.path}: [{name}] must be a table")
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
        if not isinstance(value, str):
            raise UsageError(f"config {self.path}: ledger must be a URL string")
        if value.startswith("file://") or "://" in value:
            return value
        return Path(self.resolve_path(value)).resolve().as_uri()

    @property
    def state_dir(self) -> str | None:
        value = self.data.get("state_dir")
        return self.resolve_path(str(value)) if value else None


def load_config(explicit: str | None = None) -> Config:
    path = find_config(explicit or os.environ.get("NOTARY_CONFIG"))
    if path is None:
        return Config(path=None, data={})
    data = _load_toml(path)
    unknown = set(data) - KNOWN_TOP_LEVEL
    if unknown:
        raise UsageError(
            f"config {path}: unknown setting(s) {', '.join(sorted(unknown))}",
            hint=f"known: {', '.join(sorted(KNOWN_TOP_LEVEL))}",
        )
    return Config(path=path, data=data)


def ledger_url_from(flag: str | None, config: Config) -> str | None:
    return flag or os.environ.get("NOTARY_LEDGER") or config.ledger_url


def state_dir_from(config: Config) -> str | None:
    return os.environ.get("NOTARY_STATE_DIR") or config.state_dir
