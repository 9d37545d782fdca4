"""More attacks on attestations, each named after the attack, on real embedded ledgers (no mocks): look-alike
predicate types and keys that must not satisfy a `require`, look-alike source repositories, the cache of
opened envelopes, hostile statements signed by the trusted key, and rows deleted or rewritten in the file."""

from __future__ import annotations

import base64
import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from notary import attest, keys, records
from notary.errors import IntegrityError
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
BUILDER_RULE = (f'[[policy.trust.require]]\ntype = "{PROVENANCE}"\n'
                'builder_id = "https://github.com/actions/runner"\n')


def _world(tmp_path: Path, extra: str = f'require = ["{PROVENANCE}"]\n') -> GateWorld:
    world = GateWorld(tmp_path / "world", extra_policy=extra)
    world.notarize(Subject(DIGEST, "registry.example/app:1", "oci-manifest"))
    world.notarize(Subject(OTHER, "registry.example/app:2", "oci-manifest"))
    return world


@pytest.fixture
def world(tmp_path: Path) -> GateWorld:
    return _world(tmp_path)


def _write(world: GateWorld, kvs: dict[str, bytes]) -> None:
    ledger = open_ledger(world.ledger_url, state_dir=world.client_state, create=True)
    try:
        ledger.write(kvs)
    finally:
        ledger.close()


def _attest(world: GateWorld, digest: str = DIGEST, signer: keys.SigningKey | None = None,
            ptype: str = PROVENANCE, predicate: dict[str, Any] | None = None) -> dict[str, bytes]:
    kvs, _ = attest.attestation_writes([("registry.example/app", digest)], signer or world.trusted,
                                       [(ptype, predicate if predicate is not None else attest.provenance(CI))])
    _write(world, kvs)
    return kvs


def _check(world: GateWorld, digest: str = DIGEST) -> Any:
    return world.gate_check(f"registry.example/app@{digest}")


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    return stderr.strip()


def _integrity_error(world: GateWorld) -> None:
    """The gate refuses with exit 3 and one line: what every edit of the ledger file below must come to."""
    result = _check(world)
    assert result.returncode == 3, result.stderr
    _one_line(result.stderr)


def _signed(signer: keys.SigningKey, payload: bytes, payload_type: str = attest.PAYLOAD_TYPE) -> bytes:
    sig = keys.sign(signer, records.pae(payload_type, payload))
    return records.canonical_json({"payloadType": payload_type, "payload": base64.b64encode(payload).decode(),
                                   "signatures": [{"keyid": keys.key_id(signer),
                                                   "sig": base64.b64encode(sig).decode()}]})


def _stmt(**fields: Any) -> dict[str, Any]:
    stmt = attest.statement([("app", DIGEST)], PROVENANCE, attest.provenance(CI))
    stmt.update(fields)
    return {k: v for k, v in stmt.items() if v is not None}


# ---------------------------------------------------------------- 1. another type, key or time


@pytest.mark.parametrize("ptype", ["https://SLSA.dev/provenance/v1", "https://slsa.dev/provenance/v1/",
                                   "https://slsa.dev/Provenance/v1", "https://slsa.dev/provenance/v1.0",
                                   "https://slsa.dev/provenance/v%31", "https://slsa.dev:443/provenance/v1"])
def test_attestation_of_a_look_alike_predicate_type_does_not_satisfy_require(world: GateWorld, ptype: str) -> None:
    _attest(world, ptype=ptype)
    result = _check(world)
    assert result.returncode == 1 and f"no attestation of {PROVENANCE} by a trusted key" in _one_line(result.stderr)


@pytest.mark.parametrize("ptype", ["https://slsa.dev/provenan\u0441e/v1", "https://slsa.dev/provenance/v1?x=1",
                                   "https://slsa.dev/provenance/v1#x", "https://slsa.dev/provenance/v1\n",
                                   "https://slsa\u2024dev/provenance/v1", "https://user@slsa.dev/provenance/v1"])
