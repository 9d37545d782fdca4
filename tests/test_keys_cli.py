"""`notary key generate` and `notary key show` as a user runs them: modes whatever the umask, no directory made
behind the user's back, and key files read through the bounded reader (a FIFO or /dev/zero is one line)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.support.cli import Notary

TIMEOUT = 30  # a hang (the old open()+read() of a FIFO) turns into a failed test, not a stuck suite


def _cli_with_umask(root: Path, umask: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `notary ARGS` in a shell that set umask first, as a CI job with a careless umask would."""
    argv = " ".join(f"'{a}'" for a in [sys.executable, "-m", "notary.cli.main", *args])
    return subprocess.run(["sh", "-c", f"umask {umask} && exec {argv}"], cwd=root, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generate_under_umask_000_writes_key_0600_and_pub_0644(tmp_path: Path) -> None:
    proc = _cli_with_umask(tmp_path, "000", "key", "generate", "--out", str(tmp_path / "ci.key"))
    assert proc.returncode == 0, proc.stderr
    assert _mode(tmp_path / "ci.key") == 0o600
    assert _mode(tmp_path / "ci.key.pub") == 0o644, "a world-writable .pub lets anyone swap the trusted key"


def test_generate_under_umask_077_still_writes_a_readable_pub(tmp_path: Path) -> None:
    proc = _cli_with_umask(tmp_path, "077", "key", "generate", "--out", str(tmp_path / "ci.key"))
    assert proc.returncode == 0, proc.stderr
    assert _mode(tmp_path / "ci.key") == 0o600
    assert _mode(tmp_path / "ci.key.pub") == 0o644


def test_force_over_loose_files_resets_their_modes(tmp_path: Path) -> None:
    for name in ("ci.key", "ci.key.pub"):
        (tmp_path / name).write_text("old")
        (tmp_path / name).chmod(0o666)
    proc = _cli_with_umask(tmp_path, "000", "key", "generate", "--out", str(tmp_path / "ci.key"), "--force")
    assert proc.returncode == 0, proc.stderr
    assert (_mode(tmp_path / "ci.key"), _mode(tmp_path / "ci.key.pub")) == (0o600, 0o644)


def test_generate_into_a_missing_directory_is_refused_with_exit_2(tmp_path: Path) -> None:
    notary = Notary(tmp_path)
    target = tmp_path / "new" / "dir" / "k"
    result = notary.run("key", "generate", "--out", str(target), expect=2)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0] and str(target.parent) in lines[0], result.err
    assert not (tmp_path / "new").exists(), "no directory may be created"


def test_generate_below_a_regular_file_is_refused_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    result = Notary(tmp_path).run("key", "generate", "--out", str(tmp_path / "afile" / "k"), expect=2)
    assert "is not a directory" in result.err and len(result.err.strip().splitlines()) == 1, result.err


def test_show_prints_the_same_key_id_for_private_and_public_file(tmp_path: Path) -> None:
    notary = Notary(tmp_path)
    key = notary.key()
    private = notary.run("--json", "key", "show", str(key)).json
    public = notary.run("--json", "key", "show", f"{key}.pub").json
    assert private["key_id"] == public["key_id"] and private["key_id"].startswith("sha256:")


def test_show_of_a_fifo_is_one_line_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    result = Notary(tmp_path).run("key", "show", str(fifo), expect=2, timeout=TIMEOUT)
    assert "is a FIFO, not a regular file" in result.err and len(result.err.strip().splitlines()) == 1


def test_show_of_dev_zero_is_one_line_not_unbounded_memory(tmp_path: Path) -> None:
    result = Notary(tmp_path).run("key", "show", "/dev/zero", expect=2, timeout=TIMEOUT)
    assert "is a character device, not a regular file" in result.err, result.err


def test_show_of_an_oversized_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.pem"
    big.write_bytes(b"-----BEGIN PUBLIC KEY-----\n" + b"A" * (1 << 20))
    result = Notary(tmp_path).run("key", "show", str(big), expect=2)
    assert "byte limit" in result.err


def test_show_of_a_missing_file_says_so(tmp_path: Path) -> None:
    result = Notary(tmp_path).run("key", "show", str(tmp_path / "nope"), expect=2)
    assert "does not exist" in result.err
