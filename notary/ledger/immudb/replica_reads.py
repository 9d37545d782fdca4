"""Reads from an immudb replica while the primary is up, writes to the primary (docs/immudb.md, "Replicas").

With `read_from = "replicas"` a reader (verify, history, the gate) spares the primary: its reads go to the first
replica that answers and is not behind what this client already verified, checked against the primary's
trusted state exactly as a failover read is (the replica is the primary's ledger, a prefix of it while it
lags). A replica that is down or behind is not an error: the read goes to the primary. A write goes to the
primary, and from then on this process reads the primary too (the trust it just moved is ahead of any lagging
replica). A replica that proves anything false is exit 3, as any ledger that does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from notary.errors import LedgerUnavailableError
from notary.ledger.base import ComposedNotices, Entry, Ledger, LedgerInfo, WriteReceipt

_T = TypeVar("_T")


class ReplicaReads(ComposedNotices):
    """One Ledger over a primary and its replicas; `open_replica` returns the first usable replica or None."""

    def __init__(self, url: str, open_primary: Callable[[], Ledger], open_replica: Callable[[], Ledger | None]):
        self.url = url
        self._open_primary = open_primary
        self._open_replica = open_replica
        self._primary: Ledger | None = None
        self._replica: Ledger | None = None
        self._tried = False
        self._notices: list[str] = []

    def _parts(self) -> Iterable[Ledger]:
        return [ledger for ledger in (self._replica, self._primary) if ledger is not None]

    @property
    def ledger_id(self) -> str:
        return str(getattr(self._reader(), "ledger_id", "") or self._reader().info().ledger_id)

    @property
    def mirror(self) -> Any:
        """The reading side's verified mirror (sync reads its source's through this)."""
        return getattr(self._reader(), "mirror", None)

    def _primary_ledger(self) -> Ledger:
        if self._primary is None:
            self.notices  # noqa: B018 - keep what the replica said before it is dropped
            self._primary = self._open_primary()
        return self._primary

    def _reader(self) -> Ledger:
        if self._primary is not None:
            return self._primary
        if not self._tried:
            self._tried = True
            self._replica = self._open_replica()
        return self._replica or self._primary_ledger()

    def _drop_replica(self, why: str) -> None:
        if self._replica is not None:
            self.notices  # noqa: B018
            self._notices.append(f"the immudb replica stopped answering ({why}): reading the primary")
            self._replica.close()
            self._replica = None

    def _read(self, read: Callable[[Ledger], _T]) -> _T:
        reader = self._reader()
        try:
            return read(reader)
        except LedgerUnavailableError as exc:
            if reader is not self._replica:
                raise
            self._drop_replica(exc.message)
            return read(self._primary_ledger())

    # ------------------------------------------------------------ the Ledger interface

    def get(self, key: str, *, at_tx: int | None = None) -> Entry | None:
        return self._read(lambda ledger: ledger.get(key, at_tx=at_tx))

    def history(self, key: str) -> list[Entry]:
        return self._read(lambda ledger: ledger.history(key))

    def absence(self, key: str, *, at_tx: int | None = None) -> dict[str, Any] | None:
        return self._read(lambda ledger: ledger.absence(key, at_tx=at_tx))

    def changes(self, after_tx: int, upto_tx: int, *, index: bool = False) -> Iterator[Entry]:
        return self._reader().changes(after_tx, upto_tx, index=index)  # a stream is not restarted elsewhere

    def keys(self, prefix: str) -> list[str]:
        return self._read(lambda ledger: ledger.keys(prefix))

    def tx_at_time(self, when: datetime) -> int | None:
        return self._read(lambda ledger: ledger.tx_at_time(when))

    def info(self) -> LedgerInfo:
        return self._read(lambda ledger: ledger.info())

    def write(self, kvs: Mapping[str, bytes]) -> WriteReceipt:
        receipt = self._primary_ledger().write(kvs)
        self._after_write()
        return receipt

    def write_batch(self, txs: Sequence[Mapping[str, bytes]]) -> list[WriteReceipt]:
        receipts = self._primary_ledger().write_batch(txs)
        self._after_write()
        return receipts

    def _after_write(self) -> None:
        if self._replica is not None:
            self.notices  # noqa: B018
            self._replica.close()
            self._replica = None

    def close(self) -> None:
        for ledger in (self._replica, self._primary):
            if ledger is not None:
                ledger.close()
