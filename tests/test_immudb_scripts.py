"""scripts/immudb-build.sh and scripts/immudb-up.sh (what `make immudb` and `make immudb-up` run)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from notary.ledger import open_immudb
from notary.ledger.trust import TrustStore
from tests.support.immudb import REPO, free_port, immudb_binaries


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTARY_", "IMMUDB_"))}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), **extra)
    return env


def test_build_script_prints_the_binaries_directory_last(tmp_path: Path) -> None:
    binaries = immudb_binaries()
    done = subprocess.run([str(REPO / "scripts" / "immudb-build.sh")], capture_output=True, text=True, timeout=1800,
                          env=_env(tmp_path, IMMUDB_BIN=str(binaries / "immudb"), IMMUDB_ANY_VERSION="1"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(binaries.resolve())
    refused = subprocess.run([str(REPO / "scripts" / "immudb-build.sh")], capture_output=True, text=True,
                             timeout=60, env=_env(tmp_path, IMMUDB_BIN=str(tmp_path / "nope")))
    assert refused.returncode != 0 and "IMMUDB_BIN" in refused.stderr


def test_immudb_up_starts_a_usable_loopback_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binaries = immudb_binaries()
    port = free_port()
    env = _env(tmp_path, IMMUDB_BIN=str(binaries / "immudb"), IMMUDB_ANY_VERSION="1", IMMUDB_PORT=str(port),
               IMMUDB_WEB_PORT=str(free_port()), IMMUDB_SIGNING_KEY="1")
    done = subprocess.run([str(REPO / "scripts" / "immudb-up.sh")], capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 0, done.stderr
    pid = int(re.search(r"kill (\d+)", done.stdout).group(1))  # type: ignore[union-attr]
    try:
        url = re.search(r"NOTARY_LEDGER=(\S+)", done.stdout).group(1)  # type: ignore[union-attr]
        key = re.search(r"NOTARY_IMMUDB_SERVER_KEY=(\S+)", done.stdout).group(1)  # type: ignore[union-attr]
        assert url == f"immudb://immudb@127.0.0.1:{port}/defaultdb"
        monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD", "immudb")
        monkeypatch.setenv("NOTARY_IMMUDB_SERVER_KEY", key)
        ledger = open_immudb(url, trust=TrustStore(tmp_path / "trust"))
        assert ledger.write({"hello": b"world"}).tx >= 1
        ledger.close()
        gateway = re.search(r"NOTARY_IMMUDB_GATEWAY=(\S+)", done.stdout).group(1)  # type: ignore[union-attr]
        via_gateway = open_immudb(url, trust=TrustStore(tmp_path / "trust"), gateway=gateway)
        assert via_gateway.get("hello").value == b"world"  # type: ignore[union-attr]
        via_gateway.close()
        again = subprocess.run([str(REPO / "scripts" / "immudb-up.sh")], capture_output=True, text=True,
                               timeout=120, env=env)
        assert again.returncode != 0 and "already running" in again.stderr
    finally:
        os.kill(pid, signal.SIGTERM)
