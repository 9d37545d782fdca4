"""A C2SP tlog-witness: cosigns a log's checkpoint only if it is consistent with the last one it cosigned.

`Witness.add_checkpoint` is the whole protocol (c2sp.org/tlog-witness, add-checkpoint): the request body is an
`old N` line, up to 63 base64 consistency proof lines, an empty line and the signed checkpoint; the answer is
the HTTP status the specification gives with its body. Check and persist happen under one lock per origin
(flock on a file, so several threads and processes serving one state directory are atomic too): a request
from an older size can never roll the witness back between another request's check and its write. The new
checkpoint is on disk (atomic replace, fsync) before the cosignature leaves.

The witness holds per log origin only the latest checkpoint it cosigned. Its cosignatures (tlog-cosignature
v1, Ed25519, signature type 0x04) say: as of this time, this is the largest tree of that log I have seen, and
every checkpoint I cosigned before is a prefix of it. So two checkpoints of one log that are not consistent
(a split view) cannot both be cosigned by one witness: the second is answered 422.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from notary import merkle
from notary.audit import note as notes
from notary.errors import IntegrityError, NotaryError, ProofError
from notary.fsio import atomic_write, lock_within, read_regular

MAX_REQUEST = 128 << 10  # an old line, 63 proof lines and a checkpoint with 64 signatures: far below
MAX_PROOF_LINES = 63
STATE_LOCK_SECONDS = 10.0  # a request waits no longer for another holding a log's state: it fails (500)
EMPTY_ROOT = hashlib.sha256(b"").digest()
SIZE_TYPE = "text/x.tlog.size"


class WitnessStateError(IntegrityError):
    """The witness's own record of a log cannot be read: it refuses (500) rather than forget the log."""


class Reply(NamedTuple):
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


class Latest(NamedTuple):
    size: int
    root: bytes


class Witness:
    def __init__(self, name: str, key: Ed25519PrivateKey, logs: list[notes.Verifier], state_dir: Path,
                 clock: Callable[[], float] = time.time) -> None:
        notes.check_name(name)
        self.name, self.key, self.state_dir, self.clock = name, key, state_dir, clock
        self.logs: dict[str, list[notes.Verifier]] = {}
        for v in logs:
            self.logs.setdefault(v.name, []).append(v)  # a log's key is named by its origin
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    @property
    def vkey(self) -> str:
        return notes.verifier(self.name, notes.COSIGNATURE_V1, self.key.public_key()).vkey()

    def add_checkpoint(self, body: bytes) -> Reply:
        try:
            old, proof, signed = _parse_request(body)
            note = notes.parse_note(signed)
            checkpoint = notes.parse_checkpoint(note.text)
        except (ProofError, ValueError) as exc:
            return _text(400, exc.message if isinstance(exc, NotaryError) else str(exc))
        keys = self.logs.get(checkpoint.origin)
        if keys is None:
            return _text(404, f"unknown log origin {checkpoint.origin[:100]!r}")
        try:
            if not notes.verified_by(note, keys):
                return _text(403, "no signature from a key this witness trusts for that origin")
        except ProofError as exc:
            return _text(403, exc.message)
        if old > checkpoint.size:
            return _text(400, f"old size {old} is larger than the checkpoint's {checkpoint.size}")
        with self._locked(checkpoint.origin):
            latest = self._load(checkpoint.origin)
            known = latest.size if latest else 0
            if old != known:
                return Reply(409, f"{known}\n".encode(), SIZE_TYPE)
            problem = _inconsistency(old, proof, latest, checkpoint)
            if problem:
                return _text(422, problem)
            self._save(checkpoint, signed)
        cosignature = notes.cosign(note.text, self.name, self.key, int(self.clock()))
        return Reply(200, cosignature.line().encode())

    # -- state -------------------------------------------------------------------------------------------

    def _path(self, origin: str, suffix: str) -> Path:
        return self.state_dir / f"log-{hashlib.sha256(origin.encode()).hexdigest()[:32]}{suffix}"

    @contextlib.contextmanager
    def _locked(self, origin: str) -> Iterator[None]:
        fd = os.open(self._path(origin, ".lock"), os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            lock_within(fd, STATE_LOCK_SECONDS, "the witness state", error=WitnessStateError)
            yield
        finally:
            os.close(fd)

    def _load(self, origin: str) -> Latest | None:
        path = self._path(origin, ".json")
        if not path.exists():
            return None
        try:
            data = json.loads(read_regular(path, 1 << 20, "witness state"))
            if data.get("origin") != origin:
                raise ValueError("it belongs to another log")
            return Latest(int(data["size"]), base64.b64decode(data["root"], validate=True))
        except (NotaryError, ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            # never start over: that would cosign whatever comes next, a rolled-back log included
            raise WitnessStateError(f"witness state {path} is unusable: {exc}") from exc

    def _save(self, checkpoint: notes.Checkpoint, signed: bytes) -> None:
        data = {"origin": checkpoint.origin, "size": checkpoint.size,
                "root": base64.b64encode(checkpoint.root).decode(), "checkpoint": signed.decode()}
        atomic_write(self._path(checkpoint.origin, ".json"), json.dumps(data, indent=1).encode() + b"\n", 0o600)


def _inconsistency(old: int, proof: list[bytes], latest: Latest | None, cp: notes.Checkpoint) -> str | None:
    """Why cp cannot be cosigned after latest (None: it can), per the specification's 422 cases."""
    if cp.size == 0 and cp.root != EMPTY_ROOT:
        return "a checkpoint of size 0 must have the empty tree's root"
    if old == 0:
        return "the consistency proof from size 0 must be empty" if proof else None
    assert latest is not None  # old == latest.size > 0
    if old == cp.size:
        return None if cp.root == latest.root and not proof else (
            "same size as the checkpoint this witness cosigned, other root: a split view")
    try:
        merkle.verify_consistency(old, cp.size, latest.root, cp.root, proof)
    except ProofError as exc:
        return f"not consistent with the checkpoint of size {old} this witness cosigned: {exc.message}"
    return None


def _parse_request(body: bytes) -> tuple[int, list[bytes], bytes]:
    if len(body) > MAX_REQUEST:
        raise ValueError(f"request over {MAX_REQUEST} bytes")
    head, sep, rest = body.partition(b"\n")
    if not sep or not head.startswith(b"old "):
        raise ValueError("the request must start with an 'old <size>' line")
    old = notes.parse_uint(head[4:].decode("ascii", "replace"), "old size", error=ValueError)
    proof: list[bytes] = []
    while True:
        line, sep, rest = rest.partition(b"\n")
        if not sep:
            raise ValueError("no empty line before the checkpoint")
        if not line:
            break
        if len(proof) == MAX_PROOF_LINES:
            raise ValueError(f"more than {MAX_PROOF_LINES} consistency proof lines")
        try:
            node = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a consistency proof line is not base64") from None
        if len(node) != 32:
            raise ValueError("a consistency proof line is not a 32-byte hash")
        proof.append(node)
    return old, proof, rest


def _text(status: int, message: str) -> Reply:
    return Reply(status, (message.replace("\n", " ")[:500] + "\n").encode())
