"""Real docker credential helpers for tests: executables named `docker-credential-NAME` in a temp dir put
first on PATH, speaking the protocol docker's helpers speak (`get`, server URL on stdin, JSON on stdout).

A helper here is a program notary really runs, not a mock: the well-behaved `store` answers from a fixed
table like a keychain would (and says "credentials not found in native keychain" otherwise); `script` installs
any Python body, for the hostile ones (hang, flood, lie, leak).
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest


class HelperBin:
    """A directory of credential helpers, first on PATH; each helper appends the server URLs it is asked
    about to `asked(name)`, so a test sees which helper ran and with which key."""

    def __init__(self, root: Path) -> None:
        self.dir = root
        self.dir.mkdir(parents=True, exist_ok=True)

    def log(self, name: str) -> Path:
        return self.dir / f"{name}.asked"

    def asked(self, name: str) -> list[str]:
        log = self.log(name)
        return log.read_text().splitlines() if log.exists() else []

    def script(self, name: str, body: str) -> Path:
        """docker-credential-NAME running body (Python) after `server` holds the URL read from stdin."""
        path = self.dir / f"docker-credential-{name}"
        prologue = (f"#!{sys.executable}\nimport json, os, sys, time\n"
                    f"server = sys.stdin.read().strip()\n"
                    f"with open({str(self.log(name))!r}, 'a') as _log:\n    _log.write(server + '\\n')\n")
        path.write_text(prologue + textwrap.dedent(body))
        path.chmod(0o755)
        return path

    def store(self, name: str, entries: dict[str, tuple[str, str]]) -> Path:
        """A well-behaved helper holding entries: server URL -> (Username, Secret)."""
        return self.script(name, f"""
            entries = json.loads({json.dumps(entries)!r})
            if sys.argv[1:] != ["get"]:
                sys.stderr.write("unsupported action\\n")
                sys.exit(2)
            if server not in entries:
                print("credentials not found in native keychain")
                sys.exit(1)
            user, secret = entries[server]
            json.dump({{"ServerURL": server, "Username": user, "Secret": secret}}, sys.stdout)
            """)


def isolate_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HelperBin:
    """No credential file or helper of the machine running the suite is ever seen: HOME, XDG_RUNTIME_DIR and
    XDG_CONFIG_HOME point into tmp_path, DOCKER_CONFIG and REGISTRY_AUTH_FILE are unset, and PATH starts with
    an empty helper dir (returned)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    helpers = HelperBin(tmp_path / "helpers")
    monkeypatch.setenv("PATH", f"{helpers.dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}")
    return helpers


def write_config(path: Path, doc: dict[str, object]) -> Path:
    """A docker config.json / podman auth.json at path (parents created, mode 0600 as docker writes it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    return path
