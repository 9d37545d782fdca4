"""`notary audit recheck`: what the gate admitted, decided again with a policy as of a point, and the logged
heads held against the ledger (a log edited to show a head of another history is a split view, exit 3)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from notary import keys
from notary.sources.base import Subject
from tests.support.cli import check_schema
from tests.support.runtimes import GateWorld

APP = "registry.example/app"
A = "sha256:" + "a1" * 32
B = "sha256:" + "b2" * 32
C = "sha256:" + "c3" * 32


def _subject(digest: str) -> Subject:
    return Subject(digest, APP, "oci-manifest", names=(APP,))


def recheck(world: GateWorld, *args: str, expect: int | None = None) -> tuple[int, Any, str]:
    proc = subprocess.run([sys.executable, "-m", "notary.cli.main", "--json", "audit", "recheck", *args],
                          env=world.env(), capture_output=True, text=True, timeout=120)
    if expect is not None:
        assert proc.returncode == expect, proc.stdout + proc.stderr
    data = json.loads(proc.stdout) if proc.stdout.strip() else None
    if data is not None:
        check_schema(data)  # docs/schemas/
    return proc.returncode, data, proc.stderr


@pytest.fixture
def admitted(tmp_path: Path) -> GateWorld:
    """A and B notarized and admitted by the gate (twice for A), C refused (never notarized)."""
    world = GateWorld(tmp_path / "w")
    world.notarize(_subject(A))
    world.notarize(_subject(B))
    for digest in (A, A, B, C):
        world.gate_check(f"{APP}@{digest}")
    assert [d["decision"] for d in world.decisions()] == ["allow", "allow", "allow", "refuse"]
    return world


def test_an_image_revoked_after_admission_would_now_be_refused(admitted: GateWorld) -> None:
    admitted.revoke(B, "CVE-2026-4242")
    code, data, err = recheck(admitted, expect=1)
    assert data["schema"] == "notary.audit-recheck/v1"
    assert data["admitted"] == 2 and data["still_admitted"] == 1 and data["decisions"] == 4
    [refused] = data["now_refused"]
    assert refused["digests"] == [B] and refused["decision"]["status"] == "revoked"
    assert "CVE-2026-4242" in refused["decision"]["reason"] and refused["admissions"] == 1
    assert "1 admitted image(s) would now be refused" in err
    assert data["heads"]["checked"] >= 1 and data["heads"]["findings"] == []


def test_as_of_a_point_before_the_revocation_everything_still_stands(admitted: GateWorld) -> None:
    before = admitted.decisions()[-1]["head"]["tx"]
    admitted.revoke(B, "CVE-2026-4242")
    code, data, _ = recheck(admitted, "--at", str(before), expect=0)
    assert data["as_of_tx"] == before and data["now_refused"] == [] and data["still_admitted"] == 2


def test_a_policy_that_no_longer_trusts_the_key_refuses_every_admission(admitted: GateWorld, tmp_path: Path) -> None:
    other = keys.generate_private_key()
    keys.write_key_pair(tmp_path / "new.key", other)
    policy = tmp_path / "new-policy.toml"
    policy.write_text('[policy]\n[[policy.trust]]\nimages = ["*"]\nkeys = ["new.key.pub"]\n')
    code, data, _ = recheck(admitted, "--policy", str(policy), expect=1)
    assert {tuple(r["digests"]) for r in data["now_refused"]} == {(A,), (B,)}
    assert all("not notarized by any trusted key" in r["decision"]["reason"] for r in data["now_refused"])


def test_a_stricter_max_age_as_of_a_later_time_refuses_what_has_aged(admitted: GateWorld, tmp_path: Path) -> None:
    policy = tmp_path / "strict.toml"
    pub = admitted.root / "trusted.key.pub"
    policy.write_text(f'[policy]\nmax_age = "1d"\n[[policy.trust]]\nimages = ["*"]\nkeys = ["{pub}"]\n')
    recheck(admitted, "--policy", str(policy), expect=0)
    code, data, _ = recheck(admitted, "--policy", str(policy), "--at", "2099-01-01T00:00:00Z", expect=1)
    assert {r["decision"]["status"] for r in data["now_refused"]} == {"too-old"}


def _edit_log(world: GateWorld, edit: Any) -> None:
    lines = [json.loads(line) for line in world.log.read_text().splitlines()]
    edit(lines)
    world.log.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_a_logged_head_of_another_history_is_a_split_view(admitted: GateWorld) -> None:
    """The gate was shown (or the log claims) a head whose root is not a prefix of the ledger's."""
    def forge(lines: list[dict[str, Any]]) -> None:
        head = lines[0]["head"]
        head["root_hash"] = ("00" if head["root_hash"][:2] != "00" else "11") + head["root_hash"][2:]

    _edit_log(admitted, forge)
    code, data, err = recheck(admitted, expect=3)
    assert "split view" in data["heads"]["findings"][0]["problem"] and "split view" in err


