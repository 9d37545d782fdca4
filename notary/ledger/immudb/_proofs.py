"""Trust plumbing between immudb-py's verified calls and notary's own trusted state.

immudb-py verifies each answer against a "state" it gets from a RootService and hands the new state back
through `set`. Its stock services either keep state in memory or in a pickle file that swallows load errors and
asks the server what to trust when nothing is stored. `NotaryStateProvider` replaces them: it is seeded from
notary's TrustedState, never asks the server, checks every new state (forward only, signed by the pinned server
key when there is one) and lets ImmudbLedger persist it only after the whole operation verified.

immudb-py also drops parts of the answers it verified (which transaction header was proven, the header's time)
and does not bind everything it returns (e.g. `verifiedTxById` returns entries from an unchecked header). The
`Recorder` keeps the last raw answer of every RPC so the backend can run those extra checks on the very bytes
immudb-py verified. This module imports immudb lazily: it is only imported by notary.ledger.immudb, which is only
imported when an immudb:// ledger is opened.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from notary.errors import ProofError, RollbackError
from notary.ledger.immudb._replay import TxRow


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


def make_state_provider(initial: ImmuState, server_key_pem: str | None) -> Any:
    """A RootService for immudb-py whose state comes from notary's trust store, never from the server."""
    from immudb.rootService import RootService, State

    class NotaryStateProvider(StateKeeper, RootService):  # type: ignore[misc]  # immudb-py ships no types
        def init(self, dbname: str, service: Any) -> None:
            """immudb-py calls this at login to fetch the server's state: trust is ours, so do nothing."""

        def get(self) -> Any:
            s = self.current
            return State(db=s.db, txId=s.tx, txHash=s.alh, publicKey=b"", signature=s.signature)

        def set(self, root: Any) -> None:
            new = ImmuState(db=str(root.db), tx=int(root.txId), alh=bytes(root.txHash),
                            signature=bytes(root.signature or b""))
            self.accept(new)

    return NotaryStateProvider(initial, server_key_pem)


class Recorder:
    """Wraps an immudb-py gRPC stub and remembers the last response of each RPC."""

    def __init__(self, stub: Any) -> None:
        self._stub = stub
        self.last: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._stub, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            response = attr(*args, **kwargs)
            self.last[name] = response
            return response

        return call


def header_time(header: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(header.ts), timezone.utc)
    except (OverflowError, ValueError, OSError):
        raise ProofError(f"immudb transaction {header.id} carries an impossible time ({header.ts})") from None


def check_new_tx(tx: int, trusted_before: int) -> None:
    """A write is a new transaction: one this client had verified before it wrote is another's, replayed."""
    if tx <= trusted_before:
        raise ProofError(f"immudb says the write is tx {tx}, but this client had verified up to tx {trusted_before} "
                         "before writing")


def proven_header(dual_proof: Any, tx: int) -> Any:
    """The header of tx inside a dual proof that immudb-py just verified (the only headers bound to trust)."""
    for header in (dual_proof.targetTxHeader, dual_proof.sourceTxHeader):
        if int(header.id) == tx:
            return header
    raise ProofError(f"immudb proof does not contain the header of tx {tx}")


def header_alh(header: Any) -> bytes:
    """A header's Alh; headers proven by notary's own checks (the gateway's TxRow) carry it already."""
    if isinstance(header, TxRow):
        return header.alh
    from immudb import schema

    return bytes(schema.TxHeaderFromProto(header).Alh())


def header_eh(header: Any) -> bytes:
    return header.eh if isinstance(header, TxRow) else bytes(header.eH)