def test_predicate_type_with_unicode_look_alike_query_or_userinfo_is_refused_at_write(world: GateWorld,
                                                                                       ptype: str) -> None:
    with pytest.raises(attest.PredicateTypeError):
        _attest(world, ptype=ptype)
    (world.root / "p.json").write_text('{"a": 1}')
    notary = Notary(world.root, ledger_url=world.ledger_url, state_dir=world.client_state)
    result = notary.run("attest", DIGEST, "--predicate-type", ptype, "--predicate", str(world.root / "p.json"),
                        "--key", str(world.root / "trusted.key"), expect=2)
    assert "is not an https URI" in _one_line(result.err)


@pytest.mark.parametrize("ptype", ["https://SLSA.dev/provenance/v1", "https://slsa.dev/provenance/v1/",
                                   "https://slsa.dev/provenance/v1?x=1", "https://slsa.dev/provenan\u0441e/v1"])
def test_a_require_naming_a_look_alike_type_is_a_usage_error(tmp_path: Path, ptype: str) -> None:
    world = _world(tmp_path, f'require = ["{ptype}"]\n')
    result = _check(world)
    assert result.returncode == 2 and "predicate type" in _one_line(result.stderr)
    notary = Notary(world.root, ledger_url=world.ledger_url, state_dir=world.client_state)
    verify = notary.run("verify", DIGEST, "--key", str(world.root / "trusted.key.pub"), "--require", ptype, expect=2)
    _one_line(verify.err)


def test_statement_of_a_look_alike_type_filed_under_the_required_types_key_is_an_integrity_error(
        world: GateWorld) -> None:
    envelope = attest.sign_statement(_stmt(predicateType="https://slsa.dev/provenance/v1/"), world.trusted)
    _write(world, {attest.attestation_key(DIGEST, keys.key_id(world.trusted), PROVENANCE): envelope})
    result = _check(world)
    assert result.returncode == 3 and "predicate type" in _one_line(result.stderr)


def test_attestation_by_a_key_without_the_notarize_role_does_not_satisfy_require(world: GateWorld) -> None:
    world.config.write_text(world.config.read_text().replace(
        'keys = ["trusted.key.pub"]\n',
        'keys = ["trusted.key.pub", { path = "untrusted.key.pub", roles = ["revoke"] }]\n'))
    _attest(world, signer=world.untrusted)
    result = _check(world)
    assert result.returncode == 1 and "no attestation" in _one_line(result.stderr)
    _attest(world)
    assert _check(world).returncode == 0


def test_a_passing_attestation_written_after_the_keys_not_after_does_not_count(tmp_path: Path) -> None:
    """The key's last word before its end fails the builder condition; a passing one it wrote afterwards
    (a retired key in an attacker's hands) is not its word at all."""
    world = _world(tmp_path, BUILDER_RULE)
    _attest(world, predicate=attest.provenance({**CI, "system": "jenkins"}))
    end = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    _attest(world)
    assert _check(world).returncode == 0
    world.config.write_text(world.config.read_text().replace(
        'keys = ["trusted.key.pub"]\n', f'keys = [{{ path = "trusted.key.pub", not_after = "{end}" }}]\n'))
    result = _check(world)
    assert result.returncode == 1 and "builder id https://www.jenkins.io" in _one_line(result.stderr)


# ---------------------------------------------------------------- 2. look-alike source repositories


WANTED = "https://github.com/team/app"
LOOK_ALIKES = [
    "https://github.com/team/app.evil", "https://github.com/team/app-evil", "https://github.com/team/app/evil",
    "https://github.com/team/app/../evil", "https://github.com/evil/x/../../team/app",
    "https://github.com/team/./app", "https://github.com//team/app", "https://github.com/team/%61pp",
    "https://github.com/team/app%40evil.com", "https://github.com%2Fteam%2Fapp@evil.com/",
    "https://github.com@evil.com/team/app",  # userinfo: the host is evil.com
    "https://evil.com@github.com/team/app", "https://github.com\\team\\app@evil.com",
    "https://github.com/team/app?ref=x", "https://github.com/team/app#x", "https://github.com.evil.com/team/app",
    "https://g\u0456thub.com/team/app", "https://github.com/team/app\u2024git", "http://github.com/team/app",
    "git://github.com/team/app", "https://github.com/team/app.git.evil", "https://github.com/team/app/.git",
    " https://github.com/team/app", "https://github.com/team/app\n", "ssh://git@github.com/team/app",
    "github.com/team/app", "git+git+https://github.com/team/app", "https://github.com:444/team/app",
]
EQUIVALENT = [
    "https://github.com/team/app", "git+https://github.com/team/app@refs/heads/main",
    "https://github.com/team/app.git", "https://github.com/team/app/", "git+https://github.com/team/app.git@v1",
    "HTTPS://GitHub.COM/team/app",
    "git+https://github.com/team/app@evil",  # a revision named evil of team/app: the condition is the repository
    "https://github.com/team/app@evil.com",  # the path's @ starts the revision; the host is github.com
]


