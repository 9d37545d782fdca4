"""What this client trusts about an immudb database, and the checks that move it: written once, for answers from
either transport (_transport), on the typed proof data they return.

A state (ImmuState) is a transaction id and its accumulative linear hash (Alh). The StateKeeper holds the one this
client trusts right now and moves it only forward, along a proof and, with a pinned server key, to a state that
key signed. `prove_tx`, `prove_entry` and `prove_tx_body` are the whole of what a read or a write must pass
(the hash checks themselves are _verify's and _replay's, pure functions on bytes); ImmudbLedger persists the new
state only after a whole operation passed them.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from notary.errors import ProofError, RollbackError
from notary.ledger.immudb._replay import (
    PLAIN_VALUE_PREFIX,
    TxRow,
    entries_root,
    entry_digest,
    holds_exactly,
    value_hash,
)
from notary.ledger.immudb._verify import dual_proof_holds, entry_included

if TYPE_CHECKING:
    from notary.ledger.immudb._transport import EntryProof, TxProof


@dataclass(frozen=True)
class ImmuState:
    """One immudb database state: the transaction id and its accumulative linear hash (Alh)."""

    db: str
    tx: int
    alh: bytes
    signature: bytes = b""

    def signed_bytes(self) -> bytes:
        """The message immudb signs for a state: len(db) | db | tx | alh (big endian)."""
        db = self.db.encode()
        return struct.pack(">I", len(db)) + db + struct.pack(">Q", self.tx) + self.alh


def empty_state(db: str) -> ImmuState:
    """The state of a database with no transactions (immudb reports sha256 of nothing as its hash)."""
    return ImmuState(db=db, tx=0, alh=hashlib.sha256(b"").digest())


def verify_state_signature(state: ImmuState, public_key_pem: str) -> None:
    """Raise ProofError unless state carries a valid ECDSA-P256/SHA-256 signature by the server key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = load_pem_public_key(public_key_pem.encode())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ProofError("the configured immudb server key is not an ECDSA public key")
    if not state.signature:
        raise ProofError(
            f"immudb state of {state.db} at tx {state.tx} is not signed, but a server signing key is pinned",
            hint="start immudb with --signingKey, or this is not the server you trust",
        )
    try:
        key.verify(state.signature, state.signed_bytes(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise ProofError(
            f"immudb state of {state.db} at tx {state.tx} is not signed by the pinned server key"
        ) from exc


class StateKeeper:
    """What this client trusts about one database right now: moves only forward, each new state signed by the
    pinned server key when there is one. ImmudbLedger persists it only after a whole operation verified."""

    def __init__(self, initial: ImmuState, server_key_pem: str | None) -> None:
        self.current = initial
        self.key = server_key_pem

    def accept(self, new: ImmuState) -> None:
        """Move to a state just proven consistent with the current one."""
        old = self.current
        if new.db != old.db:
            raise ProofError(f"immudb answered for database {new.db!r}, not {old.db!r}")
        if new.tx < old.tx:
            raise RollbackError(f"immudb state went back from tx {old.tx} to tx {new.tx}")
        if new.tx == old.tx and new.alh != old.alh and old.tx != 0:
            raise RollbackError(f"immudb database {old.db} forked at tx {old.tx}: same tx, other hash")
        if self.key is not None:
            verify_state_signature(new, self.key)
        self.current = new

    def reset(self, state: ImmuState) -> None:
        self.current = state


def header_time(header: TxRow) -> datetime:
    try:
        return datetime.fromtimestamp(int(header.ts), timezone.utc)
    except (OverflowError, ValueError, OSError):
        raise ProofError(f"immudb transaction {header.id} carries an impossible time ({header.ts})") from None


def check_new_tx(tx: int, trusted_before: int) -> None:
    """A write is a new transaction: one this client had verified before it wrote is another's, replayed."""
    if tx <= trusted_before:
        raise ProofError(f"immudb says the write is tx {tx}, but this client had verified up to tx {trusted_before} "
                         "before writing")




def prove_tx(keeper: StateKeeper, tx: int, proof: TxProof | EntryProof) -> TxRow:
    """tx's header, proven consistent with the trusted state by the answer's dual proof; trust moves to the
    newer of the two (with a pinned server key, only to a state it signed)."""
    state, dual = keeper.current, proof.dual
    if state.tx <= tx:
        header = dual.target
        source, target = (state.tx, state.alh), (tx, header.alh)
    else:
        header = dual.source
        source, target = (tx, header.alh), (state.tx, state.alh)
    if header.id != tx:
        raise ProofError(f"immudb proof does not contain the header of tx {tx}")
    if state.tx == 0:
        source = target  # first contact with a database that was empty: its own proof (trust on first use)
    if not dual_proof_holds(dual, source[0], target[0], source[1], target[1]):
        raise ProofError(
            f"immudb proof from tx {source[0]} to tx {target[0]} does not verify against this client's "
            "trusted state",
            hint="the ledger was altered, rolled back or replaced; do not trust it",
        )
    keeper.accept(ImmuState(state.db, target[0], target[1], proof.signature))
    return header


def prove_entry(keeper: StateKeeper, key: bytes, proof: EntryProof) -> TxRow:
    """The header of the transaction the entry was written in, once the entry is proven in it and it is proven
    consistent with trust. A reference resolved in place of the key, or another key, is refused."""
    shown = key.decode("utf-8", "replace")
    if proof.referenced or proof.key != key:
        raise ProofError(f"immudb answered a read of {shown} with another key")
    header = prove_tx(keeper, proof.tx, proof)
    spec = (PLAIN_VALUE_PREFIX + key, proof.md, value_hash(proof.value), len(proof.value) + 1)
    if not entry_included(proof.inclusion, entry_digest(header.version, spec), header.eh):
        raise ProofError(f"immudb's value of {shown} at tx {proof.tx} is not in that transaction")
    return header


def prove_tx_body(header: TxRow, proof: TxProof, kvs: dict[bytes, bytes]) -> None:
    """The transaction whose proven header is `header` holds exactly kvs: its body hashes to that header, and
    its entries are these keys with these values' hashes, no more and no fewer."""
    if proof.header.alh != header.alh:
        raise ProofError(f"immudb transaction {header.id} does not match its proven header")
    rows = proof.entries
    if len(rows) != header.nentries or entries_root(header.version, rows) != header.eh:
        raise ProofError(f"immudb transaction {header.id}: its entries do not hash to its proven header")
    if not holds_exactly(rows, kvs):
        raise ProofError(f"immudb transaction {header.id} does not hold exactly the values notary wrote")
