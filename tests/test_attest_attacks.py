"""Attacks on attestations, each named after the attack: what must not satisfy a `require`, what is an
integrity error (exit 3), and hostile predicates that are bad input (exit 2) with the ledger left unchanged.
Real embedded ledgers, edited as an attacker with write access to the file (or to the ledger API) would."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from notary import attest, keys, records
from notary.errors import IntegrityError, SignatureError
from notary.ledger import open_ledger
from notary.sources.base import Subject
from tests.support.cli import Notary
from tests.support.local_ledger import sql
from tests.support.runtimes import GateWorld

PROVENANCE = "https://slsa.dev/provenance/v1"
DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
CI = {"system": "github", "jobId": "7-1", "runUrl": "https://github.com/team/app/actions/runs/7",
      "commit": "0123456789abcdef0123456789abcdef01234567", "ref": "refs/heads/main", "project": "team/app"}


@pytest.fixture
def world(tmp_path: Path) -> GateWorld:
    w = GateWorld(tmp_path / "world", extra_policy=f'require = ["{PROVENANCE}"]\n')
    w.notarize(Subject(DIGEST, "registry.example/app:1", "oci-manifest"))
    w.notarize(Subject(OTHER, "registry.example/app:2", "oci-manifest"))
    return w


def _ledger(world: GateWorld) -> Any:
    return open_ledger(world.ledger_url, state_dir=world.client_state, create=True)


def _attest(world: GateWorld, digest: str, signer: keys.SigningKey) -> dict[str, bytes]:
    kvs, _ = attest.attestation_writes([("registry.example/app", digest)], signer, [(PROVENANCE, attest.provenance(CI))])
    ledger = _ledger(world)
    try:
        ledger.write(kvs)
    finally:
        ledger.close()
    return kvs


def _check(world: GateWorld, digest: str = DIGEST) -> Any:
    return world.gate_check(f"registry.example/app@{digest}")


def test_attestation_signed_by_an_untrusted_key_does_not_satisfy_require(world: GateWorld) -> None:
    _attest(world, DIGEST, world.untrusted)
    result = _check(world)
    assert result.returncode == 1 and f"no attestation of {PROVENANCE} by a trusted key" in result.stderr


def test_predicate_for_another_digest_does_not_satisfy_require(world: GateWorld) -> None:
    _attest(world, OTHER, world.trusted)
    assert _check(world, OTHER).returncode == 0
    result = _check(world, DIGEST)
    assert result.returncode == 1 and "no attestation" in result.stderr


def test_trusted_attestation_copied_under_another_digest_is_an_integrity_error(world: GateWorld) -> None:
    """Someone with write access to the ledger stores the trusted key's statement about OTHER under DIGEST's
    key: the statement names OTHER, so it is tampering (exit 3), never DIGEST's provenance."""
    kvs = _attest(world, OTHER, world.trusted)
    signer = keys.key_id(world.trusted)
    envelope = kvs[attest.attestation_key(OTHER, signer, PROVENANCE)]
    ledger = _ledger(world)
    try:
        ledger.write({attest.attestation_key(DIGEST, signer, PROVENANCE): envelope})
    finally:
        ledger.close()
    result = _check(world)
    assert result.returncode == 3 and "is about" in result.stderr


def test_forged_attestation_under_a_trusted_signers_key_is_an_integrity_error(world: GateWorld) -> None:
    """An envelope signed by another key, stored under the trusted signer's attestation key."""
    forged = attest.sign_statement(attest.statement([("registry.example/app", DIGEST)], PROVENANCE,
                                                    attest.provenance(CI)), world.untrusted)
    env = json.loads(forged)
    env["signatures"][0]["keyid"] = keys.key_id(world.trusted)
    ledger = _ledger(world)
    try:
        ledger.write({attest.attestation_key(DIGEST, keys.key_id(world.trusted), PROVENANCE):
                      records.canonical_json(env)})
    finally:
        ledger.close()
    result = _check(world)
    assert result.returncode == 3 and "signature" in result.stderr


