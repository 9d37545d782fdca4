"""Which ledger lives at a path: pinned in the trust store the first time a client opens it.

Trusted states are kept per ledger identity (its key). Without a pin per *path*, a ledger file deleted and
replaced by a fresh one (a new key) would look like a first use, and be trusted anew. So the first ledger a
client meets at a path is pinned, and any other ledger there later, or none, is a RollbackError (exit 3).
"""

from __future__ import annotations

from pathlib import Path

from notary import merkle
from notary.errors import RollbackError
from notary.ledger.trust import TrustedState, TrustStore


def location_id(path: Path) -> str:
    return f"location:{path.as_uri()}"


def pinned(trust: TrustStore, path: Path) -> TrustedState | None:
    """The pin of path, if this client has met a ledger there."""
    return trust.load(location_id(path))


def replaced(trust: TrustStore, path: Path, pin: TrustedState, now_id: str | None) -> RollbackError:
    was = pin.extra.get("ledger_id", "?")
    now = f"now holds {now_id}" if now_id else "is gone"
    return RollbackError(
        f"ledger at {path} was replaced: this client trusts {was} there, the file {now}",
        hint=f"if the replacement is intended, remove {trust.path_for(location_id(path))}",
    )


def pin(trust: TrustStore, path: Path, existing: TrustedState | None, ledger_id: str, ledger_key: str) -> None:
    """Pin ledger_id at path on first contact; refuse any other ledger where one is pinned."""
    if existing is None:
        trust.save(TrustedState(
            ledger_id=location_id(path), tree_size=0, root_hash=merkle.EMPTY_ROOT.hex(), tx=0,
            ledger_key=ledger_key, extra={"ledger_id": ledger_id, "path": str(path)},
        ))
    elif existing.extra.get("ledger_id") != ledger_id:
        raise replaced(trust, path, existing, ledger_id)
