"""A ledger head as a C2SP checkpoint, witnessed, and checked against a ledger (notary/audit/note.py: formats).

The embedded ledger's checkpoint: origin = the ledger id (`file:sha256:<hash of its key>`), the log's tree size
and RFC 6962 root, and the key-index root as the extension line `notary-key-index <base64>`, signed by the
ledger key (signature type 0x01, key name = origin). Its vkey follows from the ledger key alone, which every
client already pins. A witness cosigns it after checking it consistent with the last checkpoint it saw.

`consistent_with` is where a split view meets a ledger: a checkpoint (from a witness, a colleague, an
evidence bundle) that the verified head does not extend by an RFC 9162 consistency proof is a ProofError.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from notary import merkle
from notary.audit import note as notes
from notary.errors import ProofError, UsageError
from notary.ledger.base import TreeHead


def checkpoint_of(head: TreeHead) -> notes.Checkpoint:
    ext = (notes.KEY_INDEX_EXTENSION + base64.b64encode(head.map_root).decode(),) if head.map_root else ()
    return notes.Checkpoint(head.ledger_id, head.tree_size, head.root, ext)


def log_verifier(ledger_id: str, public_raw: bytes) -> notes.Verifier:
    return notes.verifier(ledger_id, notes.ED25519, Ed25519PublicKey.from_public_bytes(public_raw))


def signed(checkpoint: notes.Checkpoint, sign: Callable[[str], bytes], verifier: notes.Verifier) -> notes.Note:
    text = checkpoint.text()
    return notes.Note(text, (notes.Signature(verifier.name, verifier.key_id, sign(text)),))


def check(note: notes.Note, log: notes.Verifier, witnesses: list[notes.Verifier],
          min_witnesses: int) -> tuple[notes.Checkpoint, dict[str, int | None]]:
    """The checkpoint, if the log signed it and at least min_witnesses of the given witnesses cosigned it."""
    if min_witnesses > len(witnesses):
        raise UsageError(f"--min-witnesses {min_witnesses} needs at least that many --witness-vkey")
    checkpoint = notes.parse_checkpoint(note.text)
    if checkpoint.origin != log.name:
        raise ProofError(f"the checkpoint is of {checkpoint.origin!r}, not of {log.name!r}")
    if log.name not in notes.verified_by(note, [log]):
        raise ProofError(f"the checkpoint carries no signature of the log key {log.name}")
    cosigned = notes.verified_by(note, witnesses)
    if len(cosigned) < min_witnesses:
        raise ProofError(f"the checkpoint is cosigned by {len(cosigned)} of the trusted witnesses, "
                         f"{min_witnesses} required")
    return checkpoint, cosigned


def consistent_with(checkpoint: notes.Checkpoint, head: TreeHead, proof: list[bytes]) -> None:
    """ProofError unless head extends checkpoint (same log, RFC 9162 consistency from its size)."""
    if checkpoint.origin != head.ledger_id:
        raise ProofError(f"the checkpoint is of {checkpoint.origin!r}, this ledger is {head.ledger_id!r}")
    if checkpoint.size > head.tree_size:
        raise ProofError(f"the checkpoint is at size {checkpoint.size}, beyond this client's verified head "
                         f"({head.tree_size}): read the ledger again, or it was shown another history")
    if checkpoint.size == 0:
        if checkpoint.root != merkle.EMPTY_ROOT:
            raise ProofError("the checkpoint of size 0 does not carry the empty tree's root")
        return
    try:
        merkle.verify_consistency(checkpoint.size, head.tree_size, checkpoint.root, head.root, proof)
    except ProofError as exc:
        raise ProofError(f"split view: the checkpoint at size {checkpoint.size} is not a prefix of the verified "
                         f"head at size {head.tree_size}: {exc.message}") from exc


def same_heads(checkpoint: notes.Checkpoint, signed: TreeHead | None) -> None:
    """ProofError unless the ledger's own signed head at the checkpoint's size carries the checkpoint's log root
    and key-index root. The log root alone is what a consistency proof ties; the key index is what every
    completeness answer rests on, so a checkpoint whose key-index line differs from the head the ledger key
    signed at that size is a split view of the index, even when the log agrees."""
    if checkpoint.size == 0:
        return
    if signed is None:
        raise ProofError(f"split view: no transaction of this ledger ends at size {checkpoint.size}, yet a "
                         "checkpoint of that size is signed by its key")
    if signed.root != checkpoint.root:
        raise ProofError(f"split view: the checkpoint at size {checkpoint.size} carries another root than the "
                         f"ledger's signed head of tx {signed.tx}")
    if checkpoint.key_index_root != signed.map_root:
        said = "no key-index root" if checkpoint.key_index_root is None else "another key-index root"
        raise ProofError(f"split view of the key index: the checkpoint at size {checkpoint.size} carries {said} "
                         f"than the ledger's signed head of tx {signed.tx}")
