"""The client's trusted ledger state, kept outside the ledger it protects.

One JSON file per ledger identity. Writes are atomic (temp file, fsync, rename) and forward-only: saving a
state with a smaller tree size than the stored one is refused, so no code path can move trust backwards.
An unreadable or corrupt file is an error (fail closed): silently starting over would re-trust whatever the
ledger says now, which is exactly what an attacker who deleted the file wants.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from notary import jsonsafe
from notary.environment import Environment, given
from notary.errors import RollbackError, TrustStoreError
from notary.fsio import atomic_write, read_regular

FORMAT = "notary.trusted-state/v1"
MAX_STATE_FILE = 1 << 20  # a state is a few hundred bytes; extra holds a few backend fields


_EMPTY: Mapping[str, object] = MappingProxyType({})  # a shared default no one can change


class TrustedState(NamedTuple):
    """What this client last proved about a ledger.

    tree_size/root_hash: the head it verified; tx: that head's transaction; ledger_key: the ledger's public
    key (PEM) pinned on first use or configured, when the backend signs heads; extra: backend specifics
    (e.g. immudb's database name and server uuid).
    """

    ledger_id: str
    tree_size: int
    root_hash: str
    tx: int
    ledger_key: str | None = None
    # Mapping[str, object] once the backends narrow the fields they read back (bytes.fromhex of a str)
    extra: Mapping[str, Any] = _EMPTY

    def to_json(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "ledger_id": self.ledger_id,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "tx": self.tx,
            "ledger_key": self.ledger_key,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_json(cls, data: object, source: str) -> TrustedState:
        try:
            if not isinstance(data, dict):  # what data.get would raise on any other JSON value
                raise AttributeError(f"{type(data).__name__!r} object has no attribute 'get'")
            if data.get("format") != FORMAT:
                raise ValueError(f"unknown format {data.get('format')!r}")
            ledger_id, tree_size = str(data["ledger_id"]), _int(data["tree_size"])
            root_hash, tx, ledger_key = str(data["root_hash"]), _int(data["tx"]), data.get("ledger_key")
            if ledger_key is not None and not isinstance(ledger_key, str):
                raise TypeError("its ledger_key is not a string")
            state = cls(ledger_id=ledger_id, tree_size=tree_size, root_hash=root_hash, tx=tx, ledger_key=ledger_key,
                        extra=_mapping(data.get("extra") or {}))
            bytes.fromhex(state.root_hash)
            if state.tree_size < 0 or state.tx < 0:
                raise ValueError("negative size")
            return state
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise TrustStoreError(
                f"trusted state {source} is corrupt: {exc}",
                hint="restore it from a backup; deleting it means trusting the ledger anew",
            ) from exc


def _int(value: object) -> int:
    """int(value) as the state file was always read (a numeric string or a number is taken), typed."""
    if isinstance(value, (str, int, float)):
        return int(value)
    raise TypeError(f"int() argument must be a string, a bytes-like object or a real number, "
                    f"not {type(value).__name__!r}")


def _mapping(value: object) -> dict[str, object]:
    """The backend fields: to_json writes them as one JSON object; anything else is a corrupt file."""
    if not isinstance(value, dict):
        raise TypeError("its extra is not an object")
    return dict(value)


def default_state_dir(env: Environment | None = None) -> Path:
    """NOTARY_STATE_DIR, else notary/ under XDG_STATE_HOME (default ~/.local/state)."""
    env = given(env)
    if env.state_dir:
        return Path(env.state_dir)
    base = env.xdg_state_home or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "notary"


class TrustStore:
    """Trusted states of every ledger this client has talked to, in one directory."""

    def __init__(self, directory: Path | str | None = None, *, env: Environment | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_state_dir(env)

    def path_for(self, ledger_id: str) -> Path:
        name = hashlib.sha256(ledger_id.encode()).hexdigest()[:32]
        return self.directory / f"ledger-{name}.json"

    def load(self, ledger_id: str) -> TrustedState | None:
        """The stored state, or None on first contact. Raises TrustStoreError if the file is unusable."""
        path = self.path_for(ledger_id)
        try:
            os.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as exc:  # unreadable directory: an error, never "first contact" (that would re-trust)
            raise TrustStoreError(f"cannot read trusted state {path}: {exc.strerror}") from exc
        # bounded, regular file only: a state file swapped for a FIFO or /dev/zero must fail closed with one
        # line, not hang every verify or fill memory (a vanished file from here on is an error, not first use)
        raw = read_regular(path, MAX_STATE_FILE, "trusted state", error=TrustStoreError)
        try:
            data = jsonsafe.parse(raw, f"trusted state {path}", error=TrustStoreError)
        except TrustStoreError as exc:
            raise TrustStoreError(
                f"trusted state {path} is corrupt: not JSON ({exc.message})",
                hint="restore it from a backup; deleting it means trusting the ledger anew",
            ) from exc
        state = TrustedState.from_json(data, str(path))
        if state.ledger_id != ledger_id:
            raise TrustStoreError(f"trusted state {path} belongs to ledger {state.ledger_id}, not {ledger_id}")
        return state

    def save(self, state: TrustedState) -> None:
        """Persist state, refusing any move backwards (smaller tree) or sideways (other ledger key)."""
        current = self.load(state.ledger_id)
        if current is not None:
            if state.tree_size < current.tree_size:
                raise RollbackError(
                    f"refusing to move trusted state of {state.ledger_id} back from size "
                    f"{current.tree_size} to {state.tree_size}"
                )
            if state.tree_size == current.tree_size and state.root_hash != current.root_hash:
                raise RollbackError(f"ledger {state.ledger_id} forked: same size {state.tree_size}, other root")
            if current.ledger_key and state.ledger_key != current.ledger_key:
                raise RollbackError(f"ledger {state.ledger_id} changed its signing key")
            if state == current:
                return
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.path_for(state.ledger_id)
        data = json.dumps(state.to_json(), indent=2, sort_keys=True).encode() + b"\n"
        try:
            atomic_write(path, data, 0o600)
        except OSError as exc:
            raise TrustStoreError(f"cannot write trusted state {path}: {exc.strerror}") from exc
