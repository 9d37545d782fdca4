"""[policy.witnesses]: the gate admits only from a head K of N witnesses cosigned, attacked with real witnesses
over HTTP on loopback, a real embedded ledger, and a fork made as it happens (the ledger file and key copied,
the copies written differently)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from notary.sources.base import Subject
from tests.support.cli import Notary
from tests.support.runtimes import GateWorld
from tests.support.witnesses import served, witness_for

APP = "registry.example/app"
A = "sha256:" + "a1" * 32
B = "sha256:" + "b2" * 32


class Witnesses:
    """Real C2SP witnesses for one log (tests.support.witnesses), served until closed."""

    def __init__(self, root: Path, log_vkey: str, names: tuple[str, ...]) -> None:
        self._stack = ExitStack()
        made = [witness_for(name, [log_vkey], root / name) for name in names]
        self.urls = [self._stack.enter_context(served(w)) for w in made]
        self.vkeys = [w.vkey for w in made]

    def close(self) -> None:
        self._stack.close()


class Setup:
    def __init__(self, root: Path) -> None:
        self.world = GateWorld(root / "world")
        self.world.notarize(Subject(A, APP, "oci-manifest", names=(APP,)))
        self.ci = Notary(root / "ci", ledger_url=self.world.ledger_url, state_dir=self.world.client_state)
        self.ci.root.mkdir(exist_ok=True)
        self.log_vkey = self.ci.run("ledger", "checkpoint", "--vkey").out.strip()
        self.witnesses = Witnesses(root / "witnesses", self.log_vkey, ("w1", "w2"))
        self.checkpoint = self.world.root / "checkpoint"
        for i, vkey in enumerate(self.witnesses.vkeys):
            (self.world.root / f"w{i + 1}.vkey").write_text(vkey + "\n")
        self.world.write_policy(extra=self.rule())

    def rule(self, keys_: str = '"w1.vkey", "w2.vkey"', need: int = 2) -> str:
        return f'[policy.witnesses]\nkeys = [{keys_}]\nmin = {need}\ncheckpoint = "{self.checkpoint}"\n'

    def witness(self, *urls: str, ci: Notary | None = None) -> None:
        args = [a for url in (urls or self.witnesses.urls) for a in ("--witness", url)]
        (ci or self.ci).run("ledger", "checkpoint", *args, "-o", str(self.checkpoint))

    def check(self, digest: str) -> tuple[int, str]:
        proc = self.world.gate_check(f"{APP}@{digest}")
        return proc.returncode, proc.stderr


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    try:
        yield s
    finally:
        s.witnesses.close()


def test_no_witnessed_checkpoint_yet_refuses_and_says_how_to_make_one(setup: Setup) -> None:
    code, err = setup.check(A)
    assert code == 1 and "no witnessed checkpoint" in err and "ledger checkpoint --witness" in err


def test_a_record_inside_the_witnessed_checkpoint_is_admitted(setup: Setup) -> None:
    setup.witness()
    code, err = setup.check(A)
    assert code == 0, err


def test_a_record_notarized_after_the_checkpoint_waits_for_the_witnesses(setup: Setup) -> None:
    setup.witness()
    setup.world.notarize(Subject(B, APP, "oci-manifest", names=(APP,)))
    code, err = setup.check(B)
    assert code == 1 and "after the last witnessed checkpoint" in err, err
    assert setup.world.decisions()[-1]["status"] == "unwitnessed"
    assert setup.check(A)[0] == 0
    setup.witness()
    assert setup.check(B)[0] == 0


def test_a_checkpoint_cosigned_by_fewer_witnesses_than_required_admits_nothing(setup: Setup) -> None:
    setup.witness(setup.witnesses.urls[0])
    code, err = setup.check(A)
    assert code == 1 and "cosigned by 1 of the policy's witnesses, 2 required" in err, err
    setup.world.write_policy(extra=setup.rule(need=1))
    assert setup.check(A)[0] == 0


def test_a_revocation_counts_before_it_is_witnessed(setup: Setup) -> None:
    setup.witness()
    setup.world.revoke(A, "CVE-2026-5151")
    code, err = setup.check(A)
    assert code == 1 and "CVE-2026-5151" in err


def test_a_checkpoint_of_a_forked_history_cosigned_by_its_own_witnesses_is_a_split_view(setup: Setup,
                                                                                       tmp_path: Path) -> None:
    """The fork is shown to witnesses that never saw the honest ledger, so they cosign it; the gate's own
    verified head is the honest one, and the checkpoint is not a prefix of it."""
    world = setup.world
    for suffix in ("", ".key"):
        shutil.copyfile(f"{world.ledger_path}{suffix}", f"{tmp_path / 'fork.db'}{suffix}")
    for digest in (B, "sha256:" + "c3" * 32, "sha256:" + "d4" * 32):  # the honest history grows past the fork's
        world.notarize(Subject(digest, APP, "oci-manifest", names=(APP,)))
    setup.check(A)  # the gate verifies the honest head
    fork = Notary(tmp_path / "forker", ledger_url=(tmp_path / "fork.db").as_uri())
    fork.root.mkdir(exist_ok=True)
    (tmp_path / "forged.bin").write_bytes(b"forged")
    fork.run("notarize", str(tmp_path / "forged.bin"), "--job-id", "forged", "--key", str(world.root / "trusted.key"))
    fooled = Witnesses(tmp_path / "fooled", setup.log_vkey, ("w1", "w2"))
    try:
        for i, vkey in enumerate(fooled.vkeys):
            (world.root / f"w{i + 1}.vkey").write_text(vkey + "\n")
        setup.witness(*fooled.urls, ci=fork)
        code, err = setup.check(A)
        assert code == 3 and "split view" in err, err
    finally:
        fooled.close()


def test_a_checkpoint_not_signed_by_the_ledger_is_an_integrity_failure(setup: Setup) -> None:
    setup.witness()
    text = setup.checkpoint.read_text()
    lines = text.split("\n")
    lines[1] = str(int(lines[1]) + 1)  # the size, under the same signatures
    setup.checkpoint.write_text("\n".join(lines))
    code, err = setup.check(A)
    assert code == 3 and "does not verify" in err, err


@pytest.mark.parametrize(("rule", "message"), [
    ('[policy.witnesses]\nkeys = ["w1.vkey"]\nmin = 2\ncheckpoint = "cp"\n', "min must be a whole number from 1 to 1"),
    ('[policy.witnesses]\nkeys = ["w1.vkey", "w1.vkey"]\ncheckpoint = "cp"\n', "listed twice"),
    ('[policy.witnesses]\nkeys = ["missing.vkey"]\ncheckpoint = "cp"\n', "witness key missing.vkey"),
    ('[policy.witnesses]\nkeys = ["notary.toml"]\ncheckpoint = "cp"\n', "witness key notary.toml"),
    ('[policy.witnesses]\nkeys = ["w1.vkey"]\n', "checkpoint must name"),
    ('[policy.witnesses]\nkeys = []\ncheckpoint = "cp"\n', "keys must list"),
    ('[policy.witnesses]\nkeys = ["w1.vkey"]\ncheckpoint = "cp"\nmin_witness = 1\n', "unknown setting"),
])
def test_a_witness_rule_the_gate_cannot_apply_stops_it_at_start(setup: Setup, rule: str, message: str) -> None:
    setup.world.write_policy(extra=rule)
    code, err = setup.check(A)
    assert code == 2 and message in err, err
