"""SQLite errors of the files notary keeps beside an immudb ledger (the mirror, the key index), as one clear line.

A busy, missing, read-only or full file is the machine's trouble (LedgerUnavailableError, exit 4); anything else
SQLite or a row's shape raises means the file is not what notary wrote, and each file says what that is."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator

from notary.errors import LedgerUnavailableError, NotaryError

_UNAVAILABLE = ("locked", "unable to open", "disk I/O", "readonly", "full")


@contextlib.contextmanager
def translated(what: str, name: str, altered: Callable[[str], NotaryError],
               shapes: tuple[type[Exception], ...]) -> Iterator[None]:
    """Run a block of SQL on the file `name`: `cannot {what} {name}` when unavailable, altered(why) when corrupt.
    shapes: the exceptions a row of the wrong type raises in the caller's decoding."""
    try:
        yield
    except NotaryError:
        raise
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if any(s in text for s in _UNAVAILABLE):
            raise LedgerUnavailableError(f"cannot {what} {name}: {text}") from exc
        raise altered(text) from exc
    except sqlite3.Error as exc:  # "file is not a database", malformed pages, constraint violations
        raise altered(str(exc)) from exc
    except shapes as exc:  # a column holding another type than we store
        raise altered(f"a row holds a value of the wrong type ({exc})") from exc
