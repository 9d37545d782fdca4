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
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from notary.errors import ProofError, UsageError
from notary.ledger.base import Entry, HistoryReader, LedgerInfo, TreeHead

if TYPE_CHECKING:
    from notary.audit.note import Checkpoint, Verifier
    from notary.ledger.immudb.mirror import Mirror


@dataclass(frozen=True)
class WitnessRule:
    """[policy.witnesses]: the witness keys (C2SP vkeys), how many must cosign, and the checkpoint file."""

    vkeys: tuple[str, ...]
    min_witnesses: int
    checkpoint: str
    log_key: str | None = None  # immudb: the vkey of the operator key that signs its checkpoints


WITNESS_KEYS = {"keys", "min", "checkpoint", "log_key"}
MAX_VKEY_FILE = 4096


def parse_witness_rule(table: object, resolve: Callable[[str], str], where: str) -> WitnessRule:
    """[policy.witnesses] `keys` (files holding a witness's C2SP vkey, relative to the config), `min` (default:
    all of them) and `checkpoint` (the cosigned checkpoint file the gate reads); every problem a UsageError
    at load, so a gate never starts with a witness rule it cannot apply."""

    if not isinstance(table, Mapping):
        raise UsageError(f"{where}: witnesses must be a table ([policy.witnesses])")
    unknown = sorted(set(table) - WITNESS_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown setting(s) {', '.join(unknown)}", hint="keys, min, checkpoint")
    paths = table.get("keys")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise UsageError(f"{where}: keys must list the witnesses' vkey files")
    vkeys = [_vkey_file(resolve, path, f"{where}: witness key {path}") for path in paths]
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
    log_key = table.get("log_key")
    if log_key is not None and (not isinstance(log_key, str) or not log_key):
        raise UsageError(f"{where}: log_key must name the file holding the checkpoint key's vkey")
    log_vkey = _vkey_file(resolve, log_key, f"{where}: log key {log_key}") if log_key else None
    return WitnessRule(tuple(vkeys), need, resolve(checkpoint), log_vkey)


def _vkey_file(resolve: Callable[[str], str], path: str, what: str) -> str:
    """The C2SP vkey a config-relative file holds, checked; a UsageError naming what it is for otherwise."""
    from notary.audit import note as notes
    from notary.errors import NotaryError
    from notary.fsio import read_regular

    try:
        text = read_regular(resolve(path), MAX_VKEY_FILE, "vkey").decode("utf-8").strip()
        notes.parse_vkey(text)
    except (NotaryError, UnicodeDecodeError) as exc:
        why = exc.one_line() if isinstance(exc, NotaryError) else "not UTF-8"
        raise UsageError(f"{what}: {why}") from exc
    return text


@runtime_checkable
class CheckpointedLedger(Protocol):
    """A ledger whose log is an RFC 9162 tree, signed by a key its clients pin (the embedded ledger)."""

    ledger_id: str
    public_raw: bytes

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]: ...


class Shortfall(Exception):
    """The checkpoint exists but is not cosigned by enough of the policy's witnesses: a refusal (exit 1)."""


class Prefix:
    """A HistoryReader of ledger cut at tree size `size`: only entries whose leaf lies inside it (immudb, whose
    tree has a leaf per transaction: whose transaction does)."""

    def __init__(self, ledger: HistoryReader, size: int) -> None:
        self.ledger = ledger
        self.size = size
        self.by_tx = not isinstance(ledger, CheckpointedLedger)

    def history(self, key: str) -> list[Entry]:
        if self.by_tx:
            return [e for e in self.ledger.history(key) if e.tx <= self.size]
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
        self._checkpoint: Checkpoint | None = None  # of the last good read
        self._proven: tuple[int, bytes, int] | None = None  # (checkpoint size, root, head size) proven

    def size(self, ledger: object, head: TreeHead) -> int:
        """The tree size the witnesses vouch for; Shortfall, ProofError (split view) or UsageError."""
        if not isinstance(ledger, CheckpointedLedger):
            return self._immudb_size(ledger, head)
        with self._lock:
            checkpoint = self._read(ledger, self._embedded_log(ledger))
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

    def _immudb_size(self, ledger: object, head: TreeHead) -> int:
        """immudb (docs/audit.md, "Checkpoints of an immudb ledger"): the checkpoint, signed by the policy's
        log_key, must be the ledger's binary linking tree at its size, recomputed from the verified mirror
        (once per checkpoint: those transactions never change); its size counts transactions."""
        from notary.audit import note as notes

        mirror: Mirror | None = getattr(ledger, "mirror", None)  # a mirrored immudb ledger's
        if mirror is None or not head.ledger_id.startswith("immudb:"):
            raise UsageError("[policy.witnesses] needs an embedded ledger, or an immudb ledger read with its "
                             "verified mirror")
        if self.rule.log_key is None:
            raise UsageError("[policy.witnesses] on an immudb ledger needs log_key: the vkey of the key that "
                             "signs its checkpoints (`notary ledger checkpoint --sign-key KEY --vkey`)")
        with self._lock:
            checkpoint = self._read(ledger, notes.parse_vkey(self.rule.log_key))
            if checkpoint.origin != head.ledger_id:
                raise ProofError(f"the witnessed checkpoint is of {checkpoint.origin!r}, this ledger is "
                                 f"{head.ledger_id!r}")
            if checkpoint.size > head.tx:
                raise ProofError(f"split view: the witnessed checkpoint is at size {checkpoint.size}, beyond the "
                                 f"verified head (tx {head.tx})")
            key = (checkpoint.size, checkpoint.root, -1)
            if self._proven != key:
                from notary.audit.immudb_checkpoints import check_tree

                # the log root only: the gate decides from its mirror, not the key index (which `audit
                # checkpoint` recomputes), and a whole-ledger build would stall every decision meanwhile
                check_tree(mirror, checkpoint, with_index=False)
                self._proven = key
            return int(checkpoint.size)

    @staticmethod
    def _embedded_log(ledger: CheckpointedLedger) -> Verifier:
        from notary.audit import checkpoints

        return checkpoints.log_verifier(ledger.ledger_id, ledger.public_raw)

    def _read(self, ledger: object, log: Verifier) -> Checkpoint:
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
        checkpoint, cosigned = checkpoints.check(note, log, self.witnesses, 0)  # ProofError: not the log's
        if len(cosigned) < self.rule.min_witnesses:
            raise Shortfall(f"the checkpoint at {path} (size {checkpoint.size}) is cosigned by {len(cosigned)} of "
                            f"the policy's witnesses, {self.rule.min_witnesses} required")
        self._file, self._checkpoint, self._proven = stamp, checkpoint, None
        return checkpoint
