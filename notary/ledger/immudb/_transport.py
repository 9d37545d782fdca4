"""What ImmudbLedger needs from a way of reaching immudb, and the typed answers it gets back.

Two transports implement it: gRPC through immudb-py's client (_grpc) and immudb's HTTP/JSON gateway (gateway). A
transport only moves bytes and parses them strictly into the typed proof data below (headers with their Alh
computed from their own fields, dual proofs, inclusion proofs); it proves nothing. ImmudbLedger checks every
answer the same way whichever transport brought it (_proofs, _verify), so a lie is caught by one piece of code.

Every failure leaves a transport as a notary error: unreachable, refused, or a `ServerError` carrying immudb's
own message, which the read logic reads ("key not found", "tx not found").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple, Protocol

from notary.ledger.immudb._conn import ServerError
from notary.ledger.immudb._proofs import ImmuState
from notary.ledger.immudb._replay import EntryRow, ScannedTx, TxRow
from notary.ledger.immudb._verify import DualProof, EntryInclusion

PAGE = 1000  # immudb's largest scan/history page
__all__ = ["PAGE", "EntryProof", "Item", "ServerError", "Transport", "TxProof"]


class EntryProof(NamedTuple):
    """A verifiable read of one key: the entry as the server sent it and the proofs binding it to a state."""

    key: bytes
    value: bytes
    tx: int
    revision: int  # 0 for a read as of a transaction
    md: bytes  # the entry's KV metadata, serialized as immudb hashes it
    referenced: bool  # the server resolved a reference instead of the key itself
    inclusion: EntryInclusion  # the entry's digest in its transaction's entries tree
    dual: DualProof  # that transaction against the state the read was proven since
    signature: bytes  # the server's signature of the proof's target state


class TxProof(NamedTuple):
    """A verifiable read of one transaction: its header and entries as sent, and its dual proof."""

    header: TxRow  # from the transaction body, Alh computed from its fields
    entries: list[EntryRow]
    dual: DualProof
    signature: bytes


class Item(NamedTuple):
    """One version of a key in the server's (unverified) history listing."""

    tx: int
    value: bytes


class Transport(Protocol):
    """One connection to one immudb database (the target of the ledger URL)."""

    server_version: str

    def connect(self) -> str:
        """Reach the server (no login yet): its uuid, which every later answer must carry too."""

    def login(self, password: str) -> None:
        """Authenticate for the target database; a transport logs in again by itself when its token expires."""

    def current_state(self) -> ImmuState:
        """The server's current state of the target database, unchecked."""

    def verifiable_get(self, key: bytes, at_tx: int | None, since_tx: int) -> EntryProof:
        """key's newest version (or the one written in at_tx), proven since since_tx."""

    def verifiable_tx(self, tx: int, since_tx: int) -> TxProof:
        """Transaction tx, proven since since_tx (tx itself: its own proof)."""

    def set_all(self, kvs: dict[bytes, bytes]) -> int:
        """Write one transaction, unverified: its id."""

    def verifiable_set(self, kvs: dict[bytes, bytes], since_tx: int) -> TxProof:
        """Write one transaction and return it proven since since_tx (0: its own proof), in one round trip."""

    def history(self, key: bytes, offset: int, limit: int, since_tx: int) -> list[Item]:
        """A page of key's versions, oldest first, indexed at least up to since_tx (a key the server does not
        know: ServerError "key not found")."""

    def scan_keys(self, prefix: bytes, seek: bytes, limit: int, since_tx: int) -> list[bytes]:
        """A page of keys under prefix after seek, indexed at least up to since_tx."""

    def scan_txs(self, first: int, last: int) -> Iterator[ScannedTx]:
        """Transactions first..last with every entry (digests only), for the verified mirror."""

    def details(self) -> dict[str, str]:
        """What `ledger info` shows of the transport."""

    def close(self) -> None: ...