def _requirement(source: str) -> attest.Requirement:
    [req] = attest.parse_requirements([{"type": PROVENANCE, "source": source}], "test policy")
    return req


def _with_source(uri: str) -> dict[str, Any]:
    return {"buildDefinition": {"resolvedDependencies": [{"uri": uri, "digest": {"gitCommit": CI["commit"]}}]}}


@pytest.mark.parametrize("uri", LOOK_ALIKES)
def test_look_alike_source_does_not_satisfy_a_source_condition(uri: str) -> None:
    problem = _requirement(WANTED).problem(_with_source(uri))
    assert problem is not None and "\n" not in problem


@pytest.mark.parametrize("uri", EQUIVALENT)
def test_another_spelling_of_the_same_repository_satisfies_a_source_condition(uri: str) -> None:
    assert _requirement(WANTED).problem(_with_source(uri)) is None


def test_a_host_wide_source_condition_is_not_satisfied_through_userinfo(tmp_path: Path) -> None:
    """`source = "https://git.corp.example"`: the userinfo of https://git.corp.example@evil.com/x is not a
    host, and the repository it names lives on evil.com."""
    world = _world(tmp_path, f'[[policy.trust.require]]\ntype = "{PROVENANCE}"\nsource = "https://git.corp.example"\n')
    _attest(world, predicate=_with_source("git+https://git.corp.example@evil.com/team/app@refs/heads/main"))
    result = _check(world)
    assert result.returncode == 1 and "not https://git.corp.example" in _one_line(result.stderr)
    _attest(world, predicate=_with_source("git+https://git.corp.example"))
    assert _check(world).returncode == 0


@pytest.mark.parametrize("project", ["team/app@evil", "team/../app", "team/./app", "team/app evil", "team/app?x",
                                     "team/%61pp"])
def test_a_ci_project_that_would_read_as_another_repository_gives_provenance_no_source(project: str) -> None:
    predicate = attest.provenance({**CI, "project": project})
    assert attest.source_uri({**CI, "project": project}) is None
    assert _requirement(WANTED).problem(predicate) is not None


@pytest.mark.parametrize("source", ["https://x@github.com/team/app", "https://github.com/team/app?x=1",
                                    "https://github.com/team/../app", "github.com/team/app",
                                    "https://g\u0456thub.com/team/app", "https://github.com/team/%61pp"])
def test_a_policy_source_that_is_not_a_repository_url_is_a_usage_error(tmp_path: Path, source: str) -> None:
    world = _world(tmp_path, f'[[policy.trust.require]]\ntype = "{PROVENANCE}"\nsource = "{source}"\n')
    result = _check(world)
    assert result.returncode == 2 and "source" in _one_line(result.stderr)


def test_a_look_alike_source_is_refused_by_the_gate_on_one_line(tmp_path: Path) -> None:
    world = _world(tmp_path, f'[[policy.trust.require]]\ntype = "{PROVENANCE}"\nsource = "{WANTED}"\n')
    _attest(world, predicate=_with_source("https://github.com/team/app/../evil\n\x1b[2Jallowed"))
    result = _check(world)
    assert result.returncode == 1 and f"not {WANTED}" in _one_line(result.stderr)


def test_a_hostile_builder_id_is_refused_on_one_line(tmp_path: Path) -> None:
    world = _world(tmp_path, BUILDER_RULE)
    _attest(world, predicate={"runDetails": {"builder": {"id": "https://github.com/actions/runner\nallowed"}}})
    result = _check(world)
    assert result.returncode == 1 and "builder id" in _one_line(result.stderr)
    _attest(world, predicate={"runDetails": {"builder": {"id": ["https://github.com/actions/runner"]}}})
    assert _check(world).returncode == 1


