"""Settings are read once, at the edges: no module below the CLI and the hook entry points reads os.environ.

The environment's one reader is notary.environment (Environment.of_process); the edges call it once and pass
the typed result down. notary.gate.hook_main reads os.environ itself: it is the hook's first module and may
import nothing but os and sys (its start-up is paid on every container start).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from notary.environment import Environment, given

PACKAGE = Path(__file__).resolve().parent.parent / "notary"
READERS = {"environment.py", "gate/hook_main.py"}  # the reader, and the hook's import-free first step
# where Environment.of_process() may be called: the edges (and `given`, the library's default for a caller
# that passes no environment)
EDGES = {"environment.py", "cli/main.py", "gate/install.py"}
ENVIRON_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def _modules() -> list[tuple[str, ast.Module]]:
    return [(str(path.relative_to(PACKAGE)), ast.parse(path.read_text(), str(path)))
            for path in sorted(PACKAGE.rglob("*.py"))]


def _environment_reads(tree: ast.Module) -> list[int]:
    """Lines that touch the process environment: os.environ / os.getenv / ..., or importing them from os."""
    def reads(node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute):
            return node.attr in ENVIRON_NAMES and isinstance(node.value, ast.Name) and node.value.id == "os"
        if isinstance(node, ast.ImportFrom):
            return node.module in ("os", "posix", "nt") and any(a.name in ENVIRON_NAMES for a in node.names)
        return False

    return [node.lineno for node in ast.walk(tree) if reads(node)]


def test_no_module_below_the_edges_reads_os_environ() -> None:
    offenders = {name: lines for name, tree in _modules() if name not in READERS
                 for lines in [_environment_reads(tree)] if lines}
    assert not offenders, f"read the environment at an edge (notary.environment) and pass it down: {offenders}"


def test_only_the_edges_read_the_process_environment() -> None:
    offenders = {}
    for name, tree in _modules():
        calls = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                 and node.attr == "of_process"]
        if calls and name not in EDGES:
            offenders[name] = calls
    assert not offenders, f"Environment.of_process() outside the edges: {offenders}"


def test_the_rule_finds_a_reader() -> None:
    for code in ("import os\nx = os.environ.get('A')", "import os\nx = os.getenv('A')",
                 "from os import environ", "from os import getenv as g"):
        assert _environment_reads(ast.parse(code)), code
    assert not _environment_reads(ast.parse("import os\nx = os.path.join('a')"))


def test_settings_are_read_by_name_and_empty_is_unset() -> None:
    env = Environment.from_mapping({"NOTARY_LEDGER": "file:///l.db", "NOTARY_CONFIG": "", "NOTARY_STATE_DIR": "/s",
                                    "NOTARY_PODMAN_STORAGE": "/p", "DOCKER_HOST": "unix:///d.sock",
                                    "XDG_DATA_HOME": "/data", "AWS_REGION": "eu-west-1", "OTHER": "kept"})
    assert env.ledger == "file:///l.db" and env.config is None and env.state_dir == "/s"
    assert env.podman_storage == "/p" and env.docker_host == "unix:///d.sock" and env.xdg_data_home == "/data"
    assert env.aws_region == "eu-west-1" and env.variables["OTHER"] == "kept"
    assert Environment() == Environment.from_mapping({})


def test_the_environment_is_a_snapshot() -> None:
    source = {"NOTARY_LEDGER": "file:///a.db"}
    env = Environment.from_mapping(source)
    source["NOTARY_LEDGER"] = "file:///b.db"
    source["NEW"] = "1"
    assert env.ledger == "file:///a.db" and "NEW" not in env.variables
    with pytest.raises(TypeError):
        env.variables["NEW"] = "1"  # type: ignore[index]
    with pytest.raises(AttributeError):
        env.ledger = "file:///c.db"  # type: ignore[misc]


def test_secrets_stay_out_of_repr() -> None:
    env = Environment.from_mapping({"NOTARY_KEY_PASSPHRASE": "correct horse", "NOTARY_PKCS11_PIN": "1234",
                                    "NOTARY_SIGNING_KEY": "-----BEGIN PRIVATE KEY-----secret",
                                    "NOTARY_IMMUDB_PASSWORD": "hunter2", "NOTARY_REGISTRY_TOKEN": "tok",
                                    "NOTARY_LEDGER": "file:///l.db"})
    shown = repr(env) + str(env)
    for secret in ("correct horse", "1234", "secret", "hunter2", "tok"):
        assert secret not in shown
    assert "key_passphrase=<set>" in shown and "pkcs11_pin_file=None" in shown and "file:///l.db" in shown
    assert env.key_passphrase == "correct horse" and env.variables["NOTARY_IMMUDB_PASSWORD"] == "hunter2"


def test_a_library_call_given_no_environment_takes_the_process_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTARY_LEDGER", "file:///from-process.db")
    assert given(None).ledger == "file:///from-process.db"
    mine = Environment(ledger="file:///mine.db")
    assert given(mine) is mine
