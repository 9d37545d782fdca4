"""notary's C2SP witness and checkpoints, attacked over real HTTP on loopback.

The ledgers are real embedded ledgers; a split view is made the way it happens: the ledger file and its key
copied, and the two copies written differently, so one ledger id shows two histories.
"""

from __future__ import annotations

import base64
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from notary import keys
from notary.audit import checkpoints
from notary.audit import note as notes
from notary.ledger.embedded import EmbeddedLedger
from notary.ledger.trust import TrustStore
from tests.support.cli import Notary
from tests.support.witnesses import served, witness_for


class Log:
    """An embedded ledger and what a log hands a witness: signed checkpoints and consistency proofs."""

    def __init__(self, path: Path, state: Path) -> None:
        self.ledger = EmbeddedLedger.open(path.as_uri(), trust=TrustStore(state))
        self.verifier = checkpoints.log_verifier(self.ledger.ledger_id, self.ledger.public_raw)

    def grow(self, n: int, tag: str) -> None:
        self.ledger.write_batch([{f"subject/{tag}/{i}": tag.encode()} for i in range(n)])

    def note(self) -> notes.Note:
        cp = checkpoints.checkpoint_of(self.ledger.info().head)
        return checkpoints.signed(cp, self.ledger.sign_checkpoint, self.verifier)

    def body(self, old: int) -> bytes:
        size = self.ledger.info().head.tree_size
        proof = self.ledger.consistency_proof(old, size) if 0 < old < size else []
        return f"old {old}\n".encode() + b"".join(base64.b64encode(p) + b"\n" for p in proof) + b"\n" + \
            self.note().encode()


@pytest.fixture
def log(tmp_path: Path) -> Log:
    found = Log(tmp_path / "ledger.db", tmp_path / "state")
    found.grow(5, "a")
    return found


@pytest.fixture
def witness_key() -> keys.PrivateKey:
    return keys.generate_private_key()


@pytest.fixture
def server(tmp_path: Path, log: Log, witness_key: keys.PrivateKey) -> Iterator[str]:
    with served(witness_for("w1", [log.verifier], tmp_path / "witness", witness_key)) as url:  # type: ignore[arg-type]
        yield url


def _post(url: str, body: bytes) -> requests.Response:
    return requests.post(url + "/add-checkpoint", data=body, timeout=10)


def _wvkey(witness_key: keys.PrivateKey) -> notes.Verifier:
    return notes.verifier("witness.test/w1", notes.COSIGNATURE_V1, witness_key.public_key())  # type: ignore[arg-type]


def test_consistent_checkpoints_are_cosigned_and_a_stale_old_size_is_409(server: str, log: Log,
                                                                         witness_key: keys.PrivateKey) -> None:
    first = _post(server, log.body(0))
    assert first.status_code == 200, first.text
    cosigned = notes.Note(log.note().text, log.note().signatures + (notes.parse_signature_line(first.text[:-1]),))
    assert set(notes.verified_by(cosigned, [_wvkey(witness_key), log.verifier])) == {"witness.test/w1",
                                                                                      log.verifier.name}
    log.grow(3, "b")
    stale = _post(server, log.body(0))
    assert stale.status_code == 409 and stale.headers["Content-Type"] == "text/x.tlog.size" and stale.text == "5\n"
    assert _post(server, log.body(5)).status_code == 200
    assert _post(server, log.body(8)).status_code == 200, "the same checkpoint again is cosigned again"


def test_split_view_is_never_cosigned(server: str, log: Log, tmp_path: Path) -> None:
    log.ledger.close()
    for suffix in ("", ".key"):
        shutil.copyfile(f"{tmp_path / 'ledger.db'}{suffix}", f"{tmp_path / 'fork.db'}{suffix}")
    log = Log(tmp_path / "ledger.db", tmp_path / "state")
    fork = Log(tmp_path / "fork.db", tmp_path / "fork-state")
    assert fork.verifier == log.verifier, "one ledger id, one key: the fork is the same log to a witness"
    log.grow(2, "honest")
    fork.grow(2, "forged")
    assert _post(server, log.body(0)).status_code == 200
    same_size = _post(server, fork.body(7))
    assert same_size.status_code == 422 and "split view" in same_size.text
    fork.grow(4, "more")
    longer = _post(server, fork.body(7))
    assert longer.status_code == 422 and "not consistent" in longer.text


