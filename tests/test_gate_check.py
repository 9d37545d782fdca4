"""`notary gate check` and the shared decision path: every refusal, its exit code, and its log line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from notary.config import load_config
from notary.gate.decision import gate_for
from notary.sources.base import Subject
from tests.support.cli import check_schema
from tests.support.registry import registry  # noqa: F401 - fixture
from tests.support.runtimes import GateWorld

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


@pytest.fixture
def world(tmp_path: Path) -> GateWorld:
    w = GateWorld(tmp_path / "world")
    w.notarize(Subject(DIGEST, "registry.example/app:1", "oci-manifest"))
    return w


def _gate(world: GateWorld):  # noqa: ANN202 - test helper
    config = load_config(str(world.config))
    return gate_for(config, config.ledger_url, front_end="test")


def test_notarized_image_is_allowed_and_logged_with_tree_size(world: GateWorld) -> None:
    result = world.gate_check(f"registry.example/app@{DIGEST}")
    assert result.returncode == 0, result.stderr
    assert "allowed" in result.stdout
    [line] = world.decisions()
    assert line["decision"] == "allow" and line["digest"] == DIGEST and line["image"] == "registry.example/app"
    assert line["tree_size"] >= 1 and line["time"].endswith("Z") and "notarized by" in line["reason"]


def test_never_notarized_image_is_refused_with_exit_1(world: GateWorld) -> None:
    result = world.gate_check(OTHER)
    assert result.returncode == 1
    assert "not notarized" in result.stderr
    assert world.decisions()[-1]["decision"] == "refuse"


def test_revoked_image_is_refused_with_the_revocation_reason(world: GateWorld) -> None:
    world.revoke(DIGEST, "CVE-2026-4242")
    result = world.gate_check(DIGEST)
    assert result.returncode == 1
    assert "revoked" in result.stderr and "CVE-2026-4242" in result.stderr


def test_image_signed_only_by_an_untrusted_key_is_refused(world: GateWorld) -> None:
    world.notarize(Subject(OTHER, "x", "oci-manifest"), trusted=False)
    result = world.gate_check(OTHER)
    assert result.returncode == 1 and "not notarized by any trusted key" in result.stderr


def test_tampered_ledger_is_an_integrity_failure_and_trust_does_not_move(world: GateWorld) -> None:
    assert world.gate_check(DIGEST).returncode == 0
    before = {p.name: p.read_bytes() for p in world.gate_state.iterdir()}
    world.tamper()
    result = world.gate_check(DIGEST)
    assert result.returncode == 3, result.stderr
    assert "integrity" in result.stderr
    assert {p.name: p.read_bytes() for p in world.gate_state.iterdir()} == before
    assert world.decisions()[-1]["exit_code"] == 3


def test_ledger_rolled_back_behind_the_gates_trusted_state_is_refused(world: GateWorld, tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    saved.mkdir()
    for f in world.root.glob("ledger.db*"):
        shutil.copy2(f, saved / f.name)
    world.revoke(DIGEST, "bad build")
    assert world.gate_check(DIGEST).returncode == 1  # the gate now trusts the state with the revocation
    for f in world.root.glob("ledger.db*"):
        f.unlink()
    for f in saved.iterdir():
        shutil.copy2(f, world.root / f.name)
    result = world.gate_check(DIGEST)
    assert result.returncode == 3, result.stderr


def test_unreachable_ledger_is_refused_with_exit_4_by_default(world: GateWorld) -> None:
    world.write_policy(ledger_url=(world.root / "gone" / "ledger.db").as_uri())
    result = world.gate_check(DIGEST)
    assert result.returncode == 4
    assert "fail closed" in result.stderr
    assert world.decisions()[-1]["decision"] == "refuse"


def test_unreachable_ledger_with_fail_open_is_allowed_and_logged(world: GateWorld) -> None:
    world.write_policy(fail="open", ledger_url=(world.root / "gone" / "ledger.db").as_uri())
    result = world.gate_check(DIGEST)
    assert result.returncode == 0, result.stderr
    line = world.decisions()[-1]
    assert line["decision"] == "allow" and line["via"] == "fail-open" and "unreachable" in line["reason"]


@pytest.mark.parametrize("replace", ["delete", "directory"])
def test_deleted_pinned_ledger_refuses_even_fail_open(world: GateWorld, replace: str) -> None:
    """A ledger the gate already trusted does not vanish by accident: removing it must not open the gate."""
    world.write_policy(fail="open")
    assert world.gate_check(DIGEST).returncode == 0  # the gate pins the ledger at its path
    for f in world.root.glob("ledger.db*"):
        f.unlink()
    if replace == "directory":
        (world.root / "ledger.db").mkdir()
    result = world.gate_check(DIGEST)
    assert result.returncode == 3, result.stderr
    assert "replaced" in result.stderr
    line = world.decisions()[-1]
    assert line["decision"] == "refuse" and line["exit_code"] == 3


def test_fail_open_never_covers_an_integrity_failure(world: GateWorld) -> None:
    world.write_policy(fail="open")
    world.tamper()
    assert world.gate_check(DIGEST).returncode == 3


def test_break_glass_allows_a_listed_digest_and_logs_every_use(world: GateWorld) -> None:
    world.write_policy(extra=f'[[policy.break_glass]]\ndigest = "{OTHER}"\nreason = "INC-7 approved by sec"\n')
    for _ in range(2):
        result = world.gate_check(OTHER)
        assert result.returncode == 0, result.stderr
    uses = [d for d in world.decisions() if d["via"] == "break-glass"]
    assert len(uses) == 2 and all("INC-7" in d["reason"] for d in uses)


def test_expired_break_glass_no_longer_allows(world: GateWorld) -> None:
    world.write_policy(extra=f'[[policy.break_glass]]\ndigest = "{OTHER}"\nreason = "old"\n'
                             'expires = "2020-01-01T00:00:00Z"\n')
    assert world.gate_check(OTHER).returncode == 1


def test_max_age_refuses_an_old_notarization(world: GateWorld) -> None:
    world.write_policy(extra="")
    text = world.config.read_text().replace('[policy]\n', '[policy]\nmax_age = "1h"\n')
    world.config.write_text(text)
    gate = _gate(world)
    try:
        assert gate.check(None, [DIGEST]).allowed
        later = gate.check(None, [DIGEST], now=datetime.now(timezone.utc) + timedelta(hours=2))
    finally:
        gate.close()
    assert not later.allowed and later.exit_code == 1 and later.status == "too-old"


def test_image_no_rule_matches_is_refused(world: GateWorld) -> None:
    world.config.write_text(world.config.read_text().replace('images = ["*"]', 'images = ["registry.example/*"]'))
    assert world.gate_check(f"registry.example/app@{DIGEST}").returncode == 0
    result = world.gate_check(f"other.example/app@{DIGEST}")
    assert result.returncode == 1 and "no trust rule" in result.stderr


def test_a_revocation_of_either_candidate_digest_wins(world: GateWorld) -> None:
    world.revoke(OTHER, "image id revoked")
    gate = _gate(world)
    try:
        decision = gate.check("registry.example/app", [DIGEST, OTHER])
    finally:
        gate.close()
    assert not decision.allowed and decision.status == "revoked"


def test_an_allow_that_cannot_be_logged_is_refused(world: GateWorld) -> None:
    world.log.mkdir()  # a directory where the log file should be
    result = world.gate_check(DIGEST)
    assert result.returncode == 4 and "decision log" in result.stderr


def test_json_output_carries_the_decision(world: GateWorld) -> None:
    result = world.gate_check(DIGEST, env={"NOTARY_CONFIG": str(world.config)})
    assert result.returncode == 0
    result = world.gate_check("--name", "registry.example/app", DIGEST)
    assert result.returncode == 0
    proc = subprocess.run([sys.executable, "-m", "notary.cli.main", "--json", "gate", "check", DIGEST],
                          env=world.env(), capture_output=True, text=True, check=False)
    out = json.loads(proc.stdout)
    check_schema(out)  # docs/schemas/
    assert out["decision"] == "allow" and out["digest"] == DIGEST


def test_garbage_image_argument_is_a_usage_error(world: GateWorld) -> None:
    result = world.gate_check("not an image!")
    assert result.returncode == 2 and result.stderr.count("\n") == 1


def test_concurrent_gates_during_notarizations_never_report_false_integrity_failures(world: GateWorld) -> None:
    """Many containers start at once while CI writes: every gate must still allow, none may see a 'rollback'."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set() and i < 30:
            world.notarize(Subject(f"sha256:{i + 1000:064x}", "registry.example/other", "oci-manifest"))
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(lambda _: world.gate_check(DIGEST), range(18)))
    finally:
        stop.set()
        thread.join()
    assert [r.returncode for r in results] == [0] * len(results), [r.stderr for r in results if r.returncode]


