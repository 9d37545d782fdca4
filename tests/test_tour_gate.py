"""From the README's tour to a gated container (issue 23), walked as a new user walks it, with real components.

The user generates a key, notarizes an OCI layout with the `notary` command, writes a notary.toml whose
[policy] trusts that key for the image's repository, and then asks the gate and `notary verify` about the
same SUBJECT they notarized (not a digest copied by hand), and runs it under runc or crun with only the name
annotation in the bundle. Every subject form `gate check` documents is checked the same way. Refusals are
asserted as one line that says what to do.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from notary.gate.oci_hook import HOOK_CODE
from tests.support.cli import Notary, Result
from tests.support.dockerd import DockerDaemon
from tests.support.images import (
    index_entry,
    layout_to_docker_archive,
    layout_to_oci_archive,
    manifest_of,
    tamper_layer,
)
from tests.support.oci_runtimes import RUNTIMES, hook_output_annotations, run_bundle
from tests.support.runtimes import Podman, runc_bundle

NAME = "registry.example/team/bb"


class Tour:
    """One user's machine: the notary CLI with its ledger, a CI key, a notary.toml and the gate's decision log."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.notary = Notary(root)
        self.root = root
        self.key = self.notary.key("ci")
        self.pub = root / "ci.key.pub"
        self.config = root / "notary.toml"
        self.log = root / "decisions.jsonl"
        self.policy(['registry.example/team/*'])

    def policy(self, images: list[str], *, keys: str = '["ci.key.pub"]', extra: str = "") -> None:
        """The [policy] an operator writes: one trust rule (or the extra ones given), key paths relative to it."""
        self.config.write_text(
            f'ledger = "{self.notary.ledger_url}"\n'
            f'state_dir = "{self.root / "gate-state"}"\n'
            "[policy]\n"
            f'decision_log = "{self.log}"\n' + extra +
            "[[policy.trust]]\n"
            f"images = {json.dumps(images)}\n"
            f"keys = {keys}\n")

    def run(self, *args: str, expect: int | None = 0, env: dict[str, str] | None = None) -> Result:
        return self.notary.run(*args, expect=expect, env=env)

    def notarize(self, subject: str, *names: str, env: dict[str, str] | None = None) -> Result:
        flags = [x for n in names for x in ("--name", n)]
        return self.run("--json", "notarize", subject, "--job-id", "tour-1", "--key", str(self.key), *flags,
                        env=env)

    def gate_check(self, *args: str, expect: int | None = 0, env: dict[str, str] | None = None) -> Result:
        return self.run("--config", str(self.config), "gate", "check", "--log", *args, expect=expect, env=env)

    def decisions(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def hook(self) -> dict[str, object]:
        """The Python hook `gate install` writes, in a runc config.json (its environment names the config)."""
        argv = [sys.executable, "-c", HOOK_CODE]
        return {"path": argv[0], "args": argv, "timeout": 30,
                "env": [f"NOTARY_CONFIG={self.config}", "NOTARY_GATE_SOCKET=none",
                        "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}


@pytest.fixture
def tour(tmp_path: Path) -> Tour:
    return Tour(tmp_path / "user")


def _name_the_layout(layout: Path, tag: str, name: str) -> None:
    """What `docker save`, buildkit and containerd write into index.json: the entry's full image name."""
    index = json.loads((layout / "index.json").read_text())
    for desc in index["manifests"]:
        if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            desc["annotations"]["io.containerd.image.name"] = name
    (layout / "index.json").write_text(json.dumps(index))


# ------------------------------------------------------------------------------------------------ the tour


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_tour_notarized_layout_passes_gate_check_verify_and_runs_gated(
        tour: Tour, busybox_layout: Path, tmp_path: Path, runtime: str) -> None:
    """The tour, literally: key, notarize with a name, policy, verify --config, gate check, a gated run."""
    subject = f"oci:{busybox_layout}:v1"
    digest = tour.notarize(subject, f"{NAME}:1.0").json["records"][0]["subject"]["digest"]
    assert digest == index_entry(busybox_layout, "v1")["digest"]
    tour.run("verify", subject, "--key", str(tour.pub))

    verified = tour.run("--config", str(tour.config), "verify", subject, "--name", f"{NAME}:1.0")
    assert f"trusted: {digest}" in verified.out
    checked = tour.gate_check(subject, "--name", f"{NAME}:1.0")
    assert "allowed" in checked.out
    line = tour.decisions()[-1]
    assert line["digest"] == digest and line["name_matched"] == NAME and line["via"] == "verified"

    trace = tmp_path / "trace"
    notes = {"dev.notary.image.name": f"{NAME}:1.0", **hook_output_annotations(runtime, tmp_path)}
    bundle = runc_bundle(busybox_layout, "v1", tmp_path / "bundle", trace, tour.hook(), annotations=notes)
    proc = run_bundle(runtime, bundle, tmp_path / f"{runtime}-state")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (trace / "ran").exists() and "hello" in proc.stdout
    line = tour.decisions()[-1]
    assert line["front_end"] == "oci-hook" and line["identified_by"] == "umoci"
    assert line["image"] == f"{NAME}:1.0" and line["name_matched"] == NAME and line["allowed"] is True


# ------------------------------------------------------------------------------------------------ A: gate check


def test_gate_check_accepts_an_oci_layout_subject(tour: Tour, busybox_layout: Path) -> None:
    _name_the_layout(busybox_layout, "v1", f"{NAME}:2.0")
    subject = f"oci:{busybox_layout}:v1"
    tour.notarize(subject)  # the layout's own image name is bound: no --name needed anywhere
    result = tour.run("--json", "--config", str(tour.config), "gate", "check", subject)
    decision = result.json
    assert decision["allowed"] is True and decision["image"] == f"{NAME}:2.0"
    assert decision["digest"] == index_entry(busybox_layout, "v1")["digest"]
    assert decision["name_matched"] == NAME
    by_digest = tour.gate_check(f"oci:{busybox_layout}@{decision['digest']}")
    assert "allowed" in by_digest.out


def test_gate_check_of_a_layout_tagged_only_v1_is_not_read_as_the_image_docker_io_library_oci(
        tour: Tour, busybox_layout: Path) -> None:
    """The bug of issue 23: `oci:build/layout:v1` was decided as the Docker Hub image `oci`."""
    tour.policy(["docker.io/library/*"])
    subject = f"oci:{busybox_layout}:v1"
    tour.notarize(subject, "docker.io/library/oci")  # even a record naming that image must not be matched
    result = tour.gate_check(subject, expect=1)
    assert "no trust rule in the policy matches image (unnamed)" in result.err
    assert "pass --name REGISTRY/REPOSITORY" in result.err and result.err.count("\n") == 1
    assert tour.decisions()[-1]["image"] is None


def test_gate_check_with_name_decides_a_layout_under_that_name_only(tour: Tour, busybox_layout: Path) -> None:
    subject = f"oci:{busybox_layout}:v1"
    tour.notarize(subject, f"{NAME}:1.0")
    assert "allowed" in tour.gate_check(subject, "--name", f"{NAME}:1.0").out
    other = tour.gate_check(subject, "--name", "registry.example/team/other:1.0", expect=1)
    assert "not notarized under the name registry.example/team/other" in other.err
    assert f"its records name: {NAME};" in other.err
    assert tour.decisions()[-1]["status"] == "name-mismatch"


def test_gate_check_of_a_layout_notarized_without_a_name_says_how_to_add_one(tour: Tour,
                                                                            busybox_layout: Path) -> None:
    subject = f"oci:{busybox_layout}:v1"
    tour.notarize(subject)
    result = tour.gate_check(subject, "--name", f"{NAME}:1.0", expect=1)
    assert "its records name: none, it was notarized without an image name" in result.err
    assert f"notarize the image again with a trusted key and --name {NAME}" in result.err
    tour.notarize(subject, f"{NAME}:1.0")  # doing what it says
    assert "allowed" in tour.gate_check(subject, "--name", f"{NAME}:1.0").out


def test_gate_check_refuses_a_layout_whose_layer_was_altered_after_notarization(tour: Tour,
                                                                               busybox_layout: Path) -> None:
    subject = f"oci:{busybox_layout}:v1"
    tour.notarize(subject, f"{NAME}:1.0")
    tamper_layer(busybox_layout)
    result = tour.gate_check(subject, "--name", NAME, expect=3)
    assert "mismatch" in result.err.lower() and result.err.count("\n") == 1
    assert tour.decisions()[-1]["allowed"] is False
    # the manifest itself is intact: identity only is the caller's explicit choice
    assert "allowed" in tour.gate_check(subject, "--name", NAME, "--identity-only").out


def test_gate_check_name_must_be_an_image_reference(tour: Tour, busybox_layout: Path) -> None:
    result = tour.gate_check(f"oci:{busybox_layout}:v1", "--name", "/builds/x", expect=2)
    assert "not an image reference" in result.err and result.err.count("\n") == 1


def test_gate_check_accepts_an_oci_archive_subject(tour: Tour, busybox_layout: Path, tmp_path: Path) -> None:
    archive = layout_to_oci_archive(busybox_layout, "v1", tmp_path / "bb.oci.tar", name=f"{NAME}:3.0")
    tour.notarize(f"oci-archive:{archive}")
    decision = tour.run("--json", "--config", str(tour.config), "gate", "check", f"oci-archive:{archive}").json
    assert decision["allowed"] is True and decision["image"] == f"{NAME}:3.0" and decision["name_matched"] == NAME


def test_gate_check_accepts_a_docker_archive_subject(tour: Tour, busybox_layout: Path, tmp_path: Path) -> None:
    archive = layout_to_docker_archive(busybox_layout, "v1", tmp_path / "bb.tar", f"{NAME}:4.0")
    tour.notarize(f"docker-archive:{archive}")
    decision = tour.run("--json", "--config", str(tour.config), "gate", "check", f"docker-archive:{archive}").json
    assert decision["allowed"] is True and decision["name_matched"] == NAME
    config_digest = manifest_of(busybox_layout, "v1")[1]["config"]["digest"]
    assert config_digest in decision["digests"]


def test_gate_check_accepts_a_docker_daemon_subject(tour: Tour, busybox_layout: Path, tmp_path: Path,
                                                    dockerd: DockerDaemon) -> None:
    dockerd.load(layout_to_docker_archive(busybox_layout, "v1", tmp_path / "bb.tar", f"{NAME}:5.0"))
    env = {"DOCKER_HOST": dockerd.host}
    tour.notarize(f"docker-daemon:{NAME}:5.0", env=env)
    decision = tour.run("--json", "--config", str(tour.config), "gate", "check", f"docker-daemon:{NAME}:5.0",
                        env=env).json
    assert decision["allowed"] is True and decision["image"] == f"{NAME}:5.0"
    assert decision["digest"] == dockerd.image_id(f"{NAME}:5.0")


def test_gate_check_accepts_a_registry_subject(tour: Tour, busybox_layout: Path, registry: object) -> None:
    ref = f"{registry}/tour/bb:v1"
    digest = registry.push(busybox_layout, "v1", "tour/bb:v1")  # type: ignore[attr-defined]
    tour.policy([f"{registry}/tour/*"])
    tour.run("--json", "notarize", f"registry://{ref}", "--insecure", "--job-id", "j", "--key", str(tour.key))
    decision = tour.run("--json", "--config", str(tour.config), "gate", "check", f"registry://{ref}",
                        "--insecure").json
    assert decision["allowed"] is True and decision["digest"] == digest and decision["image"] == ref
    plain = tour.run("--json", "--config", str(tour.config), "gate", "check", ref, "--insecure").json
    assert plain["allowed"] is True and plain["digest"] == digest  # the docker-style reference, as before


# ------------------------------------------------------------------------------------------------ B: verify


def test_verify_config_policy_keys_are_trusted(tour: Tour, busybox_layout: Path) -> None:
    _name_the_layout(busybox_layout, "v1", f"{NAME}:1.0")
    subject = f"oci:{busybox_layout}:v1"
    digest = tour.notarize(subject).json["records"][0]["subject"]["digest"]
    result = tour.run("--config", str(tour.config), "verify", subject)
    assert f"trusted: {digest}" in result.out
    as_json = tour.run("--json", "--config", str(tour.config), "verify", subject).json
    assert as_json["allowed"] is True and as_json["content_verified"] is True and as_json["bytes_hashed"] > 0


def test_verify_config_refuses_a_key_its_trust_rule_does_not_name(tour: Tour, busybox_layout: Path) -> None:
    """First match wins: a key trusted only by the catch-all rule cannot vouch for an image of the narrow rule."""
    tour.notary.key("release")
    tour.policy(["registry.example/team/*"], keys='["release.key.pub"]')
    tour.config.write_text(tour.config.read_text() + '[[policy.trust]]\nimages = ["*"]\nkeys = ["ci.key.pub"]\n')
    subject = f"oci:{busybox_layout}:v1"
    tour.notarize(subject, f"{NAME}:1.0")
    result = tour.run("--config", str(tour.config), "verify", subject, "--name", f"{NAME}:1.0", expect=1)
    assert "not notarized by any trusted key" in result.err
    assert "refused" in tour.gate_check(subject, "--name", f"{NAME}:1.0", expect=1).err


def test_verify_config_refuses_a_name_the_records_do_not_bind(tour: Tour, busybox_layout: Path) -> None:
    subject = f"oci:{busybox_layout}:v1"
    tour.notarize(subject, f"{NAME}:1.0")
    result = tour.run("--config", str(tour.config), "verify", subject, "--name", "registry.example/team/x:1",
                      expect=1)
    assert "not notarized under the name registry.example/team/x" in result.err


def test_verify_config_of_an_image_no_rule_matches_is_refused_and_says_why(tour: Tour,
                                                                          busybox_layout: Path) -> None:
    subject = f"oci:{busybox_layout}:v1"
    tour.notarize(subject, f"{NAME}:1.0")
    unnamed = tour.run("--config", str(tour.config), "verify", subject, expect=1)
    assert "no trust rule in the policy matches image (unnamed)" in unnamed.err and "--name" in unnamed.err
    elsewhere = tour.run("--config", str(tour.config), "verify", subject, "--name", "quay.io/x/y", expect=1)
    assert "matches image quay.io/x/y" in elsewhere.err


def test_verify_without_a_key_or_a_policy_is_still_a_usage_error(tour: Tour, busybox_layout: Path) -> None:
    subject = f"oci:{busybox_layout}:v1"
    tour.notarize(subject, f"{NAME}:1.0")
    tour.config.write_text(f'ledger = "{tour.notary.ledger_url}"\n')
    result = tour.run("--config", str(tour.config), "verify", subject, expect=2)
    assert "no trusted key given" in result.err and result.err.count("\n") == 1


def test_verify_config_applies_the_policys_max_age(tour: Tour, busybox_layout: Path) -> None:
    subject = f"oci:{busybox_layout}:v1"
    tour.notarize(subject, f"{NAME}:1.0")
    tour.policy(["registry.example/team/*"], extra='max_age = "1s"\n')
    time.sleep(2.1)
    result = tour.run("--config", str(tour.config), "verify", subject, "--name", NAME, expect=1)
    assert "older than" in result.err or "too old" in result.err
    assert "trusted" in tour.run("--config", str(tour.config), "verify", subject, "--name", NAME,
                                 "--max-age", "1d").out


# ------------------------------------------------------------------------------------------------ C: the hook


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_name_annotation_without_digest_is_refused_with_the_missing_annotation_named(
        tour: Tour, busybox_layout: Path, tmp_path: Path, runtime: str) -> None:
    """A bundle that names its image but gives no digest, and nothing else that would: never admitted."""
    tour.notarize(f"oci:{busybox_layout}:v1", f"{NAME}:1.0")
    trace = tmp_path / "trace"
    notes = {"dev.notary.image.name": f"{NAME}:1.0", **hook_output_annotations(runtime, tmp_path)}
    bundle = runc_bundle(busybox_layout, "v1", tmp_path / "bundle", trace, tour.hook(), annotations=notes)
    (bundle / "umoci.json").unlink()  # a bundle assembled by hand: nothing but the name says what it is
    proc = run_bundle(runtime, bundle, tmp_path / f"{runtime}-state")
    assert proc.returncode != 0 and not (trace / "ran").exists()
    output = proc.stdout + proc.stderr
    assert "annotation dev.notary.image.digest is missing" in output, output
    line = tour.decisions()[-1]
    assert '"dev.notary.image.digest": "sha256:<manifest digest>"' in str(line["reason"])  # runc escapes quotes
    assert line["allowed"] is False and line["exit_code"] == 1 and line["image"] == f"{NAME}:1.0"
    assert line["digest"] is None and line["via"] == "policy" and line["identified_by"] == "annotation"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_name_annotation_cannot_lend_its_name_to_an_image_notarized_under_another(
        tour: Tour, busybox_layout: Path, tmp_path: Path, runtime: str) -> None:
    """An attacker's bundle claims a trusted repository's name for an image signed for another one."""
    tour.policy(["registry.example/*"])
    tour.notarize(f"oci:{busybox_layout}:v1", "registry.example/team/sandbox:1.0")
    trace = tmp_path / "trace"
    notes = {"dev.notary.image.name": "registry.example/prod/payments:1.0",
             **hook_output_annotations(runtime, tmp_path)}
    bundle = runc_bundle(busybox_layout, "v1", tmp_path / "bundle", trace, tour.hook(), annotations=notes)
    proc = run_bundle(runtime, bundle, tmp_path / f"{runtime}-state")
    assert proc.returncode != 0 and not (trace / "ran").exists()
    assert "not notarized under the name registry.example/prod/payments" in proc.stdout + proc.stderr
    assert tour.decisions()[-1]["status"] == "name-mismatch"


def test_name_annotation_cannot_rename_an_image_podman_knows(tour: Tour, podman: Podman, busybox_layout_template: Path,
                                                            tmp_path: Path) -> None:
    """With the runtime's storage as the digest source, the annotation may pick one of the runtime's names for
    the image, never add one: the name decides the trust rule and which records count."""
    stored = f"localhost{busybox_layout_template}"  # what podman calls an image run from an oci: path
    tour.policy(["localhost/*", "registry.example/*"])
    tour.notarize(f"oci:{busybox_layout_template}:v1", stored, f"{NAME}:1.0")
    tour.run("--config", str(tour.config), "gate", "install", "podman", "--hooks-dir", str(podman.hooks_dir))

    def run(name: str) -> tuple[int, str, Path]:
        trace = tmp_path / f"trace-{len(list(tmp_path.glob('trace-*')))}"
        trace.mkdir()
        proc = podman.run("run", "--rm", "--network", "none", "--annotation", f"dev.notary.image.name={name}",
                          "-v", f"{trace}:/trace", f"oci:{busybox_layout_template}:v1",
                          "/bin/sh", "-c", "echo ran > /trace/ran")
        return proc.returncode, proc.stdout + proc.stderr, trace / "ran"

    code, output, ran = run(f"{NAME}:1.0")  # notarized under it, but podman does not call the image that
    assert code != 0 and not ran.exists()
    assert f"podman's storage knows the container's image as {stored}" in output, output
    assert tour.decisions()[-1]["exit_code"] == 2
    code, output, ran = run(f"{stored}:v1")
    assert code == 0 and ran.exists(), output
    line = tour.decisions()[-1]
    assert line["identified_by"] == "podman" and line["image"] == f"{stored}:v1" and line["allowed"] is True