def test_edited_attestation_envelope_in_the_ledger_file_is_an_integrity_error(world: GateWorld,
                                                                               tmp_path: Path) -> None:
    _attest(world, DIGEST, world.trusted)
    assert _check(world).returncode == 0
    key = attest.attestation_key(DIGEST, keys.key_id(world.trusted), PROVENANCE)
    ledger = _ledger(world)
    try:
        value = ledger.get(key).value
    finally:
        ledger.close()
    env = json.loads(value)
    stmt = json.loads(base64.b64decode(env["payload"]))
    stmt["predicate"]["runDetails"]["builder"]["id"] = "https://evil.example/builder"
    env["payload"] = base64.b64encode(json.dumps(stmt, sort_keys=True, separators=(",", ":")).encode()).decode()
    sql(world.ledger_path, "UPDATE entries SET value = ? WHERE key = ?", records.canonical_json(env), key)
    result = _check(world)
    assert result.returncode == 3, result.stderr
    assert "integrity" in result.stderr
    (tmp_path / "cli").mkdir()
    notary = Notary(tmp_path / "cli", ledger_url=world.ledger_url)
    history = notary.run("history", DIGEST, expect=3)
    assert "Traceback" not in history.err and "not in the signed tree" in history.err.strip().splitlines()[-1]


def test_attestation_of_a_revoked_digest_does_not_make_it_trusted(world: GateWorld) -> None:
    _attest(world, DIGEST, world.trusted)
    world.revoke(DIGEST, "CVE-2026-7777")
    result = _check(world)
    assert result.returncode == 1 and "CVE-2026-7777" in result.stderr


def test_attestation_without_a_notarization_does_not_admit(tmp_path: Path) -> None:
    world = GateWorld(tmp_path / "world", extra_policy=f'require = ["{PROVENANCE}"]\n')
    world.ensure_ledger()
    _attest(world, DIGEST, world.trusted)
    result = _check(world)
    assert result.returncode == 1 and "not notarized" in result.stderr


def test_attestation_after_the_keys_not_after_does_not_count(tmp_path: Path) -> None:
    world = GateWorld(tmp_path / "world")
    world.write_policy(extra="")  # then a rule with a retired key
    world.config.write_text(world.config.read_text().replace(
        'keys = ["trusted.key.pub"]\n',
        'keys = [{ path = "trusted.key.pub", roles = ["notarize"] }, '
        '{ path = "trusted.key.pub", roles = ["revoke"] }]\n'
        f'require = ["{PROVENANCE}"]\n'))
    world.notarize(Subject(DIGEST, "registry.example/app:1", "oci-manifest"))
    _attest(world, DIGEST, world.trusted)
    assert _check(world).returncode == 0
    world.config.write_text(world.config.read_text().replace(
        'roles = ["notarize"] }', 'roles = ["notarize"], not_after = "2020-01-01T00:00:00Z" }'))
    result = _check(world)
    assert result.returncode == 1


# ---------------------------------------------------------------- hostile predicates: exit 2, nothing written


def _ledger_bytes(notary: Notary) -> dict[str, bytes]:
    files = [p for p in notary.root.glob("ledger.db*") if p.is_file()]
    files += [p for p in notary.state_dir.rglob("*") if p.is_file()]
    return {str(p): p.read_bytes() for p in sorted(files)}


HOSTILE: dict[str, bytes] = {
    "not-json": b"this is not JSON\n",
    "an-array": b'[{"a": 1}]',
    "a-string": b'"predicate"',
    "empty-object": b"{}",
    "duplicate-keys": b'{"builder": "good", "builder": "evil"}',
    "deeply-nested": b'{"a":' * 200 + b"1" + b"}" * 200,
    "not-utf8": b'{"a": "\xff\xfe"}',
    "lone-surrogate": b'{"a": "\\ud800"}',
    "nan": b'{"a": NaN}',
    "infinite-number": b'{"a": 1e400}',
    "huge-integer": b'{"a": ' + b"9" * 400 + b"}",
}


@pytest.fixture
def attester(tmp_path: Path) -> tuple[Notary, Path, str]:
    notary = Notary(tmp_path)
    key = notary.key()
    _, digest = notary.notarize_file(key, b"built\n")
    return notary, key, digest


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_predicate_is_exit_2_and_the_ledger_is_unchanged(attester: tuple[Notary, Path, str],
                                                                 name: str) -> None:
    notary, key, digest = attester
    path = notary.root / f"{name}.json"
    path.write_bytes(HOSTILE[name])
    before = _ledger_bytes(notary)
    result = notary.run("attest", digest, "--predicate-type", PROVENANCE, "--predicate", str(path),
                        "--key", str(key), expect=2)
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert "bad-predicate" in result.err
    assert _ledger_bytes(notary) == before