def test_a_tag_is_resolved_through_the_registry_and_the_digest_decides(
        world: GateWorld, registry: str, busybox_layout: Path) -> None:  # noqa: F811
    digest = registry.push(busybox_layout, "v1", "check/bb:v1")  # type: ignore[attr-defined]
    result = world.gate_check(f"{registry}/check/bb:v1", "--insecure")
    assert result.returncode == 1 and digest in result.stderr
    world.notarize(Subject(digest, f"{registry}/check/bb:v1", "oci-manifest"))
    result = world.gate_check(f"{registry}/check/bb:v1", "--insecure")
    assert result.returncode == 0, result.stderr
    line = world.decisions()[-1]
    assert line["digest"] == digest and line["image"] == f"{registry}/check/bb:v1"
    missing_tag = world.gate_check(f"{registry}/check/bb:nope", "--insecure")
    assert missing_tag.returncode not in (0, 1, 3), missing_tag.stderr
    assert missing_tag.stderr.count("\n") == 1, missing_tag.stderr
    assert world.decisions()[-1]["decision"] == "refuse"


def test_gate_check_accepts_an_oci_layout_subject(world: GateWorld, multiarch_layout: Path) -> None:
    """`gate check oci:DIR:TAG` decides on the digests `notarize oci:DIR:TAG` recorded, under --name (a layout
    tagged only `multi` carries no repository name of its own)."""
    from notary.sources import resolve

    subjects = resolve(f"oci:{multiarch_layout}:multi", names=("registry.example/multi",))
    for subject in subjects:
        world.notarize(subject)
    world.config.write_text(world.config.read_text().replace('images = ["*"]', 'images = ["registry.example/*"]'))
    result = world.gate_check(f"oci:{multiarch_layout}:multi", "--name", "registry.example/multi:1")
    assert result.returncode == 0, result.stderr
    line = world.decisions()[-1]
    assert set(line["digests"]) >= {s.digest for s in subjects} and line["name_matched"] == "registry.example/multi"
    unnamed = world.gate_check(f"oci:{multiarch_layout}:multi")
    assert unnamed.returncode == 1 and "(unnamed)" in unnamed.stderr and "--name" in unnamed.stderr


def test_gate_check_of_a_multiarch_layout_is_refused_when_one_platform_manifest_is_revoked(
        world: GateWorld, multiarch_layout: Path) -> None:
    from notary.sources import resolve

    subjects = resolve(f"oci:{multiarch_layout}:multi", names=("registry.example/multi",))
    for subject in subjects:
        world.notarize(subject)
    arm = next(s for s in subjects if (s.platform or "").startswith("linux/arm64"))
    world.revoke(arm.digest, "CVE-2026-7777 on arm64")
    result = world.gate_check(f"oci:{multiarch_layout}:multi", "--name", "registry.example/multi")
    assert result.returncode == 1 and "CVE-2026-7777" in result.stderr
