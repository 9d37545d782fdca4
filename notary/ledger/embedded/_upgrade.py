"""Upgrading a format v1 embedded ledger (notary 0.1) to v2: the key index, built from a verified log.

Runs inside a write transaction (the Upgrader's own, or a first write's). An upgrade signs an index over the
log, so it must never bake in an omission: the whole log is recomputed and checked first (as `ledger audit`
does); only then is the index built from the newest version of every key and the current head re-signed with
its root (same size, same log root, same tx and time). No entry or transaction row changes (docs/proofs.md,
"Upgrading"). Built on first use: a read-only open never imports this module, nor the writer it builds on.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, NamedTuple

from notary.errors import ProofError
from notary.ledger.base import TreeHead
from notary.ledger.embedded import _codec as codec
from notary.ledger.embedded import _map
from notary.ledger.embedded import _store as store
from notary.ledger.embedded._audit import recompute
from notary.ledger.embedded._writer import build_index
from notary.ledger.trust import TrustedState

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from notary.ledger.embedded._keyfile import LedgerKey
    from notary.ledger.embedded._view import Snapshots


class Upgraded(NamedTuple):
    upgraded: bool  # False: the file was format v2 already (nothing changed)
    head: TreeHead  # the verified head after the upgrade (or as it was)


class Upgrader:
    def __init__(self, snapshots: Snapshots, key: LedgerKey, notices: list[str]) -> None:
        self.snapshots, self.key = snapshots, key
        self.file, self.keeper = snapshots.file, snapshots.keeper
        self._notices = notices  # the ledger's own list: the upgrade is reported with its other notices

    def upgrade(self) -> Upgraded:
        """Give a format v1 ledger its key index (notary ledger upgrade); a no-op on v2."""
        signer = self.key.private()
        with self.keeper.locked():
            trusted = self.keeper.load()
            with self.file.transaction(write=True) as conn:
                if store.is_v2(conn):
                    return Upgraded(False, self.snapshots.verified_head(conn, trusted))
                trusted = self.upgrade_in_place(conn, trusted, signer)
                head = self.snapshots.verified_head(conn, trusted)
            self.keeper.advance(trusted, head)
        return Upgraded(True, head)

    def upgrade_in_place(self, conn: sqlite3.Connection, trusted: TrustedState | None,
                         signer: Ed25519PrivateKey) -> TrustedState | None:
        """Upgrade the file under conn (a write transaction); returns the trusted state to continue with."""
        head = self.snapshots.verified_head(conn, trusted, v2=False)
        report, newest = recompute(self.snapshots.verifier, conn, False, all_signatures=True)
        if report.head != head:
            raise ProofError("the audited head is not the current head")
        store.upgrade_schema(conn)
        map_root, rows = build_index(newest)
        store.insert(conn, [], [], [], [(_map.node_key(n), h, leaf) for n, h, leaf in rows])
        if head.tree_size:
            time_us = codec.to_time_us(head.time) if head.time else 0
            signature = signer.sign(codec.head_message(head.tree_size, head.root, head.tx, time_us, map_root))
            store.resign_head(conn, head.tx, map_root, signature)
        self._notices.append(f"upgraded ledger {self.file.path} to {store.FORMAT}: a signed key index of "
                             f"{len(newest)} keys; every read now proves it shows the newest version (no record "
                             "changed)")
        return trusted
