"""The log's side of c2sp.org/tlog-witness: submit a checkpoint with a consistency proof, collect cosignatures.

No client state: the first request says `old 0`; a witness that already holds a checkpoint of this log answers
409 with its size, and the request is made once more with the consistency proof from that size. A witness
that refuses (403, 404, 422: it saw another history) is an error naming it, never a silent omission.

What a witness answers is its word only: `accepted` keeps the lines worth writing into the checkpoint
(verified under the trusted witness keys when there are any), so a witness cannot smuggle forged cosignatures
of other witnesses, junk, or a second line under a key already in the note (which would make the note invalid
for every reader, signed-note's rule for a line that fails under a known key) into what the user hands on.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import NamedTuple

from notary.audit import note as notes
from notary.errors import LedgerUnavailableError, ProofError, UsageError

MAX_ANSWER = 64 << 10


class Answer(NamedTuple):
    """A witness's 200 answer: its well-formed signature lines, and how many other lines it held."""

    signatures: tuple[notes.Signature, ...]
    malformed: int


def submit(url: str, note: notes.Note, size: int, proof_from: Callable[[int], list[bytes]], *,
           timeout: float = 15.0) -> Answer:
    """The signature lines the witness at url returns for note (a checkpoint of `size` leaves), unchecked:
    sort them with `accepted`."""
    import requests

    if not url.startswith(("http://", "https://")):
        raise UsageError(f"witness URL {url!r} must start with http:// or https://")
    endpoint = url.rstrip("/") + "/add-checkpoint"
    old = 0
    for _ in range(2):
        proof = proof_from(old) if 0 < old < size else []
        body = f"old {old}\n".encode() + b"".join(base64.b64encode(p) + b"\n" for p in proof) + b"\n" + note.encode()
        try:
            answer = requests.post(endpoint, data=body, timeout=timeout, stream=True)
            raw = answer.raw.read(MAX_ANSWER + 1, decode_content=True)
        except requests.RequestException as exc:
            raise LedgerUnavailableError(f"witness {url} cannot be reached: {exc}") from exc
        text = raw[:MAX_ANSWER].decode("utf-8", "replace")
        if answer.status_code == 409 and answer.headers.get("Content-Type", "").startswith("text/x.tlog.size"):
            old = notes.parse_uint(text.removesuffix("\n"), f"the size in the 409 answer of witness {url}",
                                   error=ProofError)
            if old > size:
                raise ProofError(f"witness {url} holds a checkpoint of size {old}, beyond this ledger's "
                                 f"{size}: it was shown another history, or this client a shorter one")
            continue
        if answer.status_code == 422:
            raise ProofError(f"witness {url} refuses: {text.strip()[:300]} (split view)")
        if answer.status_code != 200 or len(raw) > MAX_ANSWER:
            raise LedgerUnavailableError(f"witness {url} answered {answer.status_code}: {text.strip()[:300]}")
        lines = [line for line in text.split("\n") if line]
        signatures = tuple(s for s in map(_signature, lines) if s is not None)
        if not signatures:
            raise ProofError(f"witness {url} answered no cosignature" + (f" ({len(lines)} malformed lines)"
                                                                          if lines else ""))
        return Answer(signatures, len(lines) - len(signatures))
    raise LedgerUnavailableError(f"witness {url} keeps answering 409: its checkpoint moves under this request")


def accepted(note: notes.Note, signatures: tuple[notes.Signature, ...],
             trusted: list[notes.Verifier]) -> tuple[notes.Signature, ...]:
    """The lines of a witness answer to append to note: with trusted keys, only those that verify under one of
    them; always at most one per key, none for a key that already signed note, and only as many as keep the
    note within what parse_note reads back (MAX_SIGNATURES lines, MAX_NOTE bytes)."""
    seen = {(s.name, s.key_id) for s in note.signatures}
    kept: list[notes.Signature] = []
    size = len(note.encode())
    for s in signatures:
        if (s.name, s.key_id) in seen or (trusted and not notes.signed_by(note.text, s, trusted)):
            continue
        line = len(s.line().encode())
        if len(note.signatures) + len(kept) >= notes.MAX_SIGNATURES or size + line > notes.MAX_NOTE:
            continue
        seen.add((s.name, s.key_id))
        kept.append(s)
        size += line
    return tuple(kept)


def _signature(line: str) -> notes.Signature | None:
    try:
        return notes.parse_signature_line(line)
    except ProofError:
        return None
