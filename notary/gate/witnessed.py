"""K of N witnesses before the gate trusts a head: admissions only from the witnessed prefix of the ledger.

A ledger that shows the gate a history it shows nobody else (a split view) is caught only by someone comparing
heads; witnesses are who does, by cosigning a checkpoint only after checking it consistent with every one
they saw before. With `[policy.witnesses]`, the gate reads the newest cosigned checkpoint (written by `notary
ledger checkpoint --witness URL ... -o FILE`, run after notarizing or from a timer), checks the ledger's
signature and at least `min` cosignatures by the listed witness keys, and proves the checkpoint a prefix of
its own verified head (RFC 9162 consistency; not one: a split view, exit 3).

Then the decision is made twice. On the whole verified head, so a revocation counts as soon as the gate sees
it (honouring a revocation early can only refuse; a trusted revoker signed it either way). And on the
witnessed prefix (Prefix: every history cut at the checkpoint's tree size), which must admit too: a record
not yet covered by enough cosignatures admits nothing. An image notarized a moment ago is refused until the
next checkpoint is witnessed, and the refusal says so.

The checkpoint file is re-read only when it changes (inode, size, mtime) and its consistency proof only when
the head or the checkpoint moved, so the per-decision cost is one stat.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from notary.errors import ProofError, UsageError
from notary.ledger.base import Entry, HistoryReader, LedgerInfo, TreeHead


@dataclass(frozen=True)
class WitnessRule:
    """[policy.witnesses]: the witness keys (C2SP vkeys), how many must cosign, and the checkpoint file."""

    vkeys: tuple[str, ...]
    min_witnesses: int
    checkpoint: str


WITNESS_KEYS = {"keys", "min", "checkpoint"}
MAX_VKEY_FILE = 4096


def parse_witness_rule(table: object, resolve: Callable[[str], str], where: str) -> WitnessRule:
    """[policy.witnesses] `keys` (files holding a witness's C2SP vkey, relative to the config), `min` (default:
    all of them) and `checkpoint` (the cosigned checkpoint file the gate reads); every problem a UsageError
    at load, so a gate never starts with a witness rule it cannot apply."""
    from notary.audit import note as notes
    from notary.errors import NotaryError
    from notary.fsio import read_regular

    if not isinstance(table, Mapping):
        raise UsageError(f"{where}: witnesses must be a table ([policy.witnesses])")
    unknown = sorted(set(table) - WITNESS_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown setting(s) {', '.join(unknown)}", hint="keys, min, checkpoint")
    paths = table.get("keys")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise UsageError(f"{where}: keys must list the witnesses' vkey files")
    vkeys: list[str] = []
    for path in paths:
        try:
            text = read_regular(resolve(path), MAX_VKEY_FILE, "witness vkey").decode("utf-8").strip()
            notes.parse_vkey(text)
        except (NotaryError, UnicodeDecodeError) as exc:
            why = exc.one_line() if isinstance(exc, NotaryError) else "not UTF-8"
            raise UsageError(f"{where}: witness key {path}: {why}") from exc
        vkeys.append(text)
    if len(set(vkeys)) != len(vkeys):
        raise UsageError(f"{where}: a witness key is listed twice (K of N must be N distinct witnesses)")
    need = table.get("min", len(vkeys))
    if isinstance(need, bool) or not isinstance(need, int) or not 1 <= need <= len(vkeys):
        raise UsageError(f"{where}: min must be a whole number from 1 to {len(vkeys)} (the witnesses listed), "
                         f"not {need!r:.40}")
    checkpoint = table.get("checkpoint")
    if not isinstance(checkpoint, str) or not checkpoint:
        raise UsageError(f"{where}: checkpoint must name the cosigned checkpoint file",
                         hint="written by `notary ledger checkpoint --witness URL -o FILE`")
    return WitnessRule(tuple(vkeys), need, resolve(checkpoint))


@runtime_checkable
class CheckpointedLedger(Protocol):
    """A ledger whose log is an RFC 9162 tree, signed by a key its clients pin (the embedded ledger)."""

    ledger_id: str
    public_raw: bytes

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]: ...


class Shortfall(Exception):
    """The checkpoint exists but is not cosigned by enough of the policy's witnesses: a refusal (exit 1)."""


