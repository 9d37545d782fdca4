"""Files notary reads for its own trust (the trusted state) and for immudb (password file, server key) are
read bounded and regular-only: a FIFO never hangs a verify, /dev/zero never fills memory, each is one line.

Each attack runs the real CLI in a subprocess with a timeout, so the old `open()` + `read()` (which blocks on
a FIFO forever) fails the test instead of hanging the suite.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from notary.errors import TrustStoreError, UsageError
from notary.ledger.settings import read_password, read_server_key
from notary.ledger.trust import TrustedState, TrustStore
from tests.support.cli import Notary

TIMEOUT = 30


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def _notarized(tmp_path: Path) -> tuple[Notary, list[Path]]:
    """A file ledger this client has trusted once, and the trusted-state files that record it."""
    notary = Notary(tmp_path)
    key = notary.key()
    (tmp_path / "artifact.bin").write_bytes(b"payload")
    notary.run("notarize", str(tmp_path / "artifact.bin"), "--job-id", "1", "--key", str(key))
    states = [p for p in notary.state_dir.iterdir() if p.name.startswith("ledger-") and p.suffix == ".json"]
    assert states
    return notary, states


@pytest.mark.parametrize("swap", ["fifo", "dev-zero"])
def test_trusted_state_swapped_for_a_special_file_fails_closed_in_one_line(tmp_path: Path, swap: str) -> None:
    notary, states = _notarized(tmp_path)
    for state in states:
        state.unlink()
        if swap == "fifo":
            os.mkfifo(state)
        else:
            state.symlink_to("/dev/zero")
    result = notary.run("ledger", "info", expect=3, timeout=TIMEOUT)
    kind = "a FIFO" if swap == "fifo" else "a character device"
    assert f"is {kind}, not a regular file" in _one_line(result.err)


def test_oversized_trusted_state_is_refused_not_read(tmp_path: Path) -> None:
    store = TrustStore(tmp_path)
    store.save(TrustedState("L", 1, "aa" * 32, 1))
    store.path_for("L").write_bytes(b" " * (2 << 20))
    with pytest.raises(TrustStoreError, match="byte limit"):
        store.load("L")


def test_unreadable_state_directory_is_an_error_not_first_contact(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("x")
    with pytest.raises(TrustStoreError, match="cannot read trusted state"):
        TrustStore(tmp_path / "not-a-dir").load("L")


def test_missing_state_file_is_first_contact(tmp_path: Path) -> None:
    assert TrustStore(tmp_path).load("L") is None


@pytest.mark.parametrize("variable", ["NOTARY_IMMUDB_PASSWORD_FILE", "NOTARY_IMMUDB_SERVER_KEY"])
def test_immudb_secret_file_that_is_a_fifo_is_one_line_not_a_hang(tmp_path: Path, variable: str) -> None:
    fifo = tmp_path / "secret.fifo"
    os.mkfifo(fifo)
    env = {variable: str(fifo)}
    if variable == "NOTARY_IMMUDB_SERVER_KEY":
        env["NOTARY_IMMUDB_PASSWORD"] = "immudb"
    # port 9 on loopback: nothing listens, but the file must be refused before any connection is tried
    result = Notary(tmp_path, ledger_url="immudb://immudb@127.0.0.1:9/defaultdb").run(
        "ledger", "info", env=env, expect=2, timeout=TIMEOUT)
    assert _one_line(result.err).endswith("is a FIFO, not a regular file") and variable in result.err


def test_immudb_password_file_of_dev_zero_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD_FILE", "/dev/zero")
    with pytest.raises(UsageError, match="NOTARY_IMMUDB_PASSWORD_FILE: file /dev/zero is a character device"):
        read_password("notary")


def test_immudb_server_key_of_dev_zero_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTARY_IMMUDB_SERVER_KEY", "/dev/zero")
    with pytest.raises(UsageError, match="NOTARY_IMMUDB_SERVER_KEY: file /dev/zero is a character device"):
        read_server_key()


def test_oversized_immudb_password_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "pw"
    big.write_bytes(b"x" * (65 << 10))
    monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD_FILE", str(big))
    with pytest.raises(UsageError, match="byte limit"):
        read_password("notary")
