"""Records and DSSE envelopes: what other tools must be able to read, and what forgers must not pass."""

from __future__ import annotations

import base64
import json

import pytest

from notary import keys, records
from notary.errors import InputError, IntegrityError, SignatureError

DIGEST = "sha256:" + "ab" * 32


def _record(key: keys.PrivateKey, **kw: object) -> records.Record:
    return records.new_record("notarization", {"digest": DIGEST, "name": "demo", "kind": "oci-manifest"}, key,
                              ci={"system": "local", "jobId": "1"}, **kw)  # type: ignore[arg-type]


def test_pae_matches_the_dsse_specification_example() -> None:
    # The example in the DSSE protocol specification.
    assert records.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert records.canonical_json({"b": 1, "a": ["é", {"d": None, "c": True}]}) == (
        '{"a":["é",{"c":true,"d":null}],"b":1}'.encode()
    )


def test_floats_are_refused_in_canonical_json() -> None:
    with pytest.raises(InputError):
        records.canonical_json({"size": 1.5})


@pytest.mark.parametrize("kind", keys.KEY_TYPES)
def test_signed_envelope_opens_with_its_signer(kind: str) -> None:
    key = keys.generate_private_key(kind)
    envelope = records.sign_record(_record(key), key)
    opened = records.open_envelope(envelope, expected_signer=keys.key_id(key))
    assert opened.record.digest == DIGEST
    assert opened.record.status == "notarized"
    data = json.loads(envelope)
    assert data["payloadType"] == records.PAYLOAD_TYPE
    assert data["signatures"][0]["keyid"] == keys.key_id(key)


def test_envelope_verifies_with_plain_cryptography_over_pae() -> None:
    """Interop: any DSSE implementation can check the signature with the public key alone."""
    key = keys.generate_private_key("ed25519")
    env = json.loads(records.sign_record(_record(key), key))
    payload = base64.b64decode(env["payload"])
    sig = base64.b64decode(env["signatures"][0]["sig"])
    key.public_key().verify(sig, b"DSSEv1 %d %s %d %s" % (
        len(env["payloadType"]), env["payloadType"].encode(), len(payload), payload))


def test_record_signed_by_another_key_is_refused_for_the_trusted_signer() -> None:
    trusted, attacker = keys.generate_private_key(), keys.generate_private_key()
    envelope = records.sign_record(_record(attacker), attacker)
    with pytest.raises(SignatureError):
        records.open_envelope(envelope, expected_signer=keys.key_id(trusted))


def test_forged_signature_claiming_the_trusted_key_is_refused() -> None:
    trusted, attacker = keys.generate_private_key(), keys.generate_private_key()
    env = json.loads(records.sign_record(_record(trusted), trusted))
    payload = base64.b64decode(env["payload"])
    forged = attacker.sign(records.pae(records.PAYLOAD_TYPE, payload))
    env["signatures"][0]["sig"] = base64.b64encode(forged).decode()
    with pytest.raises(SignatureError):
        records.open_envelope(json.dumps(env).encode(), expected_signer=keys.key_id(trusted))


def test_edited_payload_breaks_the_signature() -> None:
    key = keys.generate_private_key()
    env = json.loads(records.sign_record(_record(key), key))
    payload = json.loads(base64.b64decode(env["payload"]))
    payload["status"], payload["type"] = "revoked", "revocation"
    env["payload"] = base64.b64encode(records.canonical_json(payload)).decode()
    with pytest.raises(SignatureError):
        records.open_envelope(json.dumps(env).encode(), expected_signer=keys.key_id(key))


def test_swapped_public_key_inside_the_payload_is_refused() -> None:
    """An attacker cannot re-sign with their key while claiming the trusted key id."""
    trusted, attacker = keys.generate_private_key(), keys.generate_private_key()
    record = _record(attacker)
    record = record._replace(signer=keys.key_id(trusted))
    payload = records.canonical_json(record.to_payload())
    sig = attacker.sign(records.pae(records.PAYLOAD_TYPE, payload))
    env = {"payloadType": records.PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
           "signatures": [{"keyid": keys.key_id(trusted), "sig": base64.b64encode(sig).decode()}]}
    with pytest.raises(SignatureError):
        records.open_envelope(json.dumps(env).encode(), expected_signer=keys.key_id(trusted))


@pytest.mark.parametrize("garbage", [b"", b"not json", b'{"payloadType": 1}', b"[]",
                                     b'{"payloadType":"application/vnd.notary.record.v1+json","payload":"@@","signatures":[]}'])
def test_malformed_ledger_values_are_integrity_errors(garbage: bytes) -> None:
    with pytest.raises(IntegrityError):
        records.open_envelope(garbage)


@pytest.mark.parametrize("bad", ["sha512:" + "a" * 128, "sha256:" + "A" * 64, "sha256:abc", "md5:00", ""])
def test_unknown_or_malformed_digests_are_refused(bad: str) -> None:
    with pytest.raises(InputError):
        records.check_digest(bad)


def test_ledger_keys_are_per_signer() -> None:
    a, b = keys.generate_private_key(), keys.generate_private_key()
    assert records.subject_key(DIGEST, keys.key_id(a)) != records.subject_key(DIGEST, keys.key_id(b))
    assert records.subject_key(DIGEST, keys.key_id(a)).startswith(f"subject/{DIGEST}/sha256:")


def test_job_ids_cannot_escape_their_index_key() -> None:
    with pytest.raises(InputError):
        records.job_key("github", "1/../../subject")