def test_huge_predicate_and_huge_sbom_are_exit_2_and_nothing_is_written(attester: tuple[Notary, Path, str]) -> None:
    notary, key, digest = attester
    big = notary.root / "big.json"
    with big.open("wb") as fh:  # sparse: the size is refused before a byte is read
        fh.truncate(attest.MAX_PREDICATE + 1)
    sbom = notary.root / "sbom.json"
    with sbom.open("wb") as fh:
        fh.truncate(attest.MAX_SBOM + 1)
    before = _ledger_bytes(notary)
    one = notary.run("attest", digest, "--predicate-type", PROVENANCE, "--predicate", str(big), "--key", str(key),
                     expect=2)
    assert "over the 1048576 byte limit" in one.err
    two = notary.run("notarize", digest, "--job-id", "j2", "--key", str(key), "--sbom", str(sbom), expect=2)
    assert "over the 16777216 byte limit" in two.err
    three = notary.run("attest", digest, "--predicate-type", attest.SPDX, "--predicate", str(sbom), "--key",
                       str(key), expect=2)
    assert "over the 16777216 byte limit" in three.err
    assert _ledger_bytes(notary) == before


def test_an_sbom_that_is_neither_spdx_nor_cyclonedx_is_exit_2(attester: tuple[Notary, Path, str]) -> None:
    notary, key, digest = attester
    artifact = notary.root / "app2.bin"
    artifact.write_bytes(b"another build\n")
    sbom = notary.root / "sbom.json"
    sbom.write_text(json.dumps({"bomFormat": "SomethingElse"}))
    before = _ledger_bytes(notary)
    result = notary.run("notarize", str(artifact), "--job-id", "j2", "--key", str(key), "--sbom", str(sbom), expect=2)
    assert "neither SPDX" in result.err
    spdx_as_cyclonedx = notary.root / "spdx.json"
    spdx_as_cyclonedx.write_text(json.dumps({"spdxVersion": "SPDX-2.3", "name": "x"}))
    mismatch = notary.run("attest", digest, "--predicate-type", attest.CYCLONEDX, "--predicate",
                          str(spdx_as_cyclonedx), "--key", str(key), expect=2)
    assert "not https://cyclonedx.org/bom" in mismatch.err
    assert _ledger_bytes(notary) == before


@pytest.mark.parametrize("ptype", ["http://slsa.dev/provenance/v1", "slsa", "https://", "https://x y/z"])
def test_a_predicate_type_that_is_not_an_https_uri_is_exit_2(attester: tuple[Notary, Path, str], ptype: str) -> None:
    notary, key, digest = attester
    path = notary.root / "p.json"
    path.write_text('{"a": 1}')
    before = _ledger_bytes(notary)
    result = notary.run("attest", digest, "--predicate-type", ptype, "--predicate", str(path), "--key", str(key),
                        expect=2)
    assert "is not an https URI" in result.err
    assert _ledger_bytes(notary) == before


# ---------------------------------------------------------------- hostile statements signed by the trusted key


def _signed_payload(signer: keys.SigningKey, payload: bytes, payload_type: str = attest.PAYLOAD_TYPE) -> bytes:
    sig = keys.sign(signer, records.pae(payload_type, payload))
    return records.canonical_json({"payloadType": payload_type, "payload": base64.b64encode(payload).decode(),
                                   "signatures": [{"keyid": keys.key_id(signer),
                                                   "sig": base64.b64encode(sig).decode()}]})


def _stmt(predicate: str, digest: str = DIGEST) -> bytes:
    return (f'{{"_type":"https://in-toto.io/Statement/v1","predicate":{predicate},"predicateType":"{PROVENANCE}",'
            f'"subject":[{{"digest":{{"sha256":"{digest[7:]}"}},"name":"app"}}]}}').encode()


