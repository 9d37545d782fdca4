"""The mirror's seal: what spares a new process re-hashing the whole mirror, and why that is safe.

A mirror is re-hashed to catch anything that changed its rows since a notary process last checked them: an
edit, a truncation, a copy of an older file, a disk fault. That costs about 25 µs per transaction on every
process start (2.5 s at 100,000), which a runtime hook cannot pay. The seal is the record a notary process
leaves after it verified (or verified and extended) the file: up to which transaction, its Alh, and the
file's stamp, taken under SQLite's shared lock so the stamp and the rows it describes are the same.

The stamp is the kernel's view of the file: device, inode, size, modification and change times (ns), and the
same for the rollback journal if one exists. Whoever writes the file moves its change time (ctime), and no
unprivileged process can set it back, so a stamp equal to the seal's means the file is the one a notary
process left: byte for byte, the rows it verified. A copy (other inode), an edit through SQLite or not
(other ctime, even with the mtime restored), a recovered hot journal (the rollback writes the file) all
change it, and then the whole file is re-hashed again, and sealed anew if it passes.

The seal only ever saves work; it is never believed beyond "these rows were checked": a missing, unreadable or
foreign seal means a full re-hash, and the rows after the sealed transaction are re-hashed in every case.
The trusted state still decides whether the chain ends where this client trusts it (`Mirror.catch_up`).
Someone who can rewrite files in the state directory can rewrite the trusted state too; the seal gives such
a writer nothing new.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import NamedTuple

from notary import jsonsafe
from notary.errors import NotaryError
from notary.fsio import atomic_write, read_regular

FORMAT = "notary.immudb-mirror-seal/v1"
_MAX_SEAL = 4096

Stamp = tuple[tuple[int, int, int, int, int] | None, ...]


class Seal(NamedTuple):
    tx: int
    alh: bytes
    entries: int
    stamp: Stamp


def seal_path(mirror: Path) -> Path:
    return mirror.with_name(mirror.name + ".seal")


def stamp(mirror: Path) -> Stamp:
    """The kernel's stamp of the mirror file and of its rollback journal (None where there is none)."""
    return tuple(_stat(mirror.with_name(mirror.name + suffix)) for suffix in ("", "-journal", "-wal"))


def load(mirror: Path, ledger_id: str) -> Seal | None:
    """The seal left beside mirror, or None when there is none or it is not one for this ledger (re-hash)."""
    path = seal_path(mirror)
    try:
        raw = read_regular(path, _MAX_SEAL, "mirror seal")
        data = jsonsafe.loads(raw, f"mirror seal {path}")
        if data.get("format") != FORMAT or data.get("ledger_id") != ledger_id:
            return None
        found = tuple(None if s is None else tuple(int(v) for v in s) for s in data["stamp"])
        if len(found) != 3 or any(s is not None and len(s) != 5 for s in found):
            return None
        seal = Seal(int(data["tx"]), bytes.fromhex(data["alh"]), int(data["entries"]), found)  # type: ignore[arg-type]
        return seal if seal.tx >= 0 and seal.entries >= 0 and len(seal.alh) == 32 else None
    except (NotaryError, OSError, AttributeError, KeyError, TypeError, ValueError):
        return None


def save(mirror: Path, ledger_id: str, seal: Seal) -> None:
    """Leave the seal (0600, atomic). A seal that cannot be written costs the next process a re-hash, no more."""
    data = {"format": FORMAT, "ledger_id": ledger_id, "tx": seal.tx, "alh": seal.alh.hex(),
            "entries": seal.entries, "stamp": [list(s) if s is not None else None for s in seal.stamp]}
    with contextlib.suppress(OSError):
        atomic_write(seal_path(mirror), json.dumps(data, sort_keys=True).encode() + b"\n", 0o600)


def discard(mirror: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        seal_path(mirror).unlink()


def _stat(path: Path) -> tuple[int, int, int, int, int] | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