def check_tx_entries(vtx: Any, proven: Any, kvs: dict[bytes, bytes]) -> None:
    """Prove that transaction vtx.tx (whose header must be `proven`) holds exactly the keys and values kvs.

    Each value's entry digest is proven included in the header's entries hash (eH), so a server cannot claim a
    transaction we wrote holds other bytes, more keys or fewer keys.
    """
    from immudb import database, schema
    from immudb.embedded import store

    tx = schema.TxFromProto(vtx.tx)
    if bytes(tx.header.Alh()) != header_alh(proven):
        raise ProofError(f"immudb transaction {proven.id} does not match its proven header")
    if int(tx.header.nentries) != len(kvs) or len(tx.entries) != len(kvs):
        raise ProofError(
            f"immudb transaction {proven.id} holds {tx.header.nentries} entries, notary wrote {len(kvs)}"
        )
    digest_for = store.EntrySpecDigestFor(int(tx.header.version))
    for key, value in kvs.items():
        try:
            inclusion = tx.Proof(database.EncodeKey(key))
        except Exception as exc:  # immudb-py raises its own error types for a missing key
            raise ProofError(f"immudb transaction {proven.id} does not contain key {key!r}") from exc
        if isinstance(inclusion.terms, (bytes, bytearray)):
            # immudb-py 1.5.0's local hash tree concatenates the proof terms into one byte string (harmless
            # for the one-entry transactions its verifiedSet checks); split them back into 32-byte digests.
            raw = bytes(inclusion.terms)
            inclusion.terms = [raw[i : i + 32] for i in range(0, len(raw), 32)]
        spec = database.EncodeEntrySpec(key, None, value)
        if not store.VerifyInclusion(inclusion, digest_for(spec), tx.header.eh):
            raise ProofError(f"immudb transaction {proven.id}: value of {key!r} is not the value notary wrote")


def verify_tx_tofu(vtx: Any, tx: int) -> Any:
    """First contact with an empty database: bind the transaction's header to its own dual proof.

    There is no earlier state to be consistent with (immudb-py skips the dual proof in the same situation);
    the caller announces trust on first use.
    """
    from immudb import schema
    from immudb.embedded import store

    dp = vtx.dualProof
    if int(dp.sourceTxHeader.id) != tx or int(dp.targetTxHeader.id) != tx:
        raise ProofError(f"immudb answered with a proof for another transaction than {tx}")
    alh = header_alh(dp.targetTxHeader)
    if not store.VerifyDualProof(schema.DualProofFromProto(dp), tx, tx, alh, alh):
        raise ProofError(f"immudb proof of transaction {tx} does not verify")
    return dp.targetTxHeader


def check_linear_advance(dual_proof: Any) -> None:
    """The last step of immudb's dual proof, which immudb-py 1.5.0 does not perform.

    Transactions after the source header's binary-linking tree (source.blTxId) are known to the source state
    only through the linear hash chain. When the target's tree has absorbed them, the server must show that the
    tree leaves for those transactions are exactly that chain; otherwise it could present a target tree over a
    rewritten recent history. The chain runs from source.blTxId to the source tx (when the target tree holds
    the source tx) or to the target tree's last tx.
    """
    source = dual_proof.sourceTxHeader
    target = dual_proof.targetTxHeader
    source_tx, tree_size = int(source.id), int(target.blTxId)
    root = bytes(target.blRoot)
    if source_tx < tree_size:
        end_tx, end_alh = source_tx, header_alh(source)
    else:
        end_tx, end_alh = tree_size, bytes(dual_proof.targetBlTxAlh)
    if not _linear_advance_holds(dual_proof.LinearAdvanceProof, int(source.blTxId), end_tx, end_alh, root, tree_size):
        raise ProofError(
            f"immudb dual proof from tx {source_tx} to tx {target.id}: its binary-linking tree does not match the "
            "linear chain of transactions (linear advance proof)"
        )


def _linear_advance_holds(proof: Any, start: int, end: int, end_alh: bytes, root: bytes, tree_size: int) -> bool:
    from notary.ledger.immudb._verify import LinearAdvanceProof, linear_advance_holds

    terms = [bytes(t) for t in proof.linearProofTerms] if proof is not None else []
    inclusions = [[bytes(t) for t in p.terms] for p in proof.inclusionProofs] if proof is not None else []
    return linear_advance_holds(LinearAdvanceProof(terms, inclusions), start, end, end_alh, root, tree_size)
