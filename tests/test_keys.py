"""Signing keys: file modes, stable ids, passphrases, and refusing the wrong kind of key."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from notary import keys
from notary.errors import InputError, UsageError


@pytest.mark.parametrize("kind", keys.KEY_TYPES)
def test_private_key_is_written_0600_and_public_key_beside_it(tmp_path: Path, kind: str) -> None:
    key = keys.generate_private_key(kind)
    pub = keys.write_key_pair(tmp_path / "ci.key", key)
    assert stat.S_IMODE((tmp_path / "ci.key").stat().st_mode) == 0o600
    assert pub == tmp_path / "ci.key.pub"
    assert keys.key_id(keys.load_public_key(pub)) == keys.key_id(key)


def test_key_id_is_sha256_of_der_spki() -> None:
    key = keys.generate_private_key()
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert keys.key_id(key) == "sha256:" + hashlib.sha256(der).hexdigest()


def test_existing_key_is_not_overwritten(tmp_path: Path) -> None:
    keys.write_key_pair(tmp_path / "k", keys.generate_private_key())
    with pytest.raises(UsageError):
        keys.write_key_pair(tmp_path / "k", keys.generate_private_key())


def test_encrypted_key_needs_its_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys.write_key_pair(tmp_path / "k", keys.generate_private_key(), b"correct horse")
    assert b"ENCRYPTED" in (tmp_path / "k").read_bytes()
    with pytest.raises(UsageError, match="NOTARY_KEY_PASSPHRASE"):
        keys.load_private_key(tmp_path / "k")
    monkeypatch.setenv("NOTARY_KEY_PASSPHRASE", "wrong")
    with pytest.raises(UsageError, match="wrong passphrase"):
        keys.load_private_key(tmp_path / "k")
    monkeypatch.setenv("NOTARY_KEY_PASSPHRASE", "correct horse")
    assert keys.load_private_key(tmp_path / "k")


def test_private_key_given_as_trusted_key_is_refused(tmp_path: Path) -> None:
    keys.write_key_pair(tmp_path / "k", keys.generate_private_key())
    with pytest.raises(UsageError, match="private key"):
        keys.load_public_key(tmp_path / "k")


def test_unsupported_curve_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(InputError):
        keys.load_public_key(pem)


def test_garbage_key_file_is_a_clear_input_error(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("hello")
    with pytest.raises(InputError):
        keys.load_private_key(tmp_path / "k")


def test_missing_directory_is_refused_and_not_created(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        keys.write_key_pair(tmp_path / "new" / "k", keys.generate_private_key())
    assert not (tmp_path / "new").exists()


def test_modes_are_0600_and_0644_whatever_the_umask(tmp_path: Path) -> None:
    import os

    old = os.umask(0)
    try:
        keys.write_key_pair(tmp_path / "k", keys.generate_private_key())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "k.pub").stat().st_mode) == 0o644
