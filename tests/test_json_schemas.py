"""The `--json` contract, checked against itself: one JSON Schema file per output schema id (docs/schemas/), every
id docs/json.md lists has one and every file is listed, every output key is snake_case (the camelCase names of
0.1 stay beside them, with equal values, until 0.3), and the validation every CLI test runs can fail.

tests/support/cli.py validates every document a test parses with `Result.json`; this file covers what no other
test prints and the rules of the schemas themselves."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from tests.support.cli import SCHEMA_DIR, Notary, check_schema, schema_errors, schema_file

DOC = Path(__file__).resolve().parents[1] / "docs" / "json.md"
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
# the camelCase names of 0.1, kept beside their snake_case names until 0.3 (docs/json.md, "Deprecated names")
ALIASES = {"issuedAt": "issued_at", "trustedSigner": "trusted_signer", "bytes_checked": "content_verified"}


def _schemas() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(SCHEMA_DIR.glob("*.json"))}


def _documented_ids() -> set[str]:
    return set(re.findall(r"`(notary\.[a-z0-9-]+/v[0-9]+)`", DOC.read_text()))


@pytest.mark.parametrize("name", sorted(_schemas()))
def test_every_schema_file_is_a_valid_2020_12_schema_named_for_its_id(name: str) -> None:
    schema = _schemas()[name]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema_file(schema["title"]).name == name
    assert schema["properties"]["schema"] == {"const": schema["title"]}
    assert "schema" in schema["required"]


def test_every_documented_schema_id_has_a_file_and_every_file_is_documented() -> None:
    files = {s["title"] for s in _schemas().values()}
    documented = _documented_ids()
    assert len(documented) > 20
    assert documented - files == set(), "documented in docs/json.md without a file in docs/schemas/"
    assert files - documented == set(), "a file in docs/schemas/ that docs/json.md does not list"


def _property_names(node: Any, where: str = "") -> list[tuple[str, str, bool]]:
    """(where, name, deprecated) for every property every schema declares."""
    out: list[tuple[str, str, bool]] = []
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            deprecated = isinstance(sub, dict) and sub.get("deprecated") is True
            out.append((where, name, deprecated))
        for key, sub in node.items():
            out += _property_names(sub, f"{where}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            out += _property_names(sub, f"{where}/{i}")
    return out


def test_every_output_key_is_snake_case_or_a_deprecated_alias() -> None:
    bad = []
    for name, schema in _schemas().items():
        for where, key, deprecated in _property_names(schema):
            if deprecated:
                assert key in ALIASES, f"{name}{where}: {key} is deprecated but not a documented alias"
            elif not SNAKE.match(key):
                bad.append(f"{name}{where}: {key}")
    assert not bad, bad


def test_every_alias_is_documented_with_its_removal_release() -> None:
    text = DOC.read_text()
    for old, new in ALIASES.items():
        assert re.search(rf"`{old}`[^\n|]*\|[^\n|]*`{new}`", text), f"{old} -> {new} missing from docs/json.md"
    assert "removed in 0.3" in text


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Notary, Path, str, dict[str, Any]]:
    notary = Notary(tmp_path_factory.mktemp("schemas"))
    key = notary.key()
    artifact, digest = notary.notarize_file(key, b"release 1\n", job_id="j1")
    notary.run("revoke", digest, "--reason", "CVE-2026-1", "--key", str(key))
    verified = notary.run("--json", "verify", str(artifact), "--key", f"{key}.pub", expect=1).json
    return notary, key, digest, verified


def test_a_camelcase_only_output_fails_validation(world: tuple[Notary, Path, str, dict[str, Any]]) -> None:
    _, _, _, verified = world
    assert schema_errors(verified) == []
    signer = verified["decisions"][0]["signers"][0]
    assert signer["issued_at"] == signer["issuedAt"]
    camel = copy.deepcopy(verified)
    del camel["decisions"][0]["signers"][0]["issued_at"]  # what 0.1 printed: the camelCase name only
    assert any("issued_at" in e for e in schema_errors(camel))
    unknown = copy.deepcopy(verified)
    unknown["decisions"][0]["signers"][0]["issuedAtTime"] = signer["issuedAt"]  # drift: a new camelCase key
    assert any("issuedAtTime" in e for e in schema_errors(unknown))
    retyped = copy.deepcopy(verified)
    retyped["bytes_hashed"] = True
    assert schema_errors(retyped)
    with pytest.raises(pytest.fail.Exception, match="has no file"):
        check_schema({**verified, "schema": "notary.no-such-command/v1"})


def test_old_names_are_kept_with_equal_values(world: tuple[Notary, Path, str, dict[str, Any]]) -> None:
    notary, key, digest, verified = world
    assert verified["bytes_checked"] is verified["content_verified"] is True
    assert verified["bytes_hashed"] == len(b"release 1\n")
    revocation = verified["decisions"][0]["revocation"]
    assert revocation["issued_at"] == revocation["issuedAt"] and revocation["reason"] == "CVE-2026-1"
    identity = notary.run("--json", "verify", digest, "--key", f"{key}.pub", expect=1).json
    assert identity["bytes_checked"] is identity["content_verified"] is False and identity["bytes_hashed"] == 0

    history = notary.run("--json", "history", digest, "--key", f"{key}.pub").json
    versions = history["subjects"][0]["versions"]
    assert [v["type"] for v in versions] == ["notarization", "revocation"]
    for v in versions:
        assert v["issued_at"] == v["issuedAt"] and v["trusted_signer"] is v["trustedSigner"] is True
    got = notary.run("--json", "get", digest).json["records"]
    assert all(r["issued_at"] == r["issuedAt"] and r["trusted_signer"] is r["trustedSigner"] is None for r in got)
    changes = notary.run("--json", "audit", "diff", "--from", "genesis", "--to", "latest",
                         "--key", f"{key}.pub").json["changes"]
    assert len(changes) == 2
    for c in changes:
        assert c["issued_at"] == c["issuedAt"] and c["trusted_signer"] is c["trustedSigner"] is True


def test_records_are_shown_as_signed(world: tuple[Notary, Path, str, dict[str, Any]]) -> None:
    """A record inside output is the signed payload verbatim (docs/json.md, "Signed content"): its own names."""
    notary, key, _, _ = world
    written = notary.run("--json", "notarize", str(notary.root / "app.bin"), "--job-id", "j2", "--key", str(key),
                         "--reinstate", "--reason", "fixed").json
    record = written["records"][0]
    assert {"issuedAt", "signer", "subject"} <= set(record) and set(record["signer"]) == {"keyId", "publicKey"}
    assert written["ci"]["jobId"] == "j2" and "issued_at" not in record


def test_outputs_no_other_test_validates(world: tuple[Notary, Path, str, dict[str, Any]], tmp_path: Path) -> None:
    notary, key, _, _ = world
    vkey = notary.run("--json", "ledger", "checkpoint", "--vkey").json
    assert vkey["schema"] == "notary.ledger-checkpoint-vkey/v1"
    cp = notary.run("--json", "ledger", "checkpoint", "-o", str(tmp_path / "head.cp")).json
    assert cp["schema"] == "notary.ledger-checkpoint/v1" and cp["witnesses"] == []
    checked = notary.run("--json", "audit", "checkpoint", str(tmp_path / "head.cp")).json
    assert checked["schema"] == "notary.audit-checkpoint/v1" and checked["ok"] is True
    assert notary.run("--json", "ledger", "upgrade").json["schema"] == "notary.ledger-upgrade/v1"
    witness_key = notary.key("witness")
    shown = notary.run("--json", "witness", "vkey", "--name", "witness.example/w1", "--key", str(witness_key)).json
    assert shown["schema"] == "notary.witness-vkey/v1" and shown["name"] == "witness.example/w1"
    config = tmp_path / "notary.toml"
    config.write_text(f'[[policy.trust]]\nimages = ["*"]\nkeys = ["{key}.pub"]\n')
    installed = notary.run("--json", "--config", str(config), "gate", "install", "podman", "--dry-run",
                           "--hooks-dir", str(tmp_path / "hooks.d")).json
    assert installed["schema"] == "notary.gate-install/v1" and not (tmp_path / "hooks.d").exists()
