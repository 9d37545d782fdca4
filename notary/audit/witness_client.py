"""The log's side of c2sp.org/tlog-witness: submit a checkpoint with a consistency proof, collect cosignatures.

No client state: the first request says `old 0`; a witness that already holds a checkpoint of this log answers
409 with its size, and the request is made once more with the consistency proof from that size. A witness
that refuses (403, 404, 422: it saw another history) is an error naming it, never a silent omission.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from notary.audit import note as notes
from notary.errors import LedgerUnavailableError, ProofError, UsageError

MAX_ANSWER = 64 << 10


def submit(url: str, note: notes.Note, size: int, proof_from: Callable[[int], list[bytes]], *,
           timeout: float = 15.0) -> list[notes.Signature]:
    """The cosignature lines the witness at url returns for note (a checkpoint of `size` leaves)."""
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
            line = text.strip()
            if not line.isdigit() or int(line) > size:
                raise ProofError(f"witness {url} holds a checkpoint of size {line[:30]}, beyond this ledger's "
                                 f"{size}: it was shown another history, or this client a shorter one")
            old = int(line)
            continue
        if answer.status_code == 422:
            raise ProofError(f"witness {url} refuses: {text.strip()[:300]} (split view)")
        if answer.status_code != 200 or len(raw) > MAX_ANSWER:
            raise LedgerUnavailableError(f"witness {url} answered {answer.status_code}: {text.strip()[:300]}")
        lines = [line for line in text.split("\n") if line]
        if not lines:
            raise ProofError(f"witness {url} answered no cosignature")
        return [notes.parse_signature_line(line) for line in lines]
    raise LedgerUnavailableError(f"witness {url} keeps answering 409: its checkpoint moves under this request")
