"""Signing keys: generation, loading, key ids.

Ed25519 is the default (small, fast, deterministic signatures); ECDSA P-256 is offered for environments whose
HSMs or policies require NIST curves. A key id is `sha256:` + hex of the DER SubjectPublicKeyInfo, the same
bytes whatever PEM wrapping or comments a file carries, so ids are stable across tools.

A key that lives elsewhere (a PKCS#11 token's `pkcs11:` URI, an AWS KMS key's `awskms://` URI: see
notary.signing) is a `Signer`: records and notarizations take a `SigningKey`, either a key in memory or one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from pathlib import Path
from typing import Protocol, cast

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

# The encoding enums without `serialization/__init__`, which drags in the SSH key code: loading public keys
# is on the runtime hook's cold-start path, private key handling is not.
try:
    from cryptography.hazmat.primitives._serialization import Encoding, PublicFormat
except ImportError:  # pragma: no cover - layout of older/newer cryptography releases
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from notary.environment import Environment, given
from notary.errors import InputError, SignatureError, UsageError
from notary.fsio import MAX_KEY, check_path_length, read_regular

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

KEY_TYPES = ("ed25519", "ecdsa-p256")


class Signer(Protocol):
    """A private key notary cannot hold: all that signing a record, a revocation or a reinstatement needs.

    sign_bytes(data) signs data itself (the signer hashes it where its algorithm needs a digest) and returns
    what a key file would: 64 raw bytes for Ed25519, DER (RFC 3279) for ECDSA P-256 with SHA-256, so records
    verify with the same code whatever held the key. The key id is not the signer's to state: key_id()
    derives it from public_key(), and sign() checks each signature under that key before it is used, so a
    backend that mixes up its keys fails here, not in the immutable ledger."""

    def public_key(self) -> PublicKey: ...

    def sign_bytes(self, data: bytes) -> bytes: ...


SigningKey = PrivateKey | Signer


def generate_private_key(kind: str = "ed25519") -> PrivateKey:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise UsageError(f"unknown key type {kind!r}", hint="use ed25519 or ecdsa-p256")


def key_type(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519"
    return "ecdsa-p256"


def public_der(key: PublicKey) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def public_pem(key: PublicKey) -> str:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


# DER SubjectPublicKeyInfo prefixes of the two supported key types (RFC 8410, RFC 5480).
_ED25519_SPKI = bytes.fromhex("302a300506032b6570032100")
_P256_SPKI = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
_PEM_PUBLIC = re.compile(rb"-----BEGIN PUBLIC KEY-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END PUBLIC KEY-----")


def _public_from_der(der: bytes) -> PublicKey | None:
    if len(der) == 44 and der.startswith(_ED25519_SPKI):
        return ed25519.Ed25519PublicKey.from_public_bytes(der[12:])
    if len(der) == 91 and der.startswith(_P256_SPKI):
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), der[26:])
    return None


def key_id(key: PublicKey | SigningKey) -> str:
    pub = key if isinstance(key, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey)) else key.public_key()
    return "sha256:" + hashlib.sha256(public_der(pub)).hexdigest()


def sign(key: SigningKey, data: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    signature = key.sign_bytes(data)
    verify_signature(key.public_key(), signature, data)  # a token or service answer is checked, not trusted
    return signature


def verify_signature(key: PublicKey, signature: bytes, data: bytes) -> None:
    """Raise SignatureError unless signature is valid for data under key."""
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise SignatureError(f"signature does not verify under key {key_id(key)}") from exc


def check_supported(key: object, what: str) -> None:
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) and isinstance(
        key.curve, ec.SECP256R1
    ):
        return
    raise InputError(f"{what} is neither an Ed25519 nor an ECDSA P-256 key")


def _read_source(source: str | bytes | Path, what: str) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, what
    text = str(source)
    if "-----BEGIN" in text:
        return text.encode(), what
    # bounded and regular files only: a key "file" that is /dev/zero or a FIFO must not hang or fill memory
    return read_regular(text, MAX_KEY, f"{what} file"), text


def load_private_key(source: str | bytes | Path, passphrase: bytes | None = None,
                     env: Environment | None = None) -> SigningKey:
    """Load a PEM private key from a path or PEM text (passphrase defaults to NOTARY_KEY_PASSPHRASE), or open
    the key a `pkcs11:` or `awskms://` URI names (a str only: a Path is always a file), so every --key takes
    each of them. env: the environment those defaults come from (None: the process's)."""
    if isinstance(source, str):
        from notary import signing

        if signing.is_service_key(source):
            return signing.open_signer(source, env)
    return load_key_file(source, passphrase, env)


def load_key_file(source: str | bytes | Path, passphrase: bytes | None = None,
                  env: Environment | None = None) -> PrivateKey:
    """A PEM private key from a path or PEM text, never a token: for what needs the key's bytes."""
    data, name = _read_source(source, "private key")
    if passphrase is None:
        env_passphrase = given(env).key_passphrase
        if env_passphrase:
            passphrase = env_passphrase.encode()
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as exc:
        if passphrase is None:
            raise UsageError(
                f"{name} is encrypted", hint="set NOTARY_KEY_PASSPHRASE to its passphrase"
            ) from exc
        raise UsageError(f"{name} is not encrypted, but a passphrase was given") from exc
    except ValueError as exc:
        if passphrase is not None and b"ENCRYPTED" in data:
            raise UsageError(f"wrong passphrase for {name}") from exc
        raise InputError(f"{name} is not a PEM private key") from exc
    except UnsupportedAlgorithm as exc:
        raise InputError(f"{name} uses an unsupported key algorithm") from exc
    check_supported(key, name)  # raises unless Ed25519 or ECDSA P-256, which is what the cast states
    return cast(PrivateKey, key)


def load_ed25519_key(path: str | Path, what: str, why: str,
                     env: Environment | None = None) -> ed25519.Ed25519PrivateKey:
    """A key file that must be Ed25519 (a signed note's key, a witness's cosignature key): why says which."""
    key = load_key_file(Path(path), env=env)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise InputError(f"{what} {path} is not an Ed25519 key ({why})", hint=f"notary key generate --out {what.split()[0]}.key")
    return key


def load_public_key(source: str | bytes | Path) -> PublicKey:
    """Load a PEM public key (or the public half of a PEM private key given by mistake is refused)."""
    data, name = _read_source(source, "public key")
    if b"PRIVATE KEY" in data:
        raise UsageError(f"{name} is a private key", hint="pass the .pub file: verify needs only public keys")
    match = _PEM_PUBLIC.search(data)
    if match:
        try:
            fast = _public_from_der(base64.b64decode(b"".join(match.group(1).split()), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise InputError(f"{name} is not a PEM public key") from exc
        if fast is not None:
            return fast
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(f"{name} is not a PEM public key") from exc
    check_supported(key, name)  # raises unless Ed25519 or ECDSA P-256, which is what the cast states
    return cast(PublicKey, key)


def private_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    from cryptography.hazmat.primitives import serialization

    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _write_with_mode(path: Path, data: bytes, mode: int) -> None:
    """Create or truncate path and give it exactly mode before any byte is written: os.open's mode is
    filtered by the umask (000 would make a key world-writable) and ignored for an existing file, fchmod
    is neither."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def check_targets(paths: tuple[Path, ...], force: bool) -> None:
    """The directory must exist: creating it silently would hide a mistyped path, and a directory made here
    would get whatever mode the umask gives, not one chosen for a key."""
    for path in paths:
        check_path_length(str(path), "key", error=UsageError)
    parent = paths[0].parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise UsageError(f"directory {parent} {what}", hint="create it first: notary does not create directories")
    if not force:
        for existing in paths:
            if existing.exists():
                raise UsageError(f"{existing} already exists", hint="choose another --out or pass --force")


def write_key_pair(path: str | Path, key: PrivateKey, passphrase: bytes | None = None, *, force: bool = False) -> Path:
    """Write PATH (private, 0600) and PATH.pub (0644), whatever the umask; return the .pub path."""
    path = Path(path)
    pub_path = path.with_name(path.name + ".pub")
    check_targets((path, pub_path), force)
    _write_with_mode(path, private_pem(key, passphrase), 0o600)
    _write_with_mode(pub_path, public_pem(key.public_key()).encode(), 0o644)
    return pub_path


def write_public_key(path: str | Path, key: PublicKey, *, force: bool = False) -> Path:
    """Write the public key PEM to PATH (0644, whatever the umask): a token key's half for verifiers."""
    path = Path(path)
    check_targets((path,), force)
    _write_with_mode(path, public_pem(key).encode(), 0o644)
    return path
