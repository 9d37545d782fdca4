"""Checkpoints of an immudb ledger: immudb's binary linking tree as a C2SP checkpoint, signed by an operator key,
cosigned by a real witness over HTTP, and checked against a real immudb. The root is compared with what the
server itself says (the BlRoot of the next transaction's header, read with immudb-py, not notary's mirror)."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import NamedTuple

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from notary import keys, merkle
from notary.audit import note as notes
from tests.support.cli import Notary, last_line
from tests.support.immudb import ImmudbServer, fresh_immudb_url, immudb_user
from tests.support.witnesses import served, witness_for


def _server_bl_root(server: ImmudbServer, url: str, tx: int) -> bytes:
    """The BlRoot in the header of transaction tx, as the server gives it to immudb-py."""
    admin = server.admin_client()
    try:
        admin.useDatabase(url.rsplit("/", 1)[1].encode())
        from immudb.grpc import schema_pb2

        return bytes(admin._stub.TxById(schema_pb2.TxRequest(tx=tx)).header.blRoot)
    finally:
        admin.shutdown()


def _checkpoint(path: Path) -> notes.Checkpoint:
    return notes.parse_checkpoint(notes.parse_note(path.read_bytes()).text)


class Ops(NamedTuple):
    """An immudb ledger, its operator (who notarizes with key and signs checkpoints with operator)."""

    url: str
    user: Notary
    key: Path
    operator: Path


@pytest.fixture()
def ops(immudb_server: ImmudbServer, tmp_path: Path) -> Ops:
    url = fresh_immudb_url(immudb_server)
    user = immudb_user(tmp_path / "ops", url)
    return Ops(url, user, user.key(), user.key("checkpoint"))


def test_an_immudb_checkpoint_is_the_servers_own_binary_linking_tree(ops: Ops, immudb_server: ImmudbServer,
                                                                      tmp_path: Path) -> None:
    url, user, key, operator = ops
    for n in range(3):
        user.notarize_file(key, f"release {n}".encode(), name=f"r{n}.bin", job_id=f"j{n}")
    user.run("ledger", "checkpoint", "--sign-key", str(operator), "-o", str(tmp_path / "cp"))
    cp = _checkpoint(tmp_path / "cp")
    user.notarize_file(key, b"one more", name="more.bin", job_id="j9")  # the next header carries the root
    assert cp.size > 0 and cp.root == _server_bl_root(immudb_server, url, cp.size + 1)
    assert cp.origin.startswith("immudb:")


def test_an_immudb_checkpoint_is_witnessed_checked_and_a_split_view_is_exit_3(ops: Ops, tmp_path: Path) -> None:
    url, user, key, operator = ops
    user.notarize_file(key, b"release 1")
    vkey = user.run("ledger", "checkpoint", "--sign-key", str(operator), "--vkey").out.strip()
    witness = witness_for("w1", [vkey], tmp_path / "witness")
    with served(witness) as wurl:
        first = tmp_path / "first.cp"
        user.run("ledger", "checkpoint", "--sign-key", str(operator), "--witness", wurl,
                 "--witness-vkey", witness.vkey, "-o", str(first))
        user.notarize_file(key, b"release 2", name="two.bin", job_id="j2")
        second = tmp_path / "second.cp"  # the witness needs, and gets, a consistency proof from the first
        user.run("ledger", "checkpoint", "--sign-key", str(operator), "--witness", wurl,
                 "--witness-vkey", witness.vkey, "-o", str(second))
        auditor = immudb_user(tmp_path / "auditor", url)
        for cp in (first, second):
            auditor.run("audit", "checkpoint", str(cp), "--log-vkey", vkey, "--witness-vkey", witness.vkey,
                        "--min-witnesses", "1")

        # the operator's key signs a history the ledger does not have, at the size the auditor verified
        forged_cp = _checkpoint(second)
        leaves = [merkle.leaf_hash(os.urandom(32)) for _ in range(forged_cp.size)]
        forged = notes.Checkpoint(forged_cp.origin, forged_cp.size, merkle.root(leaves), ())
        signer = keys.load_private_key(operator)
        assert isinstance(signer, Ed25519PrivateKey)
        log = notes.parse_vkey(vkey)
        text = forged.text()
        note = notes.Note(text, (notes.Signature(log.name, log.key_id, signer.sign(text.encode())),))
        (tmp_path / "forged.cp").write_bytes(note.encode())
        split = auditor.run("audit", "checkpoint", str(tmp_path / "forged.cp"), "--log-vkey", vkey, expect=3)
        assert "split view" in last_line(split)

        # the witness refuses the same lie at a bigger size: no consistency proof leads there from what it saw
        bigger = notes.Checkpoint(forged.origin, forged.size + 3, merkle.root(leaves + leaves[:3]), ())
        body = f"old {forged_cp.size}\n".encode() + b"".join(
            base64.b64encode(p) + b"\n" for p in merkle.consistency_proof(leaves + leaves[:3], forged_cp.size))
        text = bigger.text()
        lie = notes.Note(text, (notes.Signature(log.name, log.key_id, signer.sign(text.encode())),))
        import requests

        refused = requests.post(wurl + "/add-checkpoint", data=body + b"\n" + lie.encode(), timeout=10)
        assert refused.status_code == 422, refused.text


def test_an_immudb_checkpoint_needs_the_operator_key_and_the_mirror(ops: Ops, tmp_path: Path) -> None:
    _, user, key, _ = ops
    user.notarize_file(key, b"release 1")
    assert "--sign-key" in last_line(user.run("ledger", "checkpoint", expect=2))
    assert "not an Ed25519 key" in last_line(user.run("ledger", "checkpoint", "--sign-key",
                                                   str(user.key("p256", "ecdsa-p256")), expect=2))
    off = user.run("ledger", "checkpoint", "--sign-key", str(key), env={"NOTARY_IMMUDB_MIRROR": "0"}, expect=2)
    assert "mirror" in last_line(off)
    user.run("ledger", "checkpoint", "--sign-key", str(key), "-o", str(tmp_path / "cp"))
    assert "--log-vkey" in last_line(user.run("audit", "checkpoint", str(tmp_path / "cp"), expect=2))


APP = "registry.example/app"
A = "sha256:" + "a1" * 32
B = "sha256:" + "b2" * 32


def test_the_gate_on_immudb_admits_only_what_a_witnessed_checkpoint_covers(immudb_server: ImmudbServer,
                                                                          tmp_path: Path) -> None:
    """[policy.witnesses] with log_key on an immudb ledger: nothing before a cosigned checkpoint, a record
    after it only once a newer one is cosigned, and a checkpoint of a history the ledger does not have
    (cosigned by a witness that never saw this log) a split view, exit 3."""
    from notary.audit.witness_client import submit
    from notary.sources.base import Subject
    from tests.support.runtimes import GateWorld

    url = fresh_immudb_url(immudb_server)
    world = GateWorld(tmp_path / "world", ledger_url=url)
    world.notarize(Subject(A, APP, "oci-manifest", names=(APP,)))
    ci = immudb_user(tmp_path / "ci", url)
    operator = ci.key("checkpoint")
    vkey = ci.run("ledger", "checkpoint", "--sign-key", str(operator), "--vkey").out.strip()
    (world.root / "log.vkey").write_text(vkey + "\n")
    honest, colluding = witness_for("w1", [vkey], tmp_path / "w1"), witness_for("w2", [vkey], tmp_path / "w2")
    cp = world.root / "checkpoint"
    with served(honest) as w1, served(colluding) as w2:
        for name, w in (("w1", honest), ("w2", colluding)):
            (world.root / f"{name}.vkey").write_text(w.vkey + "\n")
        world.write_policy(extra=f'[policy.witnesses]\nkeys = ["w1.vkey", "w2.vkey"]\nmin = 1\n'
                                 f'checkpoint = "{cp}"\nlog_key = "log.vkey"\n')
        first = world.gate_check(f"{APP}@{A}")
        assert first.returncode == 1 and "no witnessed checkpoint" in first.stderr, first.stderr
        ci.run("ledger", "checkpoint", "--sign-key", str(operator), "--witness", w1, "-o", str(cp))
        ok = world.gate_check(f"{APP}@{A}")
        assert ok.returncode == 0, ok.stderr
        world.notarize(Subject(B, APP, "oci-manifest", names=(APP,)))
        late = world.gate_check(f"{APP}@{B}")
        assert late.returncode == 1 and "after the last witnessed checkpoint" in late.stderr, late.stderr
        ci.run("ledger", "checkpoint", "--sign-key", str(operator), "--witness", w1, "-o", str(cp))
        assert world.gate_check(f"{APP}@{B}").returncode == 0

        honest_cp = _checkpoint(cp)
        leaves = [merkle.leaf_hash(os.urandom(32)) for _ in range(honest_cp.size)]
        forged = notes.Checkpoint(honest_cp.origin, honest_cp.size, merkle.root(leaves), ())
        signer = keys.load_private_key(operator)
        assert isinstance(signer, Ed25519PrivateKey)
        log = notes.parse_vkey(vkey)
        note = notes.Note(forged.text(), (notes.Signature(log.name, log.key_id, signer.sign(forged.text().encode())),))
        answer = submit(w2, note, forged.size, lambda old: [])  # w2 never saw this log: it cosigns the lie
        cp.write_bytes(notes.Note(note.text, note.signatures + answer.signatures).encode())
        split = world.gate_check(f"{APP}@{A}")
        assert split.returncode == 3 and "split view" in split.stderr, split.stderr