def test_hostile_requests_get_the_documented_status(server: str, log: Log, tmp_path: Path) -> None:
    other = Log(tmp_path / "other.db", tmp_path / "other-state")
    other.grow(1, "x")
    forged = log.note()
    forged = notes.Note(forged.text, (forged.signatures[0]._replace(sig=bytes(64)),))
    impostor = notes.Note(log.note().text, (notes.sign(log.note().text, log.verifier.name,
                                                       keys.generate_private_key()),))  # type: ignore[arg-type]
    cases = {
        b"old 0\n\n" + other.note().encode(): 404,  # a log this witness does not follow
        b"old 0\n\n" + forged.encode(): 403,  # the log's key name and id with a bad signature
        b"old 0\n\n" + impostor.encode(): 403,  # another key under the log's name: ignored, so none verifies
        b"old 9\n\n" + log.note().encode(): 400,  # old beyond the checkpoint
        b"old 01\n\n" + log.note().encode(): 400,
        b"old 0\n" + (base64.b64encode(b"\0" * 32) + b"\n") * 64 + b"\n" + log.note().encode(): 400,
        b"old 0\n" + base64.b64encode(b"\0" * 32) + b"\n\n" + log.note().encode(): 422,  # a proof from size 0
        b"old 0\nnot base64!\n\n" + log.note().encode(): 400,
        b"new 0\n\n" + log.note().encode(): 400,
        b"old 0\n\n" + log.note().encode().replace(b"\n\n", b"\n"): 400,
        b"old 0\n\n" + log.note().encode()[:-1] + b"\x01\n": 400,
        b"\xff" * 1000: 400,
    }
    for body, status in cases.items():
        answer = _post(server, body)
        assert answer.status_code == status, (body[:60], answer.status_code, answer.text)
    too_big = requests.post(server + "/add-checkpoint", data=b"x" * (200 << 10), timeout=10)
    assert too_big.status_code == 413
    assert requests.get(server + "/healthz", timeout=5).text == "ok\n"
    assert _post(server, log.body(0)).status_code == 200, "none of it moved the witness"


def test_racing_submissions_cannot_roll_the_witness_back(server: str, log: Log) -> None:
    """Many checkpoints of different sizes at once, each claiming old 0: one is cosigned, every other is 409,
    and what the witness then holds is the one it cosigned (check and persist are one step)."""
    bodies = []
    for i in range(12):
        bodies.append(log.body(0))
        log.grow(1, f"r{i}")
    answers: list[requests.Response] = []
    threads = [threading.Thread(target=lambda b=b: answers.append(_post(server, b))) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] + [409] * 11, codes
    held = next(a for a in answers if a.status_code == 409).text
    assert all(a.text == held for a in answers if a.status_code == 409)


def test_corrupt_witness_state_is_refused_not_forgotten(server: str, log: Log, tmp_path: Path) -> None:
    assert _post(server, log.body(0)).status_code == 200
    [state] = (tmp_path / "witness").glob("log-*.json")
    state.write_text("{")
    answer = _post(server, log.body(0))
    assert answer.status_code == 500 and "unusable" in answer.text


def test_cli_checkpoint_witnessed_and_checked_and_a_fork_is_exit_3(tmp_path: Path) -> None:
    user = Notary(tmp_path)
    key = user.key()
    user.notarize_file(key, b"one", job_id="j1")
    log_vkey = user.run("ledger", "checkpoint", "--vkey").out.strip()
    w = witness_for("w1", [log_vkey], tmp_path / "witness")
    with served(w) as url:
        wv = w.vkey
        user.run("ledger", "checkpoint", "--witness", url, "--witness-vkey", wv, "-o", str(tmp_path / "cp"))
        user.run("audit", "checkpoint", str(tmp_path / "cp"), "--witness-vkey", wv, "--min-witnesses", "1")
        user.notarize_file(key, b"two", name="two.bin", job_id="j2")
        user.run("audit", "checkpoint", str(tmp_path / "cp"), "--witness-vkey", wv, "--min-witnesses", "1")
        few = user.run("audit", "checkpoint", str(tmp_path / "cp"), "--witness-vkey", wv,
                       "--witness-vkey", notes.verifier("other.test/w", 4, keys.generate_private_key().public_key()
                                                         ).vkey(), "--min-witnesses", "2", expect=3)  # type: ignore[arg-type]
        assert "2 required" in few.err

        # the fork: the same ledger file and key, written differently; its checkpoint meets the honest ledger
        for suffix in ("", ".key"):
            shutil.copyfile(f"{user.ledger_path}{suffix}", f"{tmp_path / 'fork.db'}{suffix}")
        fork = Notary(tmp_path / "forker", ledger_url=(tmp_path / "fork.db").as_uri())
        fork.root.mkdir(exist_ok=True)
        user.notarize_file(key, b"three", name="three.bin", job_id="j3")
        fork.run("notarize", str(tmp_path / "two.bin"), "--job-id", "forged", "--key", str(key))
        fork.run("ledger", "checkpoint", "-o", str(tmp_path / "fork.cp"))
        split = user.run("audit", "checkpoint", str(tmp_path / "fork.cp"), expect=3)
        assert "split view" in split.err, split.err
        user.run("ledger", "checkpoint", "--witness", url, "--witness-vkey", wv)  # the witness sees size 9 honest
        refused = fork.run("ledger", "checkpoint", "--witness", url, expect=3)
        assert "refuses" in refused.err or "another history" in refused.err, refused.err
        (tmp_path / "cp").write_bytes((tmp_path / "cp").read_bytes().replace(b"\n\n", b"\n\n\xe2\x80\x94 x 0\n"))
        user.run("audit", "checkpoint", str(tmp_path / "cp"), expect=3)
