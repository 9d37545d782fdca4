"""Running the real `notary` command in a subprocess, as CI scripts and runtime hooks do."""

from __future__ import annotations

import functools
import json
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        """The parsed --json document, validated against the JSON Schema its `schema` field names (docs/schemas/):
        a document off its schema, or naming a schema that has no file, fails the test."""
        doc = json.loads(self.out)
        check_schema(doc)
        return doc


SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def schema_file(schema_id: str) -> Path:
    """docs/schemas/ file of a schema id: notary.verify/v1 is notary.verify-v1.json."""
    return SCHEMA_DIR / (schema_id.replace("/", "-") + ".json")


@functools.cache
def _validator(schema_id: str) -> Any:
    from jsonschema import Draft202012Validator

    path = schema_file(schema_id)
    if not re.fullmatch(r"notary\.[a-z0-9-]+/v[0-9]+", schema_id) or not path.is_file():
        pytest.fail(f"--json output names schema {schema_id!r}, which has no file in docs/schemas/")
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_errors(doc: Any) -> list[str]:
    """Where doc departs from the schema its `schema` field names (an unknown schema id fails the test)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("schema"), str):
        return ["not an object with a `schema` string"]
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in _validator(doc["schema"]).iter_errors(doc)]


def check_schema(doc: Any) -> None:
    """Fail the test unless doc (a notary --json document) validates against its schema."""
    errors = schema_errors(doc)
    if errors:
        schema = doc.get("schema") if isinstance(doc, dict) else None
        pytest.fail(f"--json output does not match docs/schemas/ for {schema}:\n  " + "\n  ".join(errors[:20]))


class Notary:
    """One user's environment: a ledger URL and a trusted-state dir, both private to the test."""

    def __init__(self, root: Path, ledger_url: str | None = None, state_dir: Path | None = None,
                 auto_create: bool = True) -> None:
        self.root = root
        self.auto_create = auto_create
        self.ledger_path = root / "ledger.db"
        self.ledger_url = ledger_url or self.ledger_path.as_uri()
        self.state_dir = state_dir or root / "state"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NOTARY_") or k.startswith("NOTARY_TEST")}
        self.env.update({"NOTARY_LEDGER": self.ledger_url, "NOTARY_STATE_DIR": str(self.state_dir)})
        for name in ("GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "CIRCLECI", "TEKTON_PIPELINE_RUN"):
            self.env.pop(name, None)

    def run(self, *args: str, env: dict[str, str] | None = None, expect: int | None = 0,
            stdin: str | None = None, timeout: float = 120) -> Result:
        args = self._creating(args, {**self.env, **(env or {})}.get("NOTARY_LEDGER", ""))
        proc = subprocess.run(
            [sys.executable, "-m", "notary.cli.main", *args],
            env={**self.env, **(env or {})}, capture_output=True, text=True, input=stdin, timeout=timeout,
            cwd=self.root,
        )
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if expect is not None and proc.returncode != expect:
            pytest.fail(f"notary {' '.join(args)} exited {proc.returncode}, expected {expect}\n"
                        f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return result

    def _creating(self, args: tuple[str, ...], url: str) -> tuple[str, ...]:
        """A first `notarize` to this user's (missing) file ledger gets --create: the suite's users asked
        for that ledger, as `notary ledger init` would. Tests of explicit creation pass auto_create=False."""
        words = [a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or args[i - 1] != "--config")]
        if not (self.auto_create and words[:1] == ["notarize"] and url.startswith("file:") and "--ledger" not in args):
            return args
        if Path(unquote(urlsplit(url).path)).exists():
            return args
        at = args.index("notarize") + 1
        return (*args[:at], "--create", *args[at:])

    def key(self, name: str = "ci", kind: str = "ed25519") -> Path:
        path = self.root / f"{name}.key"
        self.run("key", "generate", "--out", str(path), "--type", kind)
        return path

    def notarize_file(self, key: Path, content: bytes, *, name: str = "app.bin", job_id: str = "j1") -> tuple[Path, str]:
        """Write content to a file under root and notarize it with key under job_id; (the file, its digest)."""
        artifact = self.root / name
        artifact.write_bytes(content)
        result = self.run("--json", "notarize", str(artifact), "--job-id", job_id, "--key", str(key))
        return artifact, str(result.json["records"][0]["subject"]["digest"])

    def trusted_state(self) -> dict[str, bytes]:
        """Raw bytes of every trusted-state file, to assert a failed check moved nothing."""
        if not self.state_dir.exists():
            return {}
        return {p.name: p.read_bytes() for p in sorted(self.state_dir.iterdir()) if p.is_file()}


def one_line(result: Result) -> str:
    """The one error line a failed command printed (anything more, or a traceback, fails the test)."""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    return lines[0]


def last_line(result: Result) -> str:
    """The error line of a failed command that may first print notices (a first contact's "trusting ...")."""
    assert "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert lines, f"no error line (exit {result.code}); stdout: {result.out}"
    return lines[-1]


def ledger_bytes(notary: Notary) -> dict[str, bytes]:
    """Every byte the user's ledger and trusted state hold (SQLite's -wal and -shm files included): equal
    before and after a refused command means nothing was written."""
    files = [p for p in notary.root.glob("ledger.db*") if p.is_file()]
    if notary.state_dir.exists():
        files += [p for p in notary.state_dir.rglob("*") if p.is_file()]
    return {str(p): p.read_bytes() for p in sorted(files)}


def stored_entry(notary: Notary, key: str, state_dir: Path) -> Any:
    """The newest entry of key in the user's ledger, read (proven) by a client of its own at state_dir."""
    from notary.ledger import open_ledger

    ledger = open_ledger(notary.ledger_url, state_dir=state_dir)
    try:
        entry = ledger.get(key)
    finally:
        ledger.close()
    assert entry is not None, f"{key} is not in the ledger"
    return entry


def flip_envelope_byte(db: Path, marker: bytes = b"payloadType") -> int:
    """Edit one stored envelope in place (schema-agnostic): the attack of someone with write access to the file.

    Changes a character inside the base64 payload of every row value containing marker; returns rows changed.
    """
    con = sqlite3.connect(db)
    changed = 0
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            sql_text = con.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
            if "WITHOUT ROWID" in (sql_text or "").upper():
                continue  # the key index holds hashes, not envelopes
            cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
            for col in cols:
                rows = con.execute(f"SELECT rowid, {col} FROM {table}").fetchall()
                for rowid, value in rows:
                    if isinstance(value, (bytes, str)) and marker in (value if isinstance(value, bytes) else value.encode()):
                        raw = value if isinstance(value, bytes) else value.encode()
                        at = raw.index(b'"payload":"') + len(b'"payload":"') + 10
                        swapped = raw[:at] + (b"A" if raw[at:at + 1] != b"A" else b"B") + raw[at + 1:]
                        con.execute(f"UPDATE {table} SET {col} = ? WHERE rowid = ?",
                                    (swapped if isinstance(value, bytes) else swapped.decode(), rowid))
                        changed += 1
        con.commit()
    finally:
        con.close()
    return changed
