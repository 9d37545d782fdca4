"""Every setting of the immudb backend, read in one place, once per opened ledger: the environment, then
`[immudb]` in notary.toml (the environment wins). `open_ledger` passes the typed result down; no immudb module
reads the environment, and this one reads only the variables it is handed (notary.environment).

The password is a secret: kept out of repr, read from NOTARY_IMMUDB_PASSWORD or the file
NOTARY_IMMUDB_PASSWORD_FILE names (never an argument), and only when a connection needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from notary.environment import given
from notary.errors import UsageError
from notary.fsio import MAX_KEY, read_regular

if TYPE_CHECKING:
    from notary.config import Config

DEFAULT_TIMEOUT = 10.0
MAX_PASSWORD_FILE = 64 << 10  # a password, perhaps with a trailing newline
MAX_REPLICAS = 16
_PASSWORD_HINT = "set NOTARY_IMMUDB_PASSWORD or NOTARY_IMMUDB_PASSWORD_FILE, never a command-line argument"


@dataclass(frozen=True)
class ImmudbSettings:
    mirror: bool = True  # check reads against the verified mirror (docs/immudb.md)
    mirror_configured: bool = False  # set by NOTARY_IMMUDB_MIRROR or [immudb] mirror (an opt-out is noticed)
    gateway: str | None = None  # immudb's HTTP gateway instead of gRPC
    gateway_ca: str | None = None
    replicas: tuple[str, ...] = ()  # host:port of read replicas
    read_from: str = "primary"  # or "replicas": reads there while the primary is up too
    timeout: float = DEFAULT_TIMEOUT
    server_key_file: str | None = None  # the server's state-signing public key (PEM)
    password_value: str | None = field(default=None, repr=False)
    password_file: str | None = None

    @classmethod
    def load(cls, config: Config | None = None, environ: Mapping[str, str] | None = None) -> ImmudbSettings:
        """environ: the variables the caller read (Environment.variables; None: this process's, now)."""
        env = _variables(environ)
        section: Mapping[str, object] = config.section("immudb") if config is not None else {}
        mirror, configured = _mirror(env, section)
        ca = env.get("NOTARY_IMMUDB_GATEWAY_CA") or section.get("gateway_ca")
        return cls(mirror=mirror, mirror_configured=configured, gateway=_gateway(env, section),
                   gateway_ca=str(ca) if ca else None, replicas=_replicas(env, section),
                   read_from=_read_from(env, section), timeout=_timeout(env),
                   server_key_file=env.get("NOTARY_IMMUDB_SERVER_KEY") or None,
                   password_value=env.get("NOTARY_IMMUDB_PASSWORD") or None,
                   password_file=env.get("NOTARY_IMMUDB_PASSWORD_FILE") or None)

    def password(self, user: str) -> str:
        """The password from NOTARY_IMMUDB_PASSWORD, else from the file NOTARY_IMMUDB_PASSWORD_FILE names."""
        if self.password_value:
            return self.password_value
        if self.password_file:
            try:
                value = _read_named_file("NOTARY_IMMUDB_PASSWORD_FILE", self.password_file,
                                         MAX_PASSWORD_FILE).decode().rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise UsageError(f"NOTARY_IMMUDB_PASSWORD_FILE {self.password_file} is not UTF-8 text") from exc
            if not value:
                raise UsageError(f"NOTARY_IMMUDB_PASSWORD_FILE {self.password_file} is empty", hint=_PASSWORD_HINT)
            return value
        raise UsageError(f"no password for immudb user {user}", hint=_PASSWORD_HINT)

    def server_key(self) -> str | None:
        """The server's state-signing public key (PEM) named by NOTARY_IMMUDB_SERVER_KEY, normalised."""
        if not self.server_key_file:
            return None
        from notary.ledger.immudb._conn import normalise_public_key

        data = _read_named_file("NOTARY_IMMUDB_SERVER_KEY", self.server_key_file, MAX_KEY)
        return normalise_public_key(data, source=f"NOTARY_IMMUDB_SERVER_KEY {self.server_key_file}")


def _variables(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    """The variables a caller read (Environment.variables), else the process's now."""
    return given(None).variables if environ is None else environ


def _read_named_file(variable: str, path: str, limit: int) -> bytes:
    """A file an environment variable names, bounded and regular only: a FIFO, a directory or /dev/zero given
    as a secret file is one usage line, never a hung or memory-filling client."""
    try:
        return read_regular(path, limit, "file", error=UsageError)
    except UsageError as exc:
        raise UsageError(f"cannot read {variable}: {exc.message}") from None


def _mirror(env: Mapping[str, str], section: Mapping[str, object]) -> tuple[bool, bool]:
    """NOTARY_IMMUDB_MIRROR (1/0, true/false, yes/no, on/off), else `[immudb] mirror`, else on: completeness is
    the default on every path; off is an explicit, noticed opt-out."""
    raw = env.get("NOTARY_IMMUDB_MIRROR", "").strip().lower()
    if raw:
        if raw in ("1", "true", "yes", "on"):
            return True, True
        if raw in ("0", "false", "no", "off"):
            return False, True
        raise UsageError(f"NOTARY_IMMUDB_MIRROR={raw!r} is neither 1 nor 0")
    configured = section.get("mirror")
    return (True, False) if configured is None else (bool(configured), True)


def _gateway(env: Mapping[str, str], section: Mapping[str, object]) -> str | None:
    """NOTARY_IMMUDB_GATEWAY (empty, "none" or "off": not used), else `[immudb] gateway`, else gRPC."""
    raw = env.get("NOTARY_IMMUDB_GATEWAY")
    if raw is not None:
        return None if raw.strip().lower() in ("", "none", "off") else raw
    configured = section.get("gateway")
    return str(configured) if configured else None


def _replicas(env: Mapping[str, str], section: Mapping[str, object]) -> tuple[str, ...]:
    """NOTARY_IMMUDB_REPLICAS (comma-separated), else `[immudb] replicas`: host:port each, checked before any
    connection."""
    from notary.ledger.immudb._conn import parse_url

    raw = env.get("NOTARY_IMMUDB_REPLICAS")
    if raw is not None:
        listed: object = [part.strip() for part in raw.split(",") if part.strip()]
        where = "NOTARY_IMMUDB_REPLICAS"
    else:
        listed = section.get("replicas", [])
        where = "[immudb] replicas"
    if not isinstance(listed, list) or not all(isinstance(a, str) for a in listed) or len(listed) > MAX_REPLICAS:
        raise UsageError(f"{where} must be a list of at most {MAX_REPLICAS} host:port strings")
    for address in listed:
        if "/" in address or "@" in address:
            raise UsageError(f"{where}: {address[:80]!r} is not a host:port")
        parse_url(f"immudb://replica@{address}/db")
    return tuple(listed)


def _read_from(env: Mapping[str, str], section: Mapping[str, object]) -> str:
    """NOTARY_IMMUDB_READ_FROM, else `[immudb] read_from`: "primary" (the default) or "replicas"."""
    raw = env.get("NOTARY_IMMUDB_READ_FROM")
    where = "NOTARY_IMMUDB_READ_FROM"
    if raw is None:
        raw = str(section.get("read_from", "primary"))
        where = "[immudb] read_from"
    value = raw.strip().lower() or "primary"
    if value not in ("primary", "replicas"):
        raise UsageError(f"{where} is {raw[:40]!r}: it is \"primary\" or \"replicas\"")
    return value


def _timeout(env: Mapping[str, str]) -> float:
    raw = env.get("NOTARY_IMMUDB_TIMEOUT")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise UsageError(f"NOTARY_IMMUDB_TIMEOUT={raw!r} is not a number of seconds between 0 and 3600")
    return value


def read_password(user: str, environ: Mapping[str, str] | None = None) -> str:
    """The environment's immudb password for user (ImmudbSettings.password), that setting alone."""
    env = _variables(environ)
    return ImmudbSettings(password_value=env.get("NOTARY_IMMUDB_PASSWORD") or None,
                          password_file=env.get("NOTARY_IMMUDB_PASSWORD_FILE") or None).password(user)


def read_timeout(environ: Mapping[str, str] | None = None) -> float:
    return _timeout(_variables(environ))


def read_server_key(environ: Mapping[str, str] | None = None) -> str | None:
    env = _variables(environ)
    return ImmudbSettings(server_key_file=env.get("NOTARY_IMMUDB_SERVER_KEY") or None).server_key()
