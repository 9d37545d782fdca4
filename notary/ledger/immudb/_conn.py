"""Everything about reaching an immudb server that is not a proof or a setting: the URL, keys, error mapping
(settings, the password among them, are notary.ledger.settings).

Kept apart from the ledger so the strict parsing of user input is testable without grpc installed, and so every
gRPC failure becomes one typed, one-line notary error in a single place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from notary.errors import InputError, LedgerUnavailableError, NotaryError, ProofError, UsageError

DEFAULT_PORT = 3322
_DB_RE = re.compile(r"[a-z0-9_]{1,128}")  # immudb's own rule: lower-case letters, digits, underscore
_USER_RE = re.compile(r"[A-Za-z0-9_.\-]{1,63}")
_URL_FORM = "immudb://USER@HOST:PORT/DATABASE"
_PASSWORD_HINT = "set NOTARY_IMMUDB_PASSWORD or NOTARY_IMMUDB_PASSWORD_FILE, never a command-line argument"


class ServerError(LedgerUnavailableError):
    """immudb answered a request with an error; `detail` is immudb's own message, which the read logic reads
    ("key not found", "tx not found"), whichever transport brought it."""

    def __init__(self, message: str, detail: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.detail = detail

    @property
    def key_missing(self) -> bool:
        return self.detail.endswith("key not found")


@dataclass(frozen=True)
class ImmudbTarget:
    user: str
    host: str
    port: int
    database: str

    @property
    def address(self) -> str:
        return host_port(self.host, self.port)

    @property
    def url(self) -> str:
        return f"immudb://{self.user}@{self.address}/{self.database}"


def host_port(host: str, port: int) -> str:
    """host:port, an IPv6 host in brackets (as URLs and HTTP Host headers write it)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_url(url: str) -> ImmudbTarget:
    """Validate an immudb ledger URL strictly. A password in it is refused without echoing the URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"malformed immudb ledger URL: {exc}", hint=f"use {_URL_FORM}") from exc
    userinfo, at, _ = parts.netloc.rpartition("@")
    if ":" in userinfo or parts.password is not None:
        raise UsageError("the immudb ledger URL must not contain a password", hint=_PASSWORD_HINT)
    if parts.scheme != "immudb":
        raise UsageError(f"not an immudb ledger URL: {url!r}", hint=f"use {_URL_FORM}")
    if parts.query or parts.fragment:
        raise UsageError(f"immudb ledger URL {url!r} must not have a query or fragment", hint=f"use {_URL_FORM}")
    user = unquote(userinfo)
    if not at or not _USER_RE.fullmatch(user):
        raise UsageError(f"immudb ledger URL {url!r} needs a user name", hint=f"use {_URL_FORM}")
    host = parts.hostname or ""
    if not host or not re.fullmatch(r"[A-Za-z0-9.\-:]+", host):
        raise UsageError(f"immudb ledger URL {url!r} needs a host", hint=f"use {_URL_FORM}")
    if port == 0:
        raise UsageError(f"immudb ledger URL {url!r} has port 0", hint=f"use {_URL_FORM}")
    database = parts.path[1:] if parts.path.startswith("/") else ""
    if not _DB_RE.fullmatch(database):
        raise UsageError(
            f"immudb ledger URL {url!r} needs a database name (lower-case letters, digits, _)",
            hint=f"use {_URL_FORM}, e.g. immudb://immudb@127.0.0.1:3322/defaultdb",
        )
    return ImmudbTarget(user=user, host=host.lower(), port=port or DEFAULT_PORT, database=database)


def normalise_public_key(pem: bytes, *, source: str) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_public_key,
    )

    try:
        key = load_pem_public_key(pem)
    except ValueError as exc:
        raise UsageError(f"{source} is not a PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise UsageError(f"{source} is not an ECDSA public key (immudb signs states with ECDSA P-256)")
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def _short(details: str) -> str:
    first = (details or "no details").splitlines()[0].strip()
    if "Connection refused" in first:
        return "connection refused"
    if "Deadline Exceeded" in first or "deadline" in first.lower():
        return "timed out"
    return first[:160]


def translate(exc: BaseException, target: ImmudbTarget, what: str) -> NotaryError | None:
    """The notary error for a failed gRPC call (immudb-py serves as a client only, so grpc's errors are all it
    raises); None if exc is not one of them (a bug)."""
    if isinstance(exc, NotaryError):
        return exc
    import grpc

    if isinstance(exc, grpc.RpcError):
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        where = f"immudb at {target.address}"
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
            return LedgerUnavailableError(
                f"{where} is unreachable ({_short(details)})",
                hint="is the server running? check host and port in the ledger URL, or NOTARY_IMMUDB_TIMEOUT",
            )
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED) or (
            "invalid user name or password" in (details or "")
        ):
            return LedgerUnavailableError(
                f"{where} refused user {target.user}: wrong user name or password, or no permission",
                hint=_PASSWORD_HINT,
            )
        if code == grpc.StatusCode.NOT_FOUND and "does not exist" in (details or ""):
            return LedgerUnavailableError(
                f"{where} has no database {target.database}",
                hint=f"create it first (immuadmin database create {target.database})",
            )
        if "max number of entries per tx exceeded" in (details or ""):
            return InputError(
                f"{where} refused the transaction: too many keys in one transaction",
                hint="immudb allows 1024 per transaction by default; split the write",
            )
        if "corrupted" in (details or ""):  # immudb's own hash checks failed on its stored data
            return ProofError(
                f"{where} reports corrupted data while trying to {what}: {_short(details)}",
                hint="the ledger's storage was altered or damaged; do not trust it",
            )
        return ServerError(f"{where} failed to {what}: {_short(details)}", details or "")
    return None
