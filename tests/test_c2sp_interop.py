"""notary's checkpoints and cosignatures read by other people's code, and a real C2SP witness cosigning them.

- c2sp-peer (scripts/c2sp-peer: golang.org/x/mod/sumdb/note and filippo.io/torchwood) opens a checkpoint that
  `notary ledger checkpoint` wrote and notary's witness cosigned: the log signature and the cosignature verify
  with their code, and torchwood's parser reads the origin, size and root notary meant.
- litewitness (filippo.io/torchwood's witness, behind an ssh-agent holding its key, configured with
  witnessctl) cosigns notary checkpoints submitted by `notary ledger checkpoint --witness`: it verifies notary's
  signature and notary's RFC 6962 consistency proofs with its own code, notary verifies its cosignatures with
  notary's, and a fork of the ledger is refused by it (exit 3).
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_ssh_public_key,
)

from notary.audit import note as notes
from tests.support.ci_runners import runner_bin
from tests.support.cli import Notary
from tests.support.integration import require_tool
from tests.support.processes import free_port, stop_process, wait_for_socket, wait_until
from tests.support.witnesses import served, witness_for


@pytest.fixture(scope="module")
def peers() -> Path:
    return runner_bin("c2sp-peer").parent


def _peer_verify(peers: Path, data: bytes, log_vkey: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(peers / "c2sp-peer"), "verify", "-log", log_vkey, *extra], input=data.decode(),
                          capture_output=True, text=True, timeout=30, check=False)


def test_go_note_and_torchwood_read_notary_checkpoints_and_cosignatures(peers: Path, tmp_path: Path) -> None:
    user = Notary(tmp_path)
    user.notarize_file(user.key(), b"release", job_id="j1")
    log_vkey = user.run("ledger", "checkpoint", "--vkey").out.strip()
    seed = os.urandom(32)
    wkey = Ed25519PrivateKey.from_private_bytes(seed)
    witness = witness_for("notary", [log_vkey], tmp_path / "w", wkey)
    with served(witness) as url:
        data = user.run("ledger", "checkpoint", "--witness", url, "--witness-vkey", witness.vkey).out.encode()
    head = user.run("--json", "ledger", "info").json["head"]
    read = _peer_verify(peers, data, log_vkey, "-witness-name", "witness.test/notary", "-witness-seed", seed.hex())
    assert read.returncode == 0, read.stderr
    names, parsed = read.stdout.splitlines()[:-1], read.stdout.splitlines()[-1]
    assert set(names) == {log_vkey.split("+")[0], "witness.test/notary"}
    assert parsed == f"{head['ledger_id']} {head['tree_size']} {base64.b64encode(bytes.fromhex(head['root_hash'])).decode()}"
    assert f"witness vkey {witness.vkey}" in read.stderr, "torchwood derives the same vkey from the same key"

    altered = data.replace(b"\n" + str(head["tree_size"]).encode() + b"\n", b"\n" + str(head["tree_size"] + 1).encode() + b"\n", 1)
    assert _peer_verify(peers, altered, log_vkey).returncode == 1, "their code refuses an altered checkpoint"


@pytest.fixture
def litewitness(peers: Path, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """(url, vkey, witnessctl db) of a running litewitness whose key lives in its own ssh-agent."""
    require_tool("ssh-agent")
    work = tmp_path / "lw"
    work.mkdir()
    key = Ed25519PrivateKey.generate()
    pem = work / "witness.pem"
    pem.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()))
    pem.chmod(0o600)
    sock, log = work / "agent.sock", work / "agent.log"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=log.open("wb"), stderr=subprocess.STDOUT)
    lw: subprocess.Popen[bytes] | None = None
    try:
        wait_for_socket(agent, sock, log, "ssh-agent")
        subprocess.run(["ssh-add", str(pem)], env={**os.environ, "SSH_AUTH_SOCK": str(sock)}, check=True,
                       capture_output=True, timeout=30)
        lw, url, vkey = _start_litewitness(peers, work, sock, key)
        yield url, vkey, work / "litewitness.db"
    finally:
        stop_process(lw)
        stop_process(agent)


def _start_litewitness(peers: Path, work: Path, sock: Path,
                       key: Ed25519PrivateKey) -> tuple[subprocess.Popen[bytes], str, str]:
    openssh = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    (work / "witness.pub").write_text(openssh + "\n")
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(work / "witness.pub")],
                                 capture_output=True, text=True, check=True, timeout=30).stdout.split()[1]
    port = free_port()
    log = work / "litewitness.log"
    proc = subprocess.Popen([str(peers / "litewitness"), "-name", "litewitness.test/w", "-db",
                             str(work / "litewitness.db"), "-ssh-agent", str(sock), "-key", fingerprint,
                             "-listen", f"127.0.0.1:{port}"], stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until("litewitness", proc, log, lambda: requests.get(url + "/", timeout=2).status_code < 600, timeout=30)
    pub = load_ssh_public_key(openssh.encode())
    assert isinstance(pub, type(key.public_key()))
    return proc, url, notes.verifier("litewitness.test/w", notes.COSIGNATURE_V1, pub).vkey()  # type: ignore[arg-type]


def test_litewitness_cosigns_notary_checkpoints_and_refuses_a_fork(peers: Path, litewitness: tuple[str, str, Path],
                                                                   tmp_path: Path) -> None:
    url, vkey, db = litewitness
    user = Notary(tmp_path)
    key = user.key()
    user.notarize_file(key, b"one", job_id="j1")
    log_vkey = user.run("ledger", "checkpoint", "--vkey").out.strip()
    origin = log_vkey.split("+")[0]
    for args in (["add-log", "-db", str(db), "-origin", origin],
                 ["add-key", "-db", str(db), "-origin", origin, "-key", log_vkey]):
        subprocess.run([str(peers / "witnessctl"), *args], check=True, capture_output=True, timeout=30)

    first = user.run("ledger", "checkpoint", "--witness", url, "--witness-vkey", vkey, "-o", str(tmp_path / "cp1"))
    assert "Traceback" not in first.err
    user.run("audit", "checkpoint", str(tmp_path / "cp1"), "--witness-vkey", vkey, "--min-witnesses", "1")
    user.notarize_file(key, b"two", name="two.bin", job_id="j2")  # litewitness now needs notary's proof 3 -> 6
    user.run("ledger", "checkpoint", "--witness", url, "--witness-vkey", vkey, "-o", str(tmp_path / "cp2"))
    user.run("audit", "checkpoint", str(tmp_path / "cp2"), "--witness-vkey", vkey, "--min-witnesses", "1")

    fork = Notary(tmp_path / "forker", ledger_url=(tmp_path / "fork.db").as_uri())
    fork.root.mkdir(exist_ok=True)
    for suffix in ("", ".key"):
        Path(f"{tmp_path / 'fork.db'}{suffix}").write_bytes(Path(f"{user.ledger_path}{suffix}").read_bytes())
    user.notarize_file(key, b"three", name="three.bin", job_id="j3")
    user.run("ledger", "checkpoint", "--witness", url, "--witness-vkey", vkey)
    fork.run("notarize", str(tmp_path / "two.bin"), "--job-id", "forged", "--key", str(key))
    refused = fork.run("ledger", "checkpoint", "--witness", url, "--witness-vkey", vkey, expect=3)
    assert "split view" in refused.err or "another history" in refused.err, refused.err
