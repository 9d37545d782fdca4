"""The embedded ledger: one SQLite file (WAL), an RFC 9162 Merkle tree over its entries, heads signed by the
ledger's own Ed25519 key, and every read proven on the client against its trusted state.

What is proven on every read: the entry's leaf (recomputed from the row, docs/proofs.md) is included in the
current signed head; that head is signed by the ledger key pinned on first use; and it extends (RFC 9162
consistency) the head this client trusted before. Only then does the trusted state move forward. Writes
check the same before writing (never extend a ledger this client cannot trust) and again after committing.

EmbeddedLedger is the Ledger protocol over its collaborators, each with its own module: the open file
(_file.LedgerFile), the trusted state (_trustkeep.TrustKeeper), verified snapshots (_view.Snapshots), the
reads (_reader.Reader), the raw proof material (_material.ProofMaterial), and, built on first use so a
read-only open never loads them, the writer (_writer.Writer) and the upgrader (_upgrade.Upgrader).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from notary.ledger.base import Entry, LedgerInfo, TreeHead, WriteReceipt
from notary.ledger.embedded import _location
from notary.ledger.embedded import _store as store
from notary.ledger.embedded._file import LedgerFile, path_from_url
from notary.ledger.embedded._keyfile import LedgerKey
from notary.ledger.embedded._material import ProofMaterial
from notary.ledger.embedded._reader import Reader
from notary.ledger.embedded._trustkeep import TrustKeeper
from notary.ledger.embedded._verify import Verifier
from notary.ledger.embedded._view import Snapshots
from notary.ledger.trust import TrustStore

if TYPE_CHECKING:
    from notary.ledger.embedded._audit import AuditReport
    from notary.ledger.embedded._upgrade import Upgrader
    from notary.ledger.embedded._writer import Writer

__all__ = ["EmbeddedLedger", "path_from_url"]


class EmbeddedLedger:
    """Ledger protocol over one SQLite file. Thread-safe (one lock); processes serialize through SQLite and
    a lock file beside the trusted state, so concurrent clients never move trust out of order."""

    backend = "file"

    def __init__(self, url: str, file: LedgerFile, trust: TrustStore) -> None:
        self.file = file
        self.path, self.public_raw = file.path, file.public_raw
        self.verifier = Verifier(self.path, self.public_raw)  # every check, pure; the collaborators do the I/O
        self.trust = trust
        self.ledger_id = self.verifier.ledger_id
        self.ledger_key = self.verifier.ledger_key
        self.url = url
        self.notices: list[str] = []
        self.created = False  # this open created the file (ledger init reports it; notices are for people)
        self.key = LedgerKey(self.path, self.public_raw, self.ledger_id)
        self.trust_keeper = TrustKeeper(trust, self.verifier, self.path, file.lock, self.notices)
        self.snapshots = Snapshots(file, self.verifier, self.trust_keeper, self.notices)
        self.reader = Reader(self.snapshots)
        self.material = ProofMaterial(file.read_snapshot, self.verifier, self.path)
        self._writer: Writer | None = None
        self._upgrader: Upgrader | None = None

    @classmethod
    def open(cls, url: str, *, trust: TrustStore | None = None, create: bool = True) -> EmbeddedLedger:
        """Open (or with create=True, create) the ledger at url; refuses a ledger replaced at that path."""
        path = path_from_url(url)
        trust = trust if trust is not None else TrustStore()
        pinned = _location.pinned(trust, path)
        file, created = LedgerFile.open(path, trust, pinned, create=create, lock=threading.RLock())
        ledger = cls(url, file, trust)
        try:
            _location.pin(trust, path, pinned, ledger.ledger_id, ledger.ledger_key)
            if created:
                ledger.created = True
                with ledger.trust_keeper.locked():
                    ledger.trust_keeper.advance(None, ledger.verifier.empty_head(), first_use_notice=False)
                ledger.notices.append(f"created new ledger {ledger.ledger_id} at {path}")
        except BaseException:
            file.close()
            raise
        return ledger

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> EmbeddedLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing (the writer and the upgrader are loaded on first use: reads never import them) ----------

    def writer(self) -> Writer:
        with self.file.lock:
            if self._writer is None:
                from notary.ledger.embedded._writer import Writer

                self._writer = Writer(self.snapshots, self.key, self.upgrader())
            return self._writer

    def upgrader(self) -> Upgrader:
        with self.file.lock:
            if self._upgrader is None:
                from notary.ledger.embedded._upgrade import Upgrader

                self._upgrader = Upgrader(self.snapshots, self.key, self.notices)
            return self._upgrader

    def write(self, kvs: Mapping[str, bytes]) -> WriteReceipt:
        return self.writer().write(kvs)

    def write_batch(self, txs: Sequence[Mapping[str, bytes]]) -> list[WriteReceipt]:
        return self.writer().write_batch(txs)

    def upgrade(self) -> dict[str, Any]:
        """Give a format v1 ledger its key index (notary ledger upgrade); a no-op on v2. Never rewrites a
        record: the whole log is recomputed and checked first, then the index is built from it and the
        current head re-signed with the index root (same tree size, same log root)."""
        done = self.upgrader().upgrade()
        return {"upgraded": done.upgraded, "format": store.FORMAT, "head": done.head.to_json()}

    def sign_checkpoint(self, text: str) -> bytes:
        return self.key.sign_checkpoint(text)

    # -- reading (Reader: each read one verified snapshot) ------------------------------------------------

    def get(self, key: str, *, at_tx: int | None = None) -> Entry | None:
        return self.reader.get(key, at_tx=at_tx)

    def history(self, key: str) -> list[Entry]:
        return self.reader.history(key)

    def absence(self, key: str, *, at_tx: int | None = None) -> dict[str, Any] | None:
        """Proof that key had no version (as of at_tx): docs/proofs.md, "Absence". None: it has one."""
        return self.reader.absence(key, at_tx=at_tx)

    def changes(self, after_tx: int, upto_tx: int, *, index: bool = False) -> Iterator[Entry]:
        """Every entry of transactions after_tx+1..upto_tx, in write order, the range proven complete; one
        snapshot for the whole range: consume it to the end before another read of this ledger."""
        return self.reader.changes(after_tx, upto_tx, index=index)

    def keys(self, prefix: str) -> list[str]:
        return self.reader.keys(prefix)

    def tx_at_time(self, when: datetime) -> int | None:
        return self.reader.tx_at_time(when)

    def head_at_size(self, size: int) -> TreeHead | None:
        return self.reader.head_at_size(size)

    def info(self) -> LedgerInfo:
        head, state, v2 = self.reader.current()
        return LedgerInfo(
            url=self.url, backend=self.backend, ledger_id=self.ledger_id, head=head, trusted=state.to_json(),
            entries=head.tree_size, transactions=head.tx,
            details={"path": str(self.path), "ledger_key": self.ledger_key,
                     "format": store.FORMAT if v2 else store.FORMAT_V1, "key_index": head.map_root is not None},
        )

    def audit(self, *, all_signatures: bool = True) -> AuditReport:
        return self.reader.audit(all_signatures=all_signatures)

    # -- raw proof material (unverified: for auditors, tools and tests; ProofMaterial) --------------------

    def tree_root(self, size: int) -> bytes:
        return self.material.tree_root(size)

    def stored_leaf_hash(self, index: int) -> bytes:
        return self.material.stored_leaf_hash(index)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.material.inclusion_proof(index, size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        return self.material.consistency_proof(size1, size2)