# ---------------------------------------------------------------- 4. the index against the statements


def test_an_index_naming_a_type_whose_key_holds_another_types_statement_is_an_integrity_error(
        world: GateWorld, tmp_path: Path) -> None:
    """The trusted key's genuine provenance, filed under the SPDX key its index (rewritten) names."""
    kvs = _attest(world)
    signer = keys.key_id(world.trusted)
    index = json.loads(kvs[attest.attestation_index_key(DIGEST, signer)])
    _write(world, {attest.attestation_key(DIGEST, signer, attest.SPDX): kvs[attest.attestation_key(DIGEST, signer,
                                                                                                   PROVENANCE)],
                   attest.attestation_index_key(DIGEST, signer): records.canonical_json(
                       {**index, "predicate_types": [attest.SPDX]})})
    world.config.write_text(world.config.read_text().replace(PROVENANCE, attest.SPDX))
    result = _check(world)
    assert result.returncode == 3 and "predicate type" in _one_line(result.stderr)
    notary = Notary(world.root, ledger_url=world.ledger_url, state_dir=world.client_state)
    history = notary.run("history", DIGEST, expect=3)
    _one_line(history.err)


@pytest.mark.parametrize("value", [b"not json", b"[]", b'{"predicate_types": "https://slsa.dev/provenance/v1"}',
                                   b'{"predicate_types": [1, null, "http://x"]}',
                                   b'{"predicate_types": ["https://slsa.dev/provenance/v1"], "public_key": 7}',
                                   b'{"predicate_types": ["https://slsa.dev/provenance/v1"], "public_key": "x"}',
                                   b'{"a":1,"a":2}', b'{"predicate_types": [' + b'"https://a.example",' * 5000
                                   + b'"https://b.example"]}'])
def test_a_malformed_index_entry_neither_crashes_nor_changes_the_decision(world: GateWorld, value: bytes) -> None:
    _attest(world)
    _write(world, {attest.attestation_index_key(DIGEST, keys.key_id(world.trusted)): value})
    assert _check(world).returncode == 0
    notary = Notary(world.root, ledger_url=world.ledger_url, state_dir=world.client_state)
    history = notary.run("--json", "history", DIGEST, expect=None)
    assert history.code in (0, 3) and "Traceback" not in history.err, history.err
    if history.code == 0:
        assert [a["predicate_type"] for a in history.json["subjects"][0]["attestations"]] == [PROVENANCE]


# ---------------------------------------------------------------- 5. rows deleted or rewritten in the file


def _rows(world: GateWorld, key: str) -> list[tuple[int, int, bytes]]:
    with sqlite3.connect(world.ledger_path) as conn:
        return list(conn.execute("SELECT leaf, revision, value FROM entries WHERE key = ? ORDER BY revision", (key,)))


def _provenance_twice(tmp_path: Path) -> tuple[GateWorld, str]:
    """A passing attestation, then the key's newer word that fails the builder condition: refused."""
    world = _world(tmp_path, BUILDER_RULE)
    _attest(world)
    _attest(world, predicate=attest.provenance({**CI, "system": "jenkins"}))
    assert _check(world).returncode == 1
    return world, attest.attestation_key(DIGEST, keys.key_id(world.trusted), PROVENANCE)


def test_deleting_the_newest_attestation_row_to_roll_back_is_an_integrity_error(tmp_path: Path) -> None:
    world, key = _provenance_twice(tmp_path)
    newest = _rows(world, key)[-1][0]
    sql(world.ledger_path, "DELETE FROM entries WHERE leaf = ?", newest)
    _integrity_error(world)


def test_rewriting_the_newest_row_with_the_older_envelope_is_an_integrity_error(tmp_path: Path) -> None:
    world, key = _provenance_twice(tmp_path)
    (_, _, older), (leaf, _, _) = _rows(world, key)
    sql(world.ledger_path, "UPDATE entries SET value = ? WHERE leaf = ?", older, leaf)
    _integrity_error(world)


