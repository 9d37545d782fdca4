"""Signing keys in AWS KMS (`awskms://` URIs), against a real KMS API server on loopback (local-kms; no mocks).

What must hold: a KMS key works wherever --key does (notarize, revoke, NOTARY_SIGNING_KEY, [signing] key) and
its records verify with the exported public key and nothing of AWS; a key of the wrong kind, a missing or
disabled key, missing credentials or region, a bad URI are one line and exit 2 with nothing written; an
unreachable service is exit 4; a service that lies about a signature is refused (exit 3) with nothing written;
no credential ever reaches an output or the ledger.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from notary import keys, records
from notary.errors import SignatureError, UsageError
from notary.signing import awskms
from tests.support.cli import Notary, ledger_bytes, one_line, stored_entry
from tests.support.kms import LocalKms, LyingKms, call, local_kms  # noqa: F401 - local_kms is a fixture
from tests.support.processes import free_port

ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

# ---------------------------------------------------------------- the URI (no server needed)


@pytest.mark.parametrize("text, host, key, region", [
    ("awskms:///alias/notary-ci", "", "alias/notary-ci", None),
    ("awskms:///1234abcd-12ab-34cd-56ef-1234567890ab", "", "1234abcd-12ab-34cd-56ef-1234567890ab", None),
    ("awskms:///mrk-" + "a" * 32, "", "mrk-" + "a" * 32, None),
    (f"awskms:///{ARN}", "", ARN, "eu-west-1"),
    ("awskms://kms.eu-west-1.amazonaws.com/alias/ci", "kms.eu-west-1.amazonaws.com", "alias/ci", None),
    ("awskms://localhost:4566/alias/team/ci", "localhost:4566", "alias/team/ci", None),
])
def test_uris_name_a_key_an_alias_or_an_arn(text: str, host: str, key: str, region: str | None) -> None:
    uri = awskms.parse(text)
    assert (uri.host, uri.key, uri.region) == (host, key, region)


@pytest.mark.parametrize("text, words", [
    ("awskms://", "names no key"),
    ("awskms://alias/ci", "three slashes"),  # the alias read as a host: the third slash is missing
    ("awskms:///", "names no key"),
    ("awskms:///alias/", "bad key"),
    ("awskms:///alias/a b", "bad key"),
    ("awskms:///not-a-key-id", "bad key"),
    ("awskms:///arn:aws:kms:eu-west-1:1111:key/x", "bad key"),
    ("awskms://user:pw@host/alias/ci", "bad endpoint host"),
    ("awskms://host:99999999/alias/ci", "bad endpoint host"),
    ("awskms:///alias/aws/ebs", "AWS managed key"),
    ("awskms:///alias/" + "x" * 3000, "longer than"),
])
def test_bad_uris_are_usage_errors(text: str, words: str) -> None:
    with pytest.raises(UsageError) as caught:
        awskms.parse(text)
    assert words in caught.value.one_line()


# ---------------------------------------------------------------- against local-kms


@pytest.fixture
def notary(tmp_path: Path, local_kms: LocalKms) -> Notary:  # noqa: F811 - the fixture above
    n = Notary(tmp_path)
    for name in [k for k in n.env if k.startswith("AWS_")]:
        del n.env[name]  # nothing of the developer's AWS setup
    n.env.update(local_kms.env)
    return n




def _generate(notary: Notary, alias: str) -> tuple[str, Path, dict[str, Any]]:
    uri, pub = f"awskms:///alias/{alias}", notary.root / f"{alias}.pub"
    made = notary.run("--json", "key", "generate", "--kms", uri, "--out", str(pub)).json
    return uri, pub, made


@pytest.mark.integration
def test_a_record_signed_in_kms_verifies_with_the_exported_public_key(notary: Notary, tmp_path: Path) -> None:
    uri, pub, made = _generate(notary, "verify")
    assert made["type"] == "ecdsa-p256" and made["kms"]["key_spec"] == "ECC_NIST_P256"
    arn = made["kms"]["arn"]
    shown = notary.run("--json", "key", "show", f"awskms:///{arn}", "--out", str(tmp_path / "again.pub")).json
    assert shown["key_id"] == made["key_id"] and (tmp_path / "again.pub").read_bytes() == pub.read_bytes()

    artifact, digest = notary.notarize_file(uri, b"built in CI\n")  # type: ignore[arg-type]
    assert notary.run("--json", "verify", str(artifact), "--key", str(pub)).json["allowed"] is True

    entry = stored_entry(notary, records.subject_key(digest, str(made["key_id"])), tmp_path / "reader-state")
    sig = base64.b64decode(json.loads(entry.value)["signatures"][0]["sig"])
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    assert sig[0] == 0x30 and decode_dss_signature(sig)  # DER, as a key file's ECDSA signature is
    assert records.open_envelope(entry.value, expected_signer=str(made["key_id"]))


@pytest.mark.integration
def test_revoke_and_the_uri_from_notary_signing_key_and_the_config_file(notary: Notary) -> None:
    uri, pub, _ = _generate(notary, "env")
    artifact = notary.root / "a.bin"
    artifact.write_bytes(b"a")
    notary.run("notarize", str(artifact), "--job-id", "j1", env={"NOTARY_SIGNING_KEY": uri})
    config = notary.root / "notary.toml"
    config.write_text(f'[signing]\nkey = "{uri}"\n')
    notary.run("--config", str(config), "revoke", str(artifact), "--reason", "config key")
    notary.run("verify", str(artifact), "--key", str(pub), expect=1)


@pytest.mark.integration
def test_no_credential_reaches_an_output_or_the_ledger(notary: Notary) -> None:
    uri, _, _ = _generate(notary, "secret")
    artifact, _ = notary.notarize_file(uri, b"x")  # type: ignore[arg-type]
    outputs = [notary.run("--json", "key", "show", uri), notary.run("--json", "history", str(artifact))]
    secret, key_id = notary.env["AWS_SECRET_ACCESS_KEY"].encode(), notary.env["AWS_ACCESS_KEY_ID"].encode()
    for r in outputs:
        assert secret.decode() not in r.out + r.err and key_id.decode() not in r.out + r.err
    for data in ledger_bytes(notary).values():
        assert secret not in data and key_id not in data


@pytest.mark.integration
@pytest.mark.parametrize("spec, usage, words", [
    ("ECC_NIST_P384", "SIGN_VERIFY", "ECC_NIST_P384 SIGN_VERIFY key"),
    ("RSA_2048", "SIGN_VERIFY", "RSA_2048"),
    ("RSA_2048", "ENCRYPT_DECRYPT", "ENCRYPT_DECRYPT"),
    ("ECC_SECG_P256K1", "SIGN_VERIFY", "ECC_SECG_P256K1"),
])
def test_a_kms_key_of_another_kind_is_refused_before_the_ledger_is_touched(
        notary: Notary, local_kms: LocalKms, spec: str, usage: str, words: str) -> None:  # noqa: F811
    arn = local_kms.create_key(spec, usage)
    artifact = notary.root / "a.bin"
    artifact.write_bytes(b"a")
    line = one_line(notary.run("notarize", str(artifact), "--job-id", "j", "--key", f"awskms:///{arn}", expect=2))
    assert words in line and "ECC_NIST_P256" in line
    assert not notary.ledger_path.exists(), "a key notary cannot use must not even create the ledger"


@pytest.mark.integration
def test_a_missing_or_disabled_key_is_one_line_exit_2_and_nothing_is_written(
        notary: Notary, local_kms: LocalKms) -> None:  # noqa: F811
    uri, _, made = _generate(notary, "disabled")
    notary.notarize_file(uri, b"first")  # type: ignore[arg-type]
    before = ledger_bytes(notary)
    artifact = notary.root / "b.bin"
    artifact.write_bytes(b"b")
    missing = notary.run("notarize", str(artifact), "--job-id", "j2", "--key", "awskms:///alias/absent", expect=2)
    assert "NotFoundException" in one_line(missing)
    local_kms.disable(made["kms"]["arn"])
    for args in (("notarize", str(artifact), "--job-id", "j3", "--key", uri),
                 ("revoke", str(artifact), "--reason", "x", "--key", uri)):
        assert "DisabledException" in one_line(notary.run(*args, expect=2))
    assert ledger_bytes(notary) == before


@pytest.mark.integration
def test_an_alias_that_exists_is_never_replaced_by_generate(notary: Notary, local_kms: LocalKms) -> None:  # noqa: F811
    local_kms.create_key(alias="taken")
    before = call(local_kms.endpoint, "ListKeys", {})["Keys"]
    line = one_line(notary.run("key", "generate", "--kms", "awskms:///alias/taken", expect=2))
    assert "already names a key" in line
    assert call(local_kms.endpoint, "ListKeys", {})["Keys"] == before, "no key may be created for nothing"
    key_id_uri = one_line(notary.run("key", "generate", "--kms", "awskms:///" + "0" * 8 + "-0000-0000-0000-"
                                      + "0" * 12, expect=2))
    assert "needs an alias" in key_id_uri


@pytest.mark.integration
@pytest.mark.parametrize("drop, words", [
    (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), "no AWS credentials"),
    (("AWS_REGION",), "no AWS region"),
])
def test_missing_credentials_or_region_is_one_line_exit_2(notary: Notary, drop: tuple[str, ...], words: str) -> None:
    for name in drop:
        del notary.env[name]
    artifact = notary.root / "a.bin"
    artifact.write_bytes(b"a")
    line = one_line(notary.run("notarize", str(artifact), "--job-id", "j", "--key", "awskms:///alias/x", expect=2))
    assert words in line
    assert not notary.ledger_path.exists()


@pytest.mark.integration
def test_an_unreachable_kms_is_exit_4_with_nothing_written(notary: Notary) -> None:
    artifact = notary.root / "a.bin"
    artifact.write_bytes(b"a")
    gone = f"http://127.0.0.1:{free_port()}"
    line = one_line(notary.run("notarize", str(artifact), "--job-id", "j", "--key", "awskms:///alias/x",
                                env={"AWS_ENDPOINT_URL_KMS": gone, "AWS_MAX_ATTEMPTS": "1"}, expect=4))
    assert "AWS KMS unavailable" in line and "EndpointConnectionError" in line
    assert not notary.ledger_path.exists()


@pytest.mark.integration
@pytest.mark.parametrize("lie", ["another-keys-signature", "a-flipped-byte", "no-signature"])
def test_a_kms_that_lies_about_a_signature_is_refused_and_nothing_is_written(
        notary: Notary, local_kms: LocalKms, lie: str) -> None:  # noqa: F811
    uri, _, _ = _generate(notary, f"lie-{lie}")
    notary.notarize_file(uri, b"first")  # type: ignore[arg-type]
    before = ledger_bytes(notary)
    other = local_kms.create_key()

    def rewrite(answer: dict[str, Any]) -> dict[str, Any]:
        signature = base64.b64decode(answer["Signature"])
        if lie == "another-keys-signature":
            signature = local_kms.sign(other, hashlib.sha256(b"anything").digest())
        elif lie == "a-flipped-byte":
            signature = signature[:-1] + bytes([signature[-1] ^ 1])
        else:
            return {k: v for k, v in answer.items() if k != "Signature"}
        return {**answer, "Signature": base64.b64encode(signature).decode()}

    proxy = LyingKms(local_kms.endpoint, rewrite)
    try:
        artifact = notary.root / "b.bin"
        artifact.write_bytes(b"b")
        result = notary.run("notarize", str(artifact), "--job-id", "j2", "--key", uri,
                            env={"AWS_ENDPOINT_URL_KMS": proxy.endpoint}, expect=None)
    finally:
        proxy.close()
    assert proxy.signs >= 1, "the lie was never told: the test proved nothing"
    assert result.code == (4 if lie == "no-signature" else 3), result.err
    one_line(result)
    assert ledger_bytes(notary) == before


@pytest.mark.integration
def test_an_alias_moved_mid_run_cannot_make_one_run_sign_with_two_keys(local_kms: LocalKms,  # noqa: F811
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in local_kms.env.items():
        monkeypatch.setenv(name, value)
    first = local_kms.create_key(alias="moving")
    signer = awskms.open_signer("awskms:///alias/moving")
    assert signer.arn == first
    call(local_kms.endpoint, "UpdateAlias", {"AliasName": "alias/moving", "TargetKeyId": local_kms.create_key()})
    signature = keys.sign(signer, b"after the move")  # still the key the run opened, by its ARN
    keys.verify_signature(signer.public_key(), signature, b"after the move")
    with pytest.raises(SignatureError):
        keys.verify_signature(awskms.open_signer("awskms:///alias/moving").public_key(), signature, b"after the move")
