"""One output contract: `--json` before or after the subcommand, a versioned `schema` on every result, one
timestamp format (RFC 3339, UTC, Z) outside the byte-level proof objects. docs/json.md is the reference."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Notary

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def _times(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every timestamp-named field outside proof objects (whose integers are part of the signed formats)."""
    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "proof":
                continue
            if k in ("time", "issued_at", "issuedAt", "expires") or k.endswith("_time"):
                out.append((f"{path}.{k}", v))
            out += _times(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _times(v, f"{path}[{i}]")
    return out


@pytest.fixture
def world(tmp_path: Path) -> tuple[Notary, Path, str]:
    notary = Notary(tmp_path)
    key = notary.key()
    _, digest = notary.notarize_file(key, b"release\n", job_id="j7")
    return notary, key, digest


@pytest.mark.parametrize("args, schema", [
    (("verify", "{artifact}", "--key", "{pub}"), "notary.verify/v1"),
    (("history", "{digest}"), "notary.history/v1"),
    (("get", "{digest}", "--at-tx", "1"), "notary.get/v1"),
    (("lookup", "--job-id", "j7"), "notary.lookup/v1"),
    (("lookup", "--artifact", "{digest}"), "notary.lookup/v1"),
    (("ledger", "info"), "notary.ledger-info/v1"),
    (("ledger", "audit"), "notary.ledger-audit/v1"),
    (("revoke", "{digest}", "--reason", "r", "--key", "{key}"), "notary.revoke/v1"),
    (("key", "show", "{pub}"), "notary.key-show/v1"),
])
def test_json_after_the_subcommand_with_a_schema_and_rfc3339_times(world: tuple[Notary, Path, str],
                                                                    args: tuple[str, ...], schema: str) -> None:
    notary, key, digest = world
    filled = [a.format(artifact=notary.root / "app.bin", pub=f"{key}.pub", key=key, digest=digest) for a in args]
    after = notary.run(*filled, "--json").json
    before = notary.run("--json", *filled, expect=None)
    assert after["schema"] == schema and before.json["schema"] == schema
    if "head" in after:
        assert after["head"]["ledger_id"].startswith("file:sha256:")
    bad = [(where, t) for where, t in _times(after) if t is not None and not RFC3339.match(str(t))]
    assert not bad, bad


def test_json_errors_have_a_schema_too(world: tuple[Notary, Path, str]) -> None:
    notary, _, _ = world
    result = notary.run("lookup", "--job-id", "nope", "--json", expect=1)  # a proven answer, not bad input
    assert result.json["schema"] == "notary.error/v1" and result.json["error"]["exit_code"] == 1
    assert result.json["error"]["absence"] and result.json["error"]["head"]
    result = notary.run("get", "nope", "--json", expect=2)  # not a digest or a source: bad input
    assert result.json["error"]["exit_code"] == 2