def test_renumbering_the_newest_row_below_the_older_one_is_an_integrity_error(tmp_path: Path) -> None:
    world, key = _provenance_twice(tmp_path)
    (old_leaf, _, _), (new_leaf, _, _) = _rows(world, key)
    sql(world.ledger_path, "UPDATE entries SET revision = -revision WHERE key = ?", key)
    sql(world.ledger_path, "UPDATE entries SET revision = 2 WHERE leaf = ?", old_leaf)
    sql(world.ledger_path, "UPDATE entries SET revision = 1 WHERE leaf = ?", new_leaf)
    result = _check(world)
    assert result.returncode == 3, result.stderr


def test_backdating_an_attestation_written_after_not_after_is_an_integrity_error(tmp_path: Path) -> None:
    """The retired key's attestation, its transaction's time moved back before the key's end in the file."""
    world = _world(tmp_path)
    end = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    world.config.write_text(world.config.read_text().replace(
        'keys = ["trusted.key.pub"]\n', f'keys = [{{ path = "trusted.key.pub", not_after = "{end}" }}]\n'))
    _attest(world)
    assert _check(world).returncode == 1
    sql(world.ledger_path, "UPDATE txs SET time_us = time_us - 3600000000 WHERE tx = (SELECT MAX(tx) FROM txs)")
    _integrity_error(world)


def test_deleting_the_only_attestation_row_is_not_a_pass(world: GateWorld) -> None:
    _attest(world)
    assert _check(world).returncode == 0
    key = attest.attestation_key(DIGEST, keys.key_id(world.trusted), PROVENANCE)
    sql(world.ledger_path, "DELETE FROM entries WHERE key = ?", key)
    result = _check(world)
    assert result.returncode == 3 and "deleted" in _one_line(result.stderr)


def test_moving_another_digests_attestation_row_under_this_digest_is_not_a_pass(world: GateWorld) -> None:
    _attest(world, OTHER)
    key = attest.attestation_key(OTHER, keys.key_id(world.trusted), PROVENANCE)
    sql(world.ledger_path, "UPDATE entries SET key = ? WHERE key = ?",
        attest.attestation_key(DIGEST, keys.key_id(world.trusted), PROVENANCE), key)
    result = _check(world)  # a renamed row (exit 3), or one the key index proves absent and so not read (exit 1)
    assert result.returncode in (1, 3), result.stderr
    _one_line(result.stderr)
    assert _check(world, OTHER).returncode == 3


def test_attestation_by_a_key_only_a_later_rule_trusts_does_not_satisfy_the_first_rules_require(
        world: GateWorld) -> None:
    world.config.write_text(world.config.read_text().replace(
        'images = ["*"]\nkeys = ["trusted.key.pub"]\n',
        f'images = ["registry.example/app"]\nkeys = ["trusted.key.pub"]\nrequire = ["{PROVENANCE}"]\n'
        '[[policy.trust]]\nimages = ["*"]\nkeys = ["trusted.key.pub", "untrusted.key.pub"]\n'))
    _attest(world, signer=world.untrusted)
    result = _check(world)
    assert result.returncode == 1 and "(1 trusted)" in _one_line(result.stderr)


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    return [at, *(p for k, v in children for p in _paths(v, (*at, k)))]


def test_every_field_of_a_signed_statement_replaced_by_a_wrong_type_opens_or_is_an_integrity_error() -> None:
    """Each node of a real provenance statement replaced by null, a number, a string, a list or an object, and
    signed: opening it and checking a require's conditions never raises anything but IntegrityError."""
    signer = keys.generate_private_key()
    base = _stmt()
    req = attest.parse_requirements([{"type": PROVENANCE, "source": WANTED,
                                      "builder_id": "https://github.com/actions/runner"}], "test policy")[0]
    for path in _paths(base):
        for replacement in (None, 1, "x", [], {}, [None], {"a": None}, True, [{"digest": None}]):
            stmt = json.loads(json.dumps(base))
            node = stmt
            for part in path[:-1]:
                node = node[part]
            if path:
                node[path[-1]] = replacement
            else:
                stmt = replacement
            envelope = _signed(signer, attest.statement_bytes(stmt))
            try:
                opened = attest.open_attestation(envelope, DIGEST, signer.public_key(), PROVENANCE)
            except IntegrityError:
                continue
            req.problem(opened.predicate)