@pytest.mark.parametrize(("name", "payload"), [
    ("duplicate-keys", _stmt('{"a":1,"a":2}')),
    ("nan", _stmt('{"a":NaN}')),
    ("lone-surrogate", _stmt('{"a":"\\ud800"}')),
    ("deeply-nested", _stmt('{"a":' + "[" * 100_000 + "]" * 100_000 + "}")),
    ("nested-past-the-write-bound", _stmt('{"a":' + "[" * 100 + "]" * 100 + "}")),
    ("huge-integer", _stmt('{"a":' + "9" * 5000 + "}")),
    ("not-canonical", _stmt('{"b":1, "a":2}')),
    ("not-json", b"not json at all"),
    ("extra-field", _stmt('{"a":1}')[:-1] + b',"zzz":1}'),
    ("another-digest", _stmt('{"a":1}', OTHER)),
])
def test_hostile_statement_signed_by_the_trusted_key_is_an_integrity_error(name: str, payload: bytes) -> None:
    """A compromised (or buggy) signer's bytes are still only data: exit 3, never a crash or a pass."""
    signer = keys.generate_private_key()
    envelope = _signed_payload(signer, payload)
    with pytest.raises(IntegrityError) as info:
        attest.open_attestation(envelope, DIGEST, signer.public_key(), PROVENANCE)
    assert info.value.exit_code == 3 and "\n" not in info.value.one_line()


def test_a_predicate_at_the_depth_bound_is_attested_verified_and_audited(attester: tuple[Notary, Path, str]) -> None:
    """64 deep is what `attest` takes; the statement around it is 65: the gate, verify and audit diff agree."""
    notary, key, digest = attester
    path = notary.root / "deep.json"
    path.write_bytes(b'{"a":' * 64 + b"1" + b"}" * 64)
    notary.run("attest", digest, "--predicate-type", PROVENANCE, "--predicate", str(path), "--key", str(key))
    notary.run("verify", digest, "--key", f"{key}.pub", "--require", PROVENANCE)
    found = notary.run("--json", "audit", "diff", "--from", "0", "--key", f"{key}.pub").json
    assert found["findings"] == [] and [a["predicate_type"] for a in found["attestations"]] == [PROVENANCE]


def test_an_opened_attestation_is_kept_only_for_the_same_bytes() -> None:
    signer = keys.generate_private_key()
    good = _signed_payload(signer, _stmt('{"a":1}'))
    assert attest.open_attestation(good, DIGEST, signer.public_key(), PROVENANCE).predicate == {"a": 1}
    edited = good.replace(b'"sig":"', b'"sig":"A', 1)
    with pytest.raises(IntegrityError):
        attest.open_attestation(edited, DIGEST, signer.public_key(), PROVENANCE)
    with pytest.raises(IntegrityError):  # the same bytes, asked about another digest or type, are not reused
        attest.open_attestation(good, OTHER, signer.public_key(), PROVENANCE)
    with pytest.raises(SignatureError):
        attest.open_attestation(good, DIGEST, keys.generate_private_key().public_key(), PROVENANCE)


# ---------------------------------------------------------------- the cache of opened envelopes


def test_envelope_cache_key_does_not_collide_across_digest_key_or_type() -> None:
    """One envelope opened for (DIGEST, key, type) is never handed out for another digest, key or type."""
    signer = keys.generate_private_key()
    good = _signed_payload(signer, _stmt('{"a":1}'))
    attest.open_attestation(good, DIGEST, signer.public_key(), PROVENANCE)
    for digest, public, ptype in [(OTHER, signer.public_key(), PROVENANCE),
                                  (DIGEST, keys.generate_private_key().public_key(), PROVENANCE),
                                  (DIGEST, signer.public_key(), attest.SPDX),
                                  (DIGEST, signer.public_key(), PROVENANCE + "/")]:
        with pytest.raises(IntegrityError):
            attest.open_attestation(good, digest, public, ptype)


def test_mutating_an_opened_attestation_does_not_change_what_the_next_open_returns() -> None:
    """A caller that edits what it was handed (a report adding a field) must not rewrite the cached statement
    every later `require` decides on."""
    signer = keys.generate_private_key()
    good = _signed_payload(signer, _stmt('{"runDetails":{"builder":{"id":"https://good"}}}'))
    first = attest.open_attestation(good, DIGEST, signer.public_key(), PROVENANCE)
    first.predicate["runDetails"]["builder"]["id"] = "https://evil"
    first.envelope["payloadType"] = "evil"
    again = attest.open_attestation(good, DIGEST, signer.public_key(), PROVENANCE)
    assert again.predicate == {"runDetails": {"builder": {"id": "https://good"}}}
    assert again.envelope["payloadType"] == attest.PAYLOAD_TYPE


