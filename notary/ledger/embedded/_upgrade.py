"""Upgrading a format v1 embedded ledger (notary 0.1) to v2: the key index, built from a verified log.

Runs inside the caller's write transaction. An upgrade signs an index over the log, so it must never bake
in an omission: the whole log is recomputed and checked first (as `ledger audit` does); only then is the
index built from the newest version of every key and the current head re-signed with its root (same size,
same log root, same tx and time). No entry or transaction row changes (docs/proofs.md, "Upgrading").
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from notary.errors import ProofError
from notary.ledger.embedded import _codec as codec
from notary.ledger.embedded import _map
from notary.ledger.embedded import _store as store
from notary.ledger.trust import TrustedState

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from notary.ledger.embedded.ledger import EmbeddedLedger


def upgrade_in_place(ledger: EmbeddedLedger, conn: sqlite3.Connection, trusted: TrustedState | None,
                     signer: Ed25519PrivateKey) -> TrustedState | None:
    """Upgrade the file under conn (a write transaction); returns the trusted state to continue with."""
    from notary.ledger.embedded import _writer  # writers only: kept off the read path's start-up
    from notary.ledger.embedded._audit import recompute

    head = ledger.verified_head(conn, trusted, v2=False)
    report, newest = recompute(ledger.verifier, conn, False, all_signatures=True)
    if report.head != head:
        raise ProofError("the audited head is not the current head")
    store.upgrade_schema(conn)
    map_root, rows = _writer.build_index(newest)
    store.insert(conn, [], [], [], [(_map.node_key(n), h, leaf) for n, h, leaf in rows])
    if head.tree_size:
        time_us = codec.to_time_us(head.time) if head.time else 0
        signature = signer.sign(codec.head_message(head.tree_size, head.root, head.tx, time_us, map_root))
        store.resign_head(conn, head.tx, map_root, signature)
    ledger.notices.append(f"upgraded ledger {ledger.path} to {store.FORMAT}: a signed key index of {len(newest)} "
                          f"keys; every read now proves it shows the newest version (no record changed)")
    return trusted