class Prefix:
    """A HistoryReader of ledger cut at tree size `size`: only entries whose leaf lies inside it."""

    def __init__(self, ledger: HistoryReader, size: int) -> None:
        self.ledger = ledger
        self.size = size

    def history(self, key: str) -> list[Entry]:
        return [e for e in self.ledger.history(key) if _leaf(e) < self.size]

    def info(self) -> LedgerInfo:
        return self.ledger.info()

    def close(self) -> None:
        """The ledger is the gate's: the view leaves it open."""


def _leaf(entry: Entry) -> int:
    leaf = entry.proof.get("leaf_index")
    if type(leaf) is not int:
        raise ProofError(f"entry {entry.key} at tx {entry.tx} carries no leaf index: the witnessed prefix "
                         "cannot be told")
    return leaf


class Witnessed:
    """The witnessed tree size for a gate (thread-safe; cached as the module docstring says)."""

    def __init__(self, rule: WitnessRule) -> None:
        from notary.audit import note as notes

        self.rule = rule
        self.witnesses = [notes.parse_vkey(v) for v in rule.vkeys]
        self._lock = threading.Lock()
        self._file: tuple[int, int, int] | None = None
        self._checkpoint: Any = None  # notes.Checkpoint of the last good read
        self._proven: tuple[int, bytes, int] | None = None  # (checkpoint size, root, head size) proven

    def size(self, ledger: object, head: TreeHead) -> int:
        """The tree size the witnesses vouch for; Shortfall, ProofError (split view) or UsageError."""
        if not isinstance(ledger, CheckpointedLedger):
            raise UsageError("[policy.witnesses] needs the embedded ledger: immudb heads are not RFC 6962 trees "
                             "that C2SP witnesses cosign")
        with self._lock:
            checkpoint = self._read(ledger)
            key = (checkpoint.size, checkpoint.root, head.tree_size)
            if self._proven != key:
                from notary.audit import checkpoints

                proof = (ledger.consistency_proof(checkpoint.size, head.tree_size)
                         if 0 < checkpoint.size < head.tree_size else [])
                checkpoints.consistent_with(checkpoint, head, proof)
                if checkpoint.size == head.tree_size and checkpoint.root != head.root:
                    raise ProofError(f"split view: the witnessed checkpoint at size {checkpoint.size} has another "
                                     "root than the verified head of the same size")
                self._proven = key
            return int(checkpoint.size)

    def _read(self, ledger: CheckpointedLedger) -> Any:
        from notary.audit import checkpoints
        from notary.audit import note as notes
        from notary.errors import NotFoundError
        from notary.fsio import read_regular

        path = self.rule.checkpoint
        try:
            st = os.stat(path)
        except FileNotFoundError as exc:
            raise Shortfall(f"no witnessed checkpoint at {path}: run `notary ledger checkpoint --witness URL "
                            f"-o {path}`") from exc
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self._file and self._checkpoint is not None:
            return self._checkpoint
        try:
            note = notes.parse_note(read_regular(path, notes.MAX_NOTE, "witnessed checkpoint"))
        except NotFoundError as exc:
            raise Shortfall(f"no witnessed checkpoint at {path}") from exc
        log = checkpoints.log_verifier(ledger.ledger_id, ledger.public_raw)
        checkpoint, cosigned = checkpoints.check(note, log, self.witnesses, 0)  # ProofError: not the log's
        if len(cosigned) < self.rule.min_witnesses:
            raise Shortfall(f"the checkpoint at {path} (size {checkpoint.size}) is cosigned by {len(cosigned)} of "
                            f"the policy's witnesses, {self.rule.min_witnesses} required")
        self._file, self._checkpoint, self._proven = stamp, checkpoint, None
        return checkpoint