def test_an_envelope_over_the_size_bound_is_an_integrity_error_before_it_is_parsed() -> None:
    signer = keys.generate_private_key()
    huge = b"[" * (attest.MAX_ENVELOPE + 1)
    with pytest.raises(IntegrityError) as info:
        attest.open_attestation(huge, DIGEST, signer.public_key(), PROVENANCE)
    assert "larger than" in info.value.one_line()


# ---------------------------------------------------------------- hostile statements in the ledger, through the gate


def _raw_stmt(**fields: Any) -> bytes:
    stmt: dict[str, Any] = {"_type": attest.STATEMENT_TYPE, "predicateType": PROVENANCE, "predicate": {"a": 1},
                            "subject": [{"name": "app", "digest": {"sha256": DIGEST[7:]}}]}
    stmt.update(fields)
    return attest.statement_bytes({k: v for k, v in stmt.items() if v is not None})


SIGNED_HOSTILE: dict[str, Any] = {
    "wrong-payload-type": lambda s: _signed_payload(s, _raw_stmt(), "application/json"),
    "no-subject": lambda s: _signed_payload(s, _raw_stmt(subject=None)),
    "empty-subject": lambda s: _signed_payload(s, _raw_stmt(subject=[])),
    "subject-an-object": lambda s: _signed_payload(s, _raw_stmt(subject={"name": "app", "digest": {}})),
    "subject-of-strings": lambda s: _signed_payload(s, _raw_stmt(subject=["app"])),
    "100k-subjects": lambda s: _signed_payload(s, _raw_stmt(subject=[
        {"name": "app", "digest": {"sha256": f"{i:064x}"}} for i in range(100_000)] + [
        {"name": "app", "digest": {"sha256": DIGEST[7:]}}])),
    "predicate-a-list": lambda s: _signed_payload(s, _raw_stmt(predicate=[1])),
    "predicate-type-mismatch": lambda s: _signed_payload(s, _raw_stmt(predicateType=attest.SPDX)),
    "not-utf8": lambda s: _signed_payload(s, _raw_stmt().replace(b'"a":1', b'"a":"\xff\xfe"')),
    "duplicate-predicate-type": lambda s: _signed_payload(s, _raw_stmt().replace(
        b'"predicateType"', b'"predicateType":"https://spdx.dev/Document","predicateType"')),
    "deeply-nested": lambda s: _signed_payload(s, _raw_stmt().replace(b'"a":1', b'"a":' + b"[" * 50_000 + b"]" * 50_000)),
    "envelope-not-json": lambda s: b"not json",
    "envelope-an-array": lambda s: b"[]",
    "signature-not-base64": lambda s: _signed_payload(s, _raw_stmt()).replace(b'"sig":"', b'"sig":"!', 1),
    "no-signatures": lambda s: records.canonical_json({"payloadType": attest.PAYLOAD_TYPE, "signatures": [],
                                                      "payload": base64.b64encode(_raw_stmt()).decode()}),
}


@pytest.mark.parametrize("name", sorted(SIGNED_HOSTILE))
def test_hostile_envelope_under_the_trusted_key_fails_the_gate_and_verify_with_exit_3(
        world: GateWorld, tmp_path: Path, name: str) -> None:
    value = SIGNED_HOSTILE[name](world.trusted)
    ledger = _ledger(world)
    try:
        ledger.write({attest.attestation_key(DIGEST, keys.key_id(world.trusted), PROVENANCE): value})
    finally:
        ledger.close()
    result = _check(world)
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    (tmp_path / "cli").mkdir()
    notary = Notary(tmp_path / "cli", ledger_url=world.ledger_url, state_dir=world.client_state)
    verify = notary.run("verify", DIGEST, "--key", str(world.root / "trusted.key.pub"), "--require", PROVENANCE,
                        expect=3)
    assert "Traceback" not in verify.err and len(verify.err.strip().splitlines()) == 1, verify.err
