"""Signing keys inside a PKCS#11 token, against a real SoftHSM2 token each test initialises (no mocks).

What must hold: a token key works wherever --key does (notarize, revoke, reinstate, NOTARY_SIGNING_KEY,
[signing] key) and its records verify with the exported public key under the unchanged verifier (ECDSA in
DER, like a key file); the private key cannot be read out of the token; a wrong PIN, a missing module or a
bad URI is one line and exit 2 with nothing written; the PIN never appears in any output or ledger byte and
cannot be given as an argument.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from notary import keys, records
from notary.errors import SignatureError, UsageError
from notary.signing import pkcs11_uri
from tests.support.cli import Notary, Result, ledger_bytes, one_line, stored_entry
from tests.support.softhsm import PIN, SoftHsm, start

# ---------------------------------------------------------------- the URI parser (no token needed)


def test_uri_parses_path_query_and_percent_encoding() -> None:
    uri = pkcs11_uri.parse("pkcs11:token=my%20ci;object=notary;id=%01%ff;type=private;slot-id=7"
                           "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin")
    assert uri.token == {"token": "my ci", "slot-id": "7"}
    assert (uri.object, uri.id, uri.type) == ("notary", b"\x01\xff", "private")
    assert (uri.module_path, uri.pin_source) == ("/usr/lib/softhsm/libsofthsm2.so", "file:/run/pin")


@pytest.mark.parametrize("text, words", [
    ("pkcs11:token=ci;objekt=x", "unknown PKCS#11 URI path attribute objekt"),
    ("pkcs11:token=ci;x-vendor=1", "unknown"),
    ("pkcs11:token=ci;object=%zz", "broken percent-encoding"),
    ("pkcs11:token=ci;object=ab%4", "broken percent-encoding"),
    ("pkcs11:token=ci;object=a b", "must be percent-encoded"),
    ("pkcs11:token=ci;object=%ff%fe", "not UTF-8"),
    ("pkcs11:token=ci;token=cd;object=x", "repeats attribute token"),
    ("pkcs11:token=;object=x", "is empty"),
    ("pkcs11:token=ci;object", "without '='"),
    ("pkcs11:token=ci;object=x;module-path=/m.so", "belongs in the query"),
    ("pkcs11:token=ci;object=x?module-path=lib.so", "must be absolute"),
    ("pkcs11:token=ci;object=x?module-name=softhsm2", "module-name is not supported"),
    ("pkcs11:token=ci;object=x;type=secret", "type is not one of"),
    ("pkcs11:token=ci;object=x;slot-id=zero", "slot-id must be a decimal"),
    (f"pkcs11:token=ci;object=x?pin-value={PIN}", "pin-value"),
    ("pkcs11:token=ci;" + "object=x;" * 600, "longer than"),
])
def test_bad_uris_are_usage_errors_that_never_echo_values(text: str, words: str) -> None:
    with pytest.raises(UsageError) as caught:
        pkcs11_uri.parse(text)
    assert words in caught.value.one_line()
    assert PIN not in caught.value.one_line() and "%zz" not in caught.value.one_line()


@pytest.mark.parametrize("source, path", [("file:/run/pin", "/run/pin"), ("file:///run/pin", "/run/pin"),
                                          ("file://localhost/run/pin", "/run/pin"), ("/run/pin", "/run/pin"),
                                          ("file:run/pin", None), ("file://host/run/pin", None), ("|cat", None)])
def test_pin_source_names_an_absolute_file(source: str, path: str | None) -> None:
    from notary.signing.pkcs11 import _pin_source_path

    if path is None:
        with pytest.raises(UsageError, match="absolute file"):
            _pin_source_path(source)
    else:
        assert _pin_source_path(source) == path


class _Remote:
    """The smallest keys.Signer, as a KMS or Vault transit backend would be: a key notary only asks to sign."""

    def __init__(self, public: keys.PublicKey, signing: keys.PrivateKey) -> None:
        self._public, self._signing = public, signing

    def public_key(self) -> keys.PublicKey:
        return self._public

    def sign_bytes(self, data: bytes) -> bytes:
        return keys.sign(self._signing, data)


@pytest.mark.parametrize("kind", keys.KEY_TYPES)
def test_any_signer_backend_makes_records_the_unchanged_verifier_opens(kind: str) -> None:
    key = keys.generate_private_key(kind)
    remote = _Remote(key.public_key(), key)
    record = records.new_record("notarization", {"digest": "sha256:" + "cd" * 32}, remote, ci={"jobId": "1"})
    assert record.signer == keys.key_id(key)
    assert records.open_envelope(records.sign_record(record, remote), expected_signer=keys.key_id(key))


def test_a_signer_answering_for_another_key_is_refused_before_anything_is_stored() -> None:
    key = keys.generate_private_key()
    confused = _Remote(key.public_key(), keys.generate_private_key())  # signs with a key it does not name
    record = records.new_record("notarization", {"digest": "sha256:" + "cd" * 32}, confused)
    with pytest.raises(SignatureError):
        records.sign_record(record, confused)


# ---------------------------------------------------------------- against SoftHSM2

@pytest.fixture
def hsm(tmp_path: Path) -> SoftHsm:
    return start(tmp_path / "hsm")


@pytest.fixture
def notary(tmp_path: Path, hsm: SoftHsm) -> Notary:
    n = Notary(tmp_path)
    n.env.update(hsm.env)
    return n




def _generate(notary: Notary, hsm: SoftHsm, obj: str, *extra: str) -> tuple[Path, dict[str, object]]:
    pub = notary.root / f"{obj}.pub"
    made = notary.run("--json", "key", "generate", "--pkcs11", hsm.uri(obj), "--out", str(pub), *extra).json
    return pub, made


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["ed25519", "ecdsa-p256"])
def test_a_record_signed_in_the_token_verifies_with_the_exported_public_key(
        notary: Notary, hsm: SoftHsm, kind: str, tmp_path: Path) -> None:
    pub, made = _generate(notary, hsm, f"notary-{kind}", "--type", kind)
    assert made["type"] == kind and made["pkcs11"]["extractable"] is False
    exported = tmp_path / "exported.pub"
    shown = notary.run("--json", "key", "show", hsm.uri(f"notary-{kind}"), "--out", str(exported)).json
    assert shown["key_id"] == made["key_id"] and exported.read_bytes() == pub.read_bytes()
    assert oct(exported.stat().st_mode & 0o777) == "0o644"

    artifact, digest = notary.notarize_file(hsm.uri(f"notary-{kind}"), b"built in CI\n")
    verified = notary.run("--json", "verify", str(artifact), "--key", str(exported)).json
    assert verified["allowed"] is True, verified

    # the stored envelope is what a key file would have produced: ECDSA in DER, opened by the unchanged code
    entry = stored_entry(notary, records.subject_key(digest, str(made["key_id"])), tmp_path / "reader-state")
    opened = records.open_envelope(entry.value, expected_signer=str(made["key_id"]))
    sig = base64.b64decode(json.loads(entry.value)["signatures"][0]["sig"])
    if kind == "ecdsa-p256":
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        assert sig[0] == 0x30 and decode_dss_signature(sig)  # DER SEQUENCE, not the token's raw r||s
    else:
        assert len(sig) == 64
    assert opened.record.signer == made["key_id"]


@pytest.mark.integration
def test_generate_picks_ed25519_where_the_token_offers_it(notary: Notary, hsm: SoftHsm) -> None:
    _, made = _generate(notary, hsm, "default")
    assert made["type"] == "ed25519"


@pytest.mark.integration
def test_the_private_key_cannot_be_read_out_of_the_token(notary: Notary, hsm: SoftHsm) -> None:
    import pkcs11

    _, made = _generate(notary, hsm, "locked")
    with hsm.session() as session:
        private = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, label="locked")
        assert private[pkcs11.Attribute.EXTRACTABLE] is False
        assert private[pkcs11.Attribute.SENSITIVE] is True
        assert private[pkcs11.Attribute.NEVER_EXTRACTABLE] is True
        assert private[pkcs11.Attribute.SIGN] is True and private[pkcs11.Attribute.DECRYPT] is False
        with pytest.raises(pkcs11.AttributeSensitive):
            private[pkcs11.Attribute.VALUE]  # noqa: B018 - the read itself is what must fail
        with pytest.raises(pkcs11.PKCS11Error):  # not extractable: the token refuses to change that either
            private[pkcs11.Attribute.EXTRACTABLE] = True


@pytest.mark.integration
def test_revoke_and_reinstate_with_a_token_key(notary: Notary, hsm: SoftHsm) -> None:
    pub, _ = _generate(notary, hsm, "rel")
    key = hsm.uri("rel")
    artifact, digest = notary.notarize_file(key, b"v1")
    notary.run("revoke", digest, "--reason", "CVE-2026-1", "--key", key)
    notary.run("verify", str(artifact), "--key", str(pub), expect=1)
    refused = notary.run("notarize", str(artifact), "--job-id", "j2", "--key", key, expect=1)
    assert "revoked by this signer" in refused.err
    notary.run("notarize", str(artifact), "--job-id", "j3", "--key", key, "--reinstate", "--reason", "not affected")
    assert notary.run("--json", "verify", str(artifact), "--key", str(pub)).json["allowed"] is True


@pytest.mark.integration
def test_the_uri_works_from_notary_signing_key_and_the_config_file(notary: Notary, hsm: SoftHsm) -> None:
    pub, _ = _generate(notary, hsm, "env")
    artifact = notary.root / "a.bin"
    artifact.write_bytes(b"a")
    notary.run("notarize", str(artifact), "--job-id", "j1", env={"NOTARY_SIGNING_KEY": hsm.uri("env")})
    config = notary.root / "notary.toml"
    config.write_text(f'[signing]\nkey = "{hsm.uri("env")}"\n')
    notary.run("--config", str(config), "revoke", str(artifact), "--reason", "config key")
    notary.run("verify", str(artifact), "--key", str(pub), expect=1)


@pytest.mark.integration
def test_the_pin_comes_from_a_file_or_pin_source_too(notary: Notary, hsm: SoftHsm) -> None:
    _generate(notary, hsm, "files")
    pin_file = notary.root / "pin"
    pin_file.write_text(PIN + "\n")
    del notary.env["NOTARY_PKCS11_PIN"]
    notary.run("key", "show", hsm.uri("files"), env={"NOTARY_PKCS11_PIN_FILE": str(pin_file)})
    notary.run("key", "show", hsm.uri("files", query=f"pin-source=file:{pin_file}"))
    line = one_line(notary.run("key", "show", hsm.uri("files"), expect=2))
    assert "no PIN" in line and "NOTARY_PKCS11_PIN" in line
    both = notary.run("key", "show", hsm.uri("files"), env={"NOTARY_PKCS11_PIN_FILE": str(pin_file),
                                                            "NOTARY_PKCS11_PIN": PIN}, expect=2)
    assert "both" in one_line(both)


@pytest.mark.integration
def test_a_wrong_pin_is_one_line_exit_2_and_nothing_is_written(notary: Notary, hsm: SoftHsm) -> None:
    _generate(notary, hsm, "pin")
    artifact = notary.root / "a.bin"
    artifact.write_bytes(b"a")
    fresh = notary.run("notarize", str(artifact), "--job-id", "j1", "--key", hsm.uri("pin"),
                       env={"NOTARY_PKCS11_PIN": "0000-wrong"}, expect=2)
    assert "wrong PIN" in one_line(fresh) and "0000-wrong" not in fresh.err + fresh.out
    assert not notary.ledger_path.exists(), "a failed login must not even create the ledger"

    notary.notarize_file(hsm.uri("pin"), b"first")
    before = ledger_bytes(notary)
    for args in (("notarize", str(artifact), "--job-id", "j2", "--key", hsm.uri("pin")),
                 ("revoke", str(artifact), "--reason", "x", "--key", hsm.uri("pin"))):
        result = notary.run(*args, env={"NOTARY_PKCS11_PIN": "0000-wrong"}, expect=2)
        assert "wrong PIN" in one_line(result)
    assert ledger_bytes(notary) == before


@pytest.mark.integration
def test_a_missing_module_is_one_line_exit_2(notary: Notary, hsm: SoftHsm, tmp_path: Path) -> None:
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"a")
    for module in ("/nonexistent/libsofthsm2.so", str(artifact)):  # absent, and a file that is no library
        uri = f"pkcs11:token=ci;object=x?module-path={module}"
        line = one_line(notary.run("notarize", str(artifact), "--job-id", "j", "--key", uri, expect=2))
        assert module in line and "PKCS#11 module" in line
    no_module = one_line(notary.run("key", "show", "pkcs11:token=ci;object=x", expect=2))
    assert "no PKCS#11 module" in no_module
    assert not notary.ledger_path.exists()


@pytest.mark.integration
@pytest.mark.parametrize("bad", ["pkcs11:token=ci;objekt=x", "pkcs11:token=ci;object=%zz", "pkcs11:token=c%4",
                                 f"pkcs11:token=ci;object=x?pin-value={PIN}"])
def test_a_bad_uri_is_one_line_exit_2_with_nothing_written(notary: Notary, hsm: SoftHsm, bad: str) -> None:
    notary.notarize_file(notary.key("file"), b"seed")  # a ledger that must stay byte for byte the same
    before = ledger_bytes(notary)
    artifact = notary.root / "b.bin"
    artifact.write_bytes(b"b")
    uri = f"{bad}{'&' if '?' in bad else '?'}module-path={hsm.module}"
    for args in (("notarize", str(artifact), "--job-id", "j", "--key", uri), ("key", "show", uri),
                 ("key", "generate", "--pkcs11", uri)):
        result = notary.run(*args, expect=2)
        assert "PKCS#11 URI" in one_line(result) and PIN not in result.err + result.out
    assert ledger_bytes(notary) == before


@pytest.mark.integration
def test_token_and_library_attributes_select_the_token(notary: Notary, hsm: SoftHsm) -> None:
    _, made = _generate(notary, hsm, "sel")
    exact = "manufacturer=SoftHSM%20project;model=SoftHSM%20v2;library-manufacturer=SoftHSM;type=private"
    assert notary.run("--json", "key", "show", hsm.uri("sel", path=exact)).json["key_id"] == made["key_id"]
    for wrong in ("library-version=99", "model=other", "slot-id=1"):
        line = one_line(notary.run("key", "show", hsm.uri("sel", path=wrong), expect=2))
        assert "does not match" in line or "no initialised token" in line


@pytest.mark.integration
def test_unknown_tokens_and_keys_are_one_line_exit_2(notary: Notary, hsm: SoftHsm) -> None:
    _generate(notary, hsm, "here")
    assert "no initialised token" in one_line(notary.run(
        "key", "show", hsm.uri("here").replace("token=ci", "token=elsewhere"), expect=2))
    assert "no private key" in one_line(notary.run("key", "show", hsm.uri("absent"), expect=2))
    again = one_line(notary.run("key", "generate", "--pkcs11", hsm.uri("here"), expect=2))
    assert "already holds" in again  # a token key is never replaced, not even with --force


@pytest.mark.integration
def test_a_pin_is_never_an_argument_and_never_in_any_output_or_ledger_byte(notary: Notary, hsm: SoftHsm) -> None:
    outputs: list[Result] = []
    pub, _ = _generate(notary, hsm, "quiet")
    key = hsm.uri("quiet")
    artifact, digest = notary.notarize_file(key, b"quiet")
    outputs += [
        notary.run("notarize", str(artifact), "--job-id", "j2", "--key", key),
        notary.run("--json", "notarize", str(artifact), "--job-id", "j3", "--key", key),
        notary.run("--json", "key", "show", key),
        notary.run("revoke", digest, "--reason", "r", "--key", key),
        notary.run("--json", "history", digest),
        notary.run("verify", str(artifact), "--key", str(pub), expect=1),
        notary.run("notarize", str(artifact), "--key", key, "--pin", PIN, expect=2),
        notary.run("key", "generate", "--pkcs11", hsm.uri("other"), "--pin", PIN, expect=2),
        notary.run("key", "show", hsm.uri("quiet", query=f"pin-value={PIN}"), expect=2),
        notary.run("--json", "notarize", str(artifact), "--job-id", "j4", "--key", key,
                   env={"NOTARY_PKCS11_PIN": PIN + "x"}, expect=2),
    ]
    for result in outputs:
        assert PIN not in result.out and PIN not in result.err
    assert "No such option" in outputs[6].err and "--pin" in outputs[6].err
    assert all(PIN.encode() not in data for data in ledger_bytes(notary).values())
