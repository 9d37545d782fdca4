"""The gateway's login token, cached beside the trusted state so a process logs in (bcrypt on the server)
only when it must. The file is 0600 in the user's state directory; a token that cannot be read, is not plain
printable ASCII, or expires within a minute is ignored (the caller logs in again and replaces it)."""

from __future__ import annotations

import json
import time
from base64 import urlsafe_b64decode
from datetime import datetime
from pathlib import Path
from typing import TypeGuard

from notary.errors import InputError

MAX_TOKEN = 4096


def usable_token(token: object) -> TypeGuard[str]:
    """A token goes into an Authorization header and a file: printable ASCII only (no CR/LF), bounded."""
    return isinstance(token, str) and 0 < len(token) <= MAX_TOKEN and token.isascii() and token.isprintable()


def expires(token: str) -> float:
    """The expiry a v2.public (PASETO) token states in its payload; 0 when it cannot be read (log in again)."""
    try:
        body = token.split(".")[2]
        payload = urlsafe_b64decode(body + "=" * (-len(body) % 4))[:-64]  # the Ed25519 signature ends it
        exp = json.loads(payload)["exp"]
        return datetime.fromisoformat(str(exp).replace("Z", "+00:00")).timestamp()
    except (IndexError, ValueError, KeyError, TypeError, RecursionError):
        return 0.0


def cached_token(path: Path) -> str | None:
    """The token cached at path, still valid for a minute, or None."""
    from notary.fsio import read_regular

    try:
        token = read_regular(path, MAX_TOKEN, "immudb token", error=InputError).decode("ascii")
    except (OSError, InputError, UnicodeDecodeError):
        return None
    return token if usable_token(token) and expires(token) > time.time() + 60 else None


def save_token(directory: Path, path: Path, token: str) -> None:
    from notary.fsio import atomic_write

    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(path, token.encode("ascii"), 0o600)
    except OSError:
        pass  # a cache: the next process logs in again
