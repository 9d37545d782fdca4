"""C2SP signed notes, checkpoints and cosignatures: the formats any transparency-log tool reads.

A ledger head becomes a `tlog-checkpoint` (origin line, tree size, base64 RFC 6962 root, and the key-index
root as an extension line), signed as a `signed-note` with the ledger's Ed25519 key (signature type 0x01,
key name = origin). A witness cosigns it per `tlog-cosignature` (type 0x04: "cosignature/v1", a time line,
the checkpoint body; the signature is an 8-byte big-endian timestamp then the Ed25519 signature). Keys travel
as vkeys: `name+hex(key id)+base64(type || public key)`.

Pure: bytes in, typed values or ProofError out. Parsing is bounded and strict (UTF-8, no control characters
but newline, at most MAX_SIGNATURES lines), since notes come from the network.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from notary.errors import InputError, NotaryError, ProofError

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
KEY_INDEX_EXTENSION = "notary-key-index "  # the extension line: this prefix, then the base64 key-index root
MAX_NOTE = 64 << 10
MAX_SIGNATURES = 64
_DASH = "\u2014 "
_UINT = re.compile(r"0|[1-9][0-9]{0,19}", re.ASCII)
_KEY_ID = re.compile(r"[0-9a-f]{8}", re.ASCII)


class Signature(NamedTuple):
    name: str
    key_id: int
    sig: bytes  # after the 4-byte key id

    def line(self) -> str:
        return f"{_DASH}{self.name} {base64.b64encode(struct.pack('>I', self.key_id) + self.sig).decode()}\n"


class Note(NamedTuple):
    text: str  # ends in a newline
    signatures: tuple[Signature, ...]

    def encode(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode()


class Checkpoint(NamedTuple):
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        return "".join(f"{line}\n" for line in (self.origin, str(self.size), base64.b64encode(self.root).decode(),
                                               *self.extensions))

    @property
    def key_index_root(self) -> bytes | None:
        for line in self.extensions:
            if line.startswith(KEY_INDEX_EXTENSION):
                return _b64(line[len(KEY_INDEX_EXTENSION):], "key-index root", 32, error=ProofError)
        return None


class Verifier(NamedTuple):
    """A vkey: whom a signature line must name (name, key id) and the key that must verify it."""

    name: str
    key_id: int
    kind: int
    public: Ed25519PublicKey

    def vkey(self) -> str:
        raw = self.public.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return f"{self.name}+{self.key_id:08x}+{base64.b64encode(bytes([self.kind]) + raw).decode()}"


def key_id(name: str, kind: int, public: Ed25519PublicKey) -> int:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + raw).digest()[:4], "big")


def verifier(name: str, kind: int, public: Ed25519PublicKey) -> Verifier:
    check_name(name)
    return Verifier(name, key_id(name, kind, public), kind, public)


def parse_vkey(text: str) -> Verifier:
    """`name+hex id+base64(type || key)`; the id must be the one the name and key give (no lookalikes)."""
    parts = text.strip().split("+", 2)  # base64 has "+" of its own: only the first two separate
    if len(parts) != 3 or not _KEY_ID.fullmatch(parts[1]):  # int(x, 16) alone takes "0x12abcd", " 1_2345" ...
        raise InputError(f"not a verifier key (name+8 lowercase hex digits of key id+key): {text[:80]!r}")
    name, hex_id, material = parts
    check_name(name)
    raw = _b64(material, "verifier key", 33)
    if raw[0] not in (ED25519, COSIGNATURE_V1):
        raise InputError(f"verifier key {name} has signature type {raw[0]:#04x}; notary reads 0x01 and 0x04")
    try:
        found = verifier(name, raw[0], Ed25519PublicKey.from_public_bytes(raw[1:]))
        if found.key_id != int(hex_id, 16):
            raise InputError(f"verifier key {name}: its key id {hex_id} is not the one its name and key give")
    except ValueError as exc:
        raise InputError(f"verifier key {name} is malformed: {exc}") from exc
    return found


def check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" or ord(c) < 0x20 for c in name) or len(name) > 256:
        raise InputError(f"not a note key name (non-empty, no spaces or '+'): {name[:80]!r}")


# -- notes -------------------------------------------------------------------------------------------------

def parse_note(data: bytes) -> Note:
    if len(data) > MAX_NOTE:
        raise ProofError(f"signed note is {len(data)} bytes, over the {MAX_NOTE} byte limit")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProofError("signed note is not UTF-8") from exc
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise ProofError("signed note holds control characters")
    split = text.rfind("\n\n")
    if split < 0 or not text.endswith("\n"):
        raise ProofError("signed note has no blank line before its signatures")
    body, sig_block = text[:split + 1], text[split + 2:]
    lines = sig_block[:-1].split("\n")
    if not lines or len(lines) > MAX_SIGNATURES:
        raise ProofError(f"signed note has {len(lines)} signature lines (1 to {MAX_SIGNATURES})")
    return Note(body, tuple(parse_signature_line(line) for line in lines))


def parse_signature_line(line: str) -> Signature:
    if not line.startswith(_DASH):
        raise ProofError(f"not a note signature line: {line[:80]!r}")
    name, sep, b64 = line[len(_DASH):].partition(" ")
    if not sep or " " in b64:
        raise ProofError(f"malformed note signature line: {line[:80]!r}")
    try:
        check_name(name)
    except InputError as exc:
        raise ProofError(exc.message) from None
    raw = _b64(b64, f"signature of {name}", None, error=ProofError)
    if len(raw) < 5:
        raise ProofError(f"signature of {name} is too short")
    return Signature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def sign(text: str, name: str, key: Ed25519PrivateKey) -> Signature:
    """An Ed25519 note signature (type 0x01) over text."""
    return Signature(name, key_id(name, ED25519, key.public_key()), key.sign(text.encode()))


def cosign(checkpoint_text: str, name: str, key: Ed25519PrivateKey, timestamp: int) -> Signature:
    """A tlog-cosignature/v1 over a checkpoint body: 8-byte timestamp || Ed25519 signature."""
    message = f"cosignature/v1\ntime {timestamp}\n{checkpoint_text}".encode()
    return Signature(name, key_id(name, COSIGNATURE_V1, key.public_key()),
                     struct.pack(">Q", timestamp) + key.sign(message))


def verified_by(note: Note, verifiers: list[Verifier]) -> dict[str, int | None]:
    """name -> cosignature timestamp (None for a plain Ed25519 signature) of every known key that signed.

    Lines from unknown keys are ignored (signed-note); a line that names a known key and fails to verify
    makes the whole note invalid (ProofError), as the specification asks."""
    known = {(v.name, v.key_id): v for v in verifiers}
    found: dict[str, int | None] = {}
    for s in note.signatures:
        v = known.get((s.name, s.key_id))
        if v is None:
            continue
        try:
            found[v.name] = _verify(v, s, note.text)
        except InvalidSignature:
            raise ProofError(f"the signature of {v.name} on this note does not verify") from None
    return found


def signed_by(text: str, signature: Signature, verifiers: list[Verifier]) -> bool:
    """Whether this one line is a valid signature over text by one of verifiers (the key it names).

    For sorting what someone else hands over line by line (a witness's answer): unlike verified_by, a bad line
    is an answer (False) to drop, not a verdict on a whole note."""
    for v in verifiers:
        if (v.name, v.key_id) == (signature.name, signature.key_id):
            try:
                _verify(v, signature, text)
                return True
            except InvalidSignature:
                return False
    return False


def _verify(v: Verifier, s: Signature, text: str) -> int | None:
    """The cosignature timestamp (None for an Ed25519 note signature); InvalidSignature if s fails."""
    if v.kind == ED25519:
        v.public.verify(s.sig, text.encode())
        return None
    if len(s.sig) != 72:
        raise InvalidSignature()
    (timestamp,) = struct.unpack(">Q", s.sig[:8])
    if timestamp >= 1 << 63:
        raise InvalidSignature()
    v.public.verify(s.sig[8:], f"cosignature/v1\ntime {timestamp}\n{text}".encode())
    return int(timestamp)


# -- checkpoints -------------------------------------------------------------------------------------------

def parse_checkpoint(text: str) -> Checkpoint:
    lines = text[:-1].split("\n") if text.endswith("\n") else []
    if len(lines) < 3 or any(not line for line in lines):
        raise ProofError("a checkpoint is at least three non-empty lines: origin, size, root")
    origin, size, root, *ext = lines
    root_hash = _b64(root, "checkpoint root", 32, error=ProofError)
    return Checkpoint(origin, parse_uint(size, "checkpoint size"), root_hash, tuple(ext))


def parse_uint(text: str, what: str, *, error: type[Exception] = ProofError) -> int:
    """An unsigned 64-bit decimal from outside, spelled one way only: ASCII digits, no sign, space or leading
    zero. int() and str.isdigit() take "\u0661\u0662", "\u00b2", "+5", " 5", "1_0" and numbers of any size, so
    two readers of one text could see two numbers (or one crash). Raises `error` (the caller's type) else."""
    if not _UINT.fullmatch(text) or int(text) >= 1 << 64:
        raise error(f"{what} is not a decimal below 2**64 (no sign, spaces or leading zeros): {text[:30]!r}")
    return int(text)


def _b64(text: str, what: str, size: int | None, *, error: type[NotaryError] = InputError) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise error(f"{what} is not base64") from exc
    if size is not None and len(raw) != size:
        raise error(f"{what} is {len(raw)} bytes, not {size}")
    return raw