def test_a_logged_head_of_another_ledger_or_beyond_the_head_is_a_finding(admitted: GateWorld) -> None:
    def forge(lines: list[dict[str, Any]]) -> None:
        lines[0]["head"]["ledger_id"] = "another-ledger"
        lines[1]["head"]["tree_size"] = 10 ** 6

    _edit_log(admitted, forge)
    code, data, _ = recheck(admitted, expect=3)
    problems = " ".join(f["problem"] for f in data["heads"]["findings"])
    assert "not this ledger" in problems and "beyond this client's verified head" in problems


def test_refusals_in_the_log_are_not_rechecked_and_junk_lines_are_counted(admitted: GateWorld) -> None:
    with admitted.log.open("a") as f:
        f.write("{junk\n" + json.dumps({"time": "2026-12-01T00:00:00Z", "digests": ["md5:x"], "allowed": True})
                + "\n")
    code, data, _ = recheck(admitted, expect=0)
    assert data["admitted"] == 2 and data["unreadable_count"] == 2
    assert all(C not in r["digests"] for r in data["now_refused"])


def test_rotated_logs_are_read_too(admitted: GateWorld) -> None:
    admitted.log.rename(admitted.log.with_name(admitted.log.name + ".1"))
    admitted.gate_check(f"{APP}@{A}")
    code, data, _ = recheck(admitted, expect=0)
    assert data["decisions"] == 5 and len(data["logs"]) == 2


def test_no_decision_log_and_too_long_a_log_are_usage_errors(admitted: GateWorld, tmp_path: Path) -> None:
    code, _, err = recheck(admitted, "--log", str(tmp_path / "missing.jsonl"), expect=2)
    assert "no decision log" in err
    code, _, err = recheck(admitted, "--max-lines", "2", expect=2)
    assert "more than 2 lines" in err


def test_since_skips_older_decisions(admitted: GateWorld) -> None:
    code, data, _ = recheck(admitted, "--since", "2099-01-01T00:00:00Z", expect=0)
    assert data["decisions"] == 0 and data["admitted"] == 0


def test_a_witness_policy_rechecks_each_admission_against_the_witnessed_prefix(tmp_path: Path) -> None:
    """[policy.witnesses] in the recheck policy: an admission inside the cosigned checkpoint still stands; one
    the checkpoint does not cover (the recheck's checkpoint file is an older one) would now be refused as
    unwitnessed. Real witnesses over HTTP, as the gate's own tests use."""
    import shutil

    from tests.test_gate_witnesses import APP as W_APP
    from tests.test_gate_witnesses import A as W_A
    from tests.test_gate_witnesses import B as W_B
    from tests.test_gate_witnesses import Setup

    s = Setup(tmp_path)
    try:
        s.witness()
        older = s.world.root / "older-checkpoint"
        shutil.copyfile(s.checkpoint, older)
        s.world.notarize(Subject(W_B, W_APP, "oci-manifest", names=(W_APP,)))
        s.witness()
        assert s.check(W_A)[0] == 0 and s.check(W_B)[0] == 0
        code, data, err = recheck(s.world, expect=0)
        assert data["still_admitted"] == 2, err
        strict = s.world.root / "recheck.toml"
        strict.write_text(s.world.config.read_text().replace(str(s.checkpoint), str(older)))
        code, data, err = recheck(s.world, "--policy", str(strict), expect=1)
        [refused] = data["now_refused"]
        assert refused["digests"] == [W_B] and refused["decision"]["status"] == "unwitnessed", refused
    finally:
        s.witnesses.close()
