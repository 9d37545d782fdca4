"""The one Ledger interface both backends implement, and the values that cross it.

Every method that returns data returns it *verified*: the backend proves each value is included in the
ledger's current tree head, proves that head consistent with the client's trusted state, and only then moves
the trusted state forward. Callers never see an unverified value except from `keys()`, which is an
enumeration hint (what to `get`), never evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol, runtime_checkable

_EMPTY: Mapping[str, Any] = MappingProxyType({})  # a shared default no one can change


class TreeHead(NamedTuple):
    """A ledger state: what the client pins. For the embedded ledger tree_size counts leaves (entries);
    for immudb it is the transaction id of the state (immudb's tree has one leaf per transaction)."""

    ledger_id: str
    tree_size: int
    root: bytes
    tx: int
    time: datetime | None = None
    signature: bytes | None = None
    map_root: bytes | None = None  # embedded ledgers from format v2: the signed key index root

    def to_json(self) -> dict[str, object]:
        return {
            "ledger_id": self.ledger_id,
            "tree_size": self.tree_size,
            "root_hash": self.root.hex(),
            "tx": self.tx,
            "time": _iso(self.time),
            "signature": self.signature.hex() if self.signature else None,
            **({"key_index_root": self.map_root.hex()} if self.map_root is not None else {}),
        }


class Entry(NamedTuple):
    """One verified version of one key.

    `proof` is a JSON-able description of the proofs that were checked (documented in docs/proofs.md), so an
    auditor can re-check them with any RFC 9162 (embedded) or immudb (immudb backend) implementation.
    """

    key: str
    value: bytes
    tx: int
    time: datetime | None
    revision: int
    proof: Mapping[str, Any] = _EMPTY

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "tx": self.tx,
            "time": _iso(self.time),
            "revision": self.revision,
            "proof": dict(self.proof),
        }


class WriteReceipt(NamedTuple):
    """A transaction that was written and then verified as included in a head consistent with trust."""

    tx: int
    time: datetime | None
    keys: tuple[str, ...]
    head: TreeHead
    parts: tuple[WriteReceipt, ...] = ()  # a partitioned ledger: each member's transaction (docs/partitions.md)


class LedgerInfo(NamedTuple):
    url: str
    backend: str
    ledger_id: str
    head: TreeHead
    trusted: Mapping[str, Any] | None
    entries: int | None = None
    transactions: int | None = None
    details: Mapping[str, Any] = _EMPTY

    def to_json(self) -> dict[str, object]:
        return {
            "url": self.url,
            "backend": self.backend,
            "ledger_id": self.ledger_id,
            "head": self.head.to_json(),
            "trusted_state": dict(self.trusted) if self.trusted is not None else None,
            "entries": self.entries,
            "transactions": self.transactions,
            **({"details": dict(self.details)} if self.details else {}),
        }


class HistoryReader(Protocol):
    """What a verification decision reads (notary.verify): whole proven histories and the head. A ledger is
    one; so is an evidence bundle's replay (notary.audit.evidence), which is why the decision is the same
    offline as online."""

    def history(self, key: str) -> list[Entry]: ...

    def info(self) -> LedgerInfo: ...


@runtime_checkable
class Ledger(Protocol):
    """An append-only, verifiable key/value ledger.

    Errors: LedgerUnavailableError (exit 4) when it cannot be reached or read; IntegrityError subclasses
    (exit 3) when any proof, head signature or trusted-state check fails. A failed check never moves the
    trusted state. `notices` collects human-facing remarks (e.g. trust on first use) for the CLI to print:
    the library itself never prints.
    """

    url: str
    notices: list[str]

    def write(self, kvs: Mapping[str, bytes]) -> WriteReceipt:
        """Write all keys in one atomic transaction, verify it, and return its receipt."""
        ...

    def write_batch(self, txs: Sequence[Mapping[str, bytes]]) -> list[WriteReceipt]:
        """Write many transactions at once (throughput path); each stays atomic on its own."""
        ...

    def get(self, key: str, *, at_tx: int | None = None) -> Entry | None:
        """The latest version of key (as of transaction at_tx when given), verified; None if absent."""
        ...

    def history(self, key: str) -> list[Entry]:
        """Every version of key, oldest first, each verified."""
        ...

    def absence(self, key: str, *, at_tx: int | None = None) -> dict[str, object] | None:
        """Proof that key had no version (as of at_tx), in the JSON of docs/proofs.md "Absence"; None when it
        has one. Each backend proves it its own way (embedded: the key index; immudb: the verified mirror's
        replay, or "none", the server's word, with the mirror opted out) and says which in `method`."""
        ...

    def changes(self, after_tx: int, upto_tx: int, *, index: bool = False) -> Iterator[Entry]:
        """Every entry written in transactions after_tx+1..upto_tx, in write order, each verified and the range
        proven complete (embedded: contiguous leaves and the leaves around them; immudb: the verified mirror's
        replay). UsageError where the backend cannot prove the range complete (immudb with the mirror off).
        index: also prove the backend's key index holds each written key's newest version (embedded; immudb's
        mirror replay re-derives its index from the entries, so there it adds nothing)."""
        ...

    def keys(self, prefix: str) -> list[str]:
        """Keys starting with prefix, sorted. Unverified: use only to choose what to `get`."""
        ...

    def tx_at_time(self, when: datetime) -> int | None:
        """The last transaction whose (verified) time is <= when; None if the ledger had none yet."""
        ...

    def info(self) -> LedgerInfo:
        """Current verified head, trusted state and sizes."""
        ...

    def close(self) -> None: ...


def written_by(ledger: object, entry: Entry, at_tx: int | None) -> bool:
    """Whether entry stood as of at_tx (None: now). A ledger whose entries share no one transaction order (a
    partitioned ledger: each member counts its own) says so itself, by a `written_by` method; on every other
    ledger it is entry.tx <= at_tx."""
    if at_tx is None:
        return True
    own = getattr(ledger, "written_by", None)
    return bool(own(entry, at_tx)) if callable(own) else entry.tx <= at_tx


class ComposedNotices:
    """For a ledger made of other ledgers (partitions; a primary and its replicas): their notices become its
    own, each said once, whichever part said it."""

    _notices: list[str]

    def _parts(self) -> Iterable[Ledger]:
        raise NotImplementedError

    @property
    def notices(self) -> list[str]:
        for ledger in self._parts():
            self._notices.extend(n for n in ledger.notices if n not in self._notices)
            ledger.notices.clear()
        return self._notices

    @notices.setter
    def notices(self, value: list[str]) -> None:
        self._notices = value


def rfc3339(t: datetime | None) -> str | None:
    """The one timestamp format of notary's JSON: RFC 3339 in UTC with Z, microseconds when the time has them
    (ledger times do; a record's issuedAt has whole seconds)."""
    if t is None:
        return None
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


_iso = rfc3339
