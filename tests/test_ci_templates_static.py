"""The templates no runner here can execute whole: Tekton (no cluster) and Jenkins (no Jenkins server).

- Tekton: ci-templates/tekton-task.yaml passes Tekton's own validation (scripts/tekton-validate: strict
  decoding, SetDefaults and Validate of tektoncd/pipeline v1, what its admission webhook runs), and its step
  script, with Tekton's variable substitutions and the Secret/ConfigMap mounts done by this test, notarizes a
  real image pushed to a real registry into a real ledger, and fails when verification fails.
- Jenkins: ci-templates/Jenkinsfile passes npm-groovy-lint (Groovy parser + CodeNarc's Jenkinsfile rules) with
  nothing reported at any level.
Each tool is also shown to reject a broken copy, so these tests can fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.ci_runners import (
    REPO,
    KeyPair,
    Wheel,
    auditor,
    clean_env,
    job_pip_env,
    new_key_pair,
    runner_bin,
)
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.integration

TEKTON = REPO / "ci-templates" / "tekton-task.yaml"
JENKINSFILE = REPO / "ci-templates" / "Jenkinsfile"


def _tekton_validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(runner_bin("tekton-validate")), str(path)], capture_output=True, text=True,
                          timeout=120, check=False)


def test_tekton_task_passes_tektons_own_validation() -> None:
    proc = _tekton_validate(TEKTON)
    assert proc.returncode == 0, proc.stderr
    task = json.loads(proc.stdout.splitlines()[0])
    assert task["metadata"]["name"] == "notary-notarize"


@pytest.mark.parametrize(("broken", "expected"), [
    (("$(params.ledger)", "$(params.ledgr)"), "non-existent variable"),
    (("    - name: notarize-and-verify\n", "    - name: notarize-and-verify\n      retries: 2\n"),
     'unknown field "retries"'),  # a PipelineTask field, not a Step's
])
def test_tekton_validation_rejects_a_broken_task(tmp_path: Path, broken: tuple[str, str], expected: str) -> None:
    bad = tmp_path / "task.yaml"
    bad.write_text(TEKTON.read_text().replace(*broken, 1))
    proc = _tekton_validate(bad)
    assert proc.returncode == 1 and expected in proc.stderr, proc.stderr


def _substitute(text: str, values: dict[str, str]) -> str:
    """Tekton's `$(...)` replacement: every reference must resolve (Tekton would refuse the run otherwise)."""
    def one(match: re.Match[str]) -> str:
        assert match.group(1) in values, f"the test does not provide $({match.group(1)})"
        return values[match.group(1)]

    return re.sub(r"\$\(((?:params|context|results|workspaces)\.[A-Za-z0-9_.-]+)\)", one, text)


def _run_tekton_step(tmp_path: Path, task: dict[str, Any], params: dict[str, str], secrets: dict[str, dict[str, str]],
                     mounts: dict[str, Path], pip_env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the Task's only step on this host as a TaskRun would: params with defaults, context names, a
    results file, a bound output workspace, /tekton/home and the volume mounts as local directories."""
    spec = task["spec"]
    home, results, workspace = tmp_path / "tekton-home", tmp_path / "results", tmp_path / "workspace"
    for d in (home, results, workspace):
        d.mkdir()
    values = {f"params.{p['name']}": p.get("default", "") for p in spec["params"]}
    values.update({f"params.{k}": v for k, v in params.items()})
    values.update({"context.pipelineRun.name": "release-run-1", "context.taskRun.name": "release-run-1-notarize",
                   "workspaces.output.bound": "true", "workspaces.output.path": str(workspace)})
    values.update({f"results.{r['name']}.path": str(results / r["name"]) for r in spec["results"]})
    (step,) = spec["steps"]

    def local(text: str) -> str:
        text = _substitute(text, values).replace("/tekton/home", str(home))
        for mount in step["volumeMounts"]:
            text = text.replace(mount["mountPath"], str(mounts[mount["name"]]))
        return text

    env = clean_env(tmp_path / "user-home", **pip_env)
    for item in step["env"]:
        if "value" in item:
            env[item["name"]] = local(item["value"])
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        if ref["name"] in secrets:
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
        else:
            assert ref.get("optional"), f"secret {ref['name']} is required by the Task"
    script = tmp_path / "step.sh"
    script.write_text(local(step["script"]))
    proc = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=600, check=False)
    return proc, results


def _tekton_run(tmp_path: Path, wheel: Wheel, house: Path, layout: Path, registry: RegistryServer,
                signer: KeyPair, trusted: KeyPair) -> tuple[subprocess.CompletedProcess[str], Path, str, Path]:
    proc = _tekton_validate(TEKTON)
    assert proc.returncode == 0, proc.stderr
    task = json.loads(proc.stdout.splitlines()[0])
    digest = registry.push(layout, "v1", "team/app:v1")
    signing, trusted_dir = tmp_path / "signing", tmp_path / "trusted"
    signing.mkdir()
    trusted_dir.mkdir()
    shutil.copy(signer.private, signing / "signing.key")
    shutil.copy(trusted.public, trusted_dir / "ci.pub")
    ledger = tmp_path / "ledger.db"
    params = {"image": f"{registry}/team/app@{digest}", "wheel-url": wheel.url, "wheel-sha256": wheel.sha256,
              "ledger": ledger.as_uri(), "extra-args": "--insecure",
              "create-ledger": "true"}
    secrets = {"notary-registry": {"username": registry.username or "", "password": registry.password or ""}}
    run, results = _run_tekton_step(tmp_path, task, params, secrets,
                                    {"signing-key": signing, "trusted-keys": trusted_dir}, job_pip_env(house))
    return run, results, digest, ledger


@pytest.mark.slow
def test_tekton_step_notarizes_and_verifies_a_pushed_image(
        tmp_path: Path, notary_wheel: Wheel, wheelhouse: Path, busybox_layout: Path,
        auth_registry: RegistryServer) -> None:
    signer = new_key_pair(tmp_path / "keys", "ci")
    run, results, digest, ledger = _tekton_run(tmp_path, notary_wheel, wheelhouse, busybox_layout, auth_registry,
                                               signer, signer)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (results / "subject").read_text() == f"registry://{auth_registry}/team/app@{digest}"
    assert digest in (tmp_path / "workspace" / "notarization.json").read_text()
    found = auditor(tmp_path, ledger).run("--json", "lookup", "--job-id", "release-run-1-notarize", expect=None)
    assert found.code == 0 and digest in found.out, "the TaskRun name is the recorded job id"


@pytest.mark.slow
def test_tekton_step_fails_when_verification_fails(
        tmp_path: Path, notary_wheel: Wheel, wheelhouse: Path, busybox_layout: Path,
        auth_registry: RegistryServer) -> None:
    signer, stranger = new_key_pair(tmp_path / "keys", "ci"), new_key_pair(tmp_path / "keys", "stranger")
    run, results, _digest, ledger = _tekton_run(tmp_path, notary_wheel, wheelhouse, busybox_layout, auth_registry,
                                                signer, stranger)
    assert run.returncode == 1, run.stderr[-3000:]
    assert "not notarized by any trusted key" in run.stderr
    assert ledger.exists() and not (results / "subject").exists()


def _groovy_lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(runner_bin("npm-groovy-lint")), "--noserver", "--config", "recommended-jenkinsfile", "--failon", "info",
         "--output", "txt", path.name],
        cwd=path.parent, capture_output=True, text=True, timeout=300, check=False)


def test_jenkinsfile_passes_groovy_lint_with_jenkinsfile_rules(tmp_path: Path) -> None:
    shutil.copy(JENKINSFILE, tmp_path / "Jenkinsfile")
    proc = _groovy_lint(tmp_path / "Jenkinsfile")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 linted files" in re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout), proc.stdout[-2000:]


def test_groovy_lint_rejects_a_broken_jenkinsfile(tmp_path: Path) -> None:
    (tmp_path / "Jenkinsfile").write_text(JENKINSFILE.read_text().rstrip().removesuffix("}"))
    proc = _groovy_lint(tmp_path / "Jenkinsfile")
    assert proc.returncode != 0 and "NglParseError" in proc.stdout, proc.stdout[-2000:]


# ------------------------------------------------------------------------------------------------ pinning

PINNED_FILES = (*sorted((REPO / "ci-templates").iterdir()), REPO / ".github" / "actions" / "notary" / "action.yml")
COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
IMAGE_DIGEST = re.compile(r"(?P<name>[^@\s]+):(?P<tag>[^:@/\s]+)@sha256:[0-9a-f]{64}")
# a YAML `uses:` / `image:` (block or flow style, optionally `image: {name: ...}`), or a Jenkinsfile `image '...'`
REFERENCE = re.compile(r"(?:^|[\s{,-])(?P<key>uses|image):\s*(?:\{\s*name:\s*)?[\"']?(?P<ref>[^\s\"',}#]+)[\"']?"
                       r"(?P<rest>.*)$|(?:^|\s)(?P<gkey>image)\s*\(?\s*[\"'](?P<gref>[^\"']+)[\"']")


def references(text: str) -> list[tuple[int, str, str, str]]:
    """Every (line number, uses|image, reference, rest of the line) of a template; comment lines left out."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(("#", "//")):
            continue
        match = REFERENCE.search(line)
        if match and match["key"]:
            found.append((number, match["key"], match["ref"], match["rest"]))
        elif match and match["gkey"]:
            found.append((number, "image", match["gref"], ""))
    return found


def unpinned(text: str) -> list[str]:
    """What is not pinned: a `uses:` not at a full commit SHA with its tag as the comment, an image without a
    tag@sha256 digest. Local actions (`./...`) are files of the repository itself."""
    problems = []
    for number, key, ref, rest in references(text):
        if key == "uses":
            if ref.startswith("./"):
                continue
            action, _, version = ref.partition("@")
            if ref.startswith("docker://"):
                if not IMAGE_DIGEST.fullmatch(ref.removeprefix("docker://")):
                    problems.append(f"line {number}: {ref} is not pinned by tag@sha256 digest")
            elif not COMMIT_SHA.fullmatch(version):
                problems.append(f"line {number}: {ref} is not pinned by full commit SHA")
            elif not re.match(r"\s*#\s*v?\d", rest):
                problems.append(f"line {number}: {action}@{version[:12]}… has no `# vX.Y.Z` comment saying its tag")
        elif not IMAGE_DIGEST.fullmatch(ref):
            problems.append(f"line {number}: image {ref} is not pinned as NAME:TAG@sha256:DIGEST")
    return problems


@pytest.mark.parametrize("path", PINNED_FILES, ids=lambda p: p.name)
def test_every_action_and_image_in_the_templates_is_pinned(path: Path) -> None:
    assert unpinned(path.read_text()) == []


def test_the_templates_reference_the_actions_and_images_they_pin() -> None:
    """The scan sees what it guards: a scanner that found nothing would pass every template."""
    seen = {ref.partition("@")[0] for path in PINNED_FILES for _, _, ref, _ in references(path.read_text())}
    assert {"actions/checkout", "actions/upload-artifact", "docker/setup-buildx-action",
            "python:3.12-slim", "docker.io/library/python:3.12-slim"} <= seen


@pytest.mark.parametrize("line", [
    "      - uses: actions/checkout@v4",
    "      - uses: actions/checkout@main  # v4.4.0",
    "      - uses: actions/checkout@11d5960a  # v4.4.0",  # a short SHA can collide
    "      - uses: actions/checkout@11d5960a326750d5838078e36cf38b85af677262",  # no tag for readers
    "    steps: [{uses: 'docker/setup-buildx-action@v3'}]",
    "      - uses: docker://alpine:3.20",
])
def test_mutable_action_tag_is_refused(line: str) -> None:
    assert unpinned(f"steps:\n{line}\n"), line


@pytest.mark.parametrize("line", [
    "  image: python:3.12-slim",
    "      image: docker.io/library/python:3.12-slim",
    "  image: {name: python:3.12-slim, entrypoint: ['']}",
    '  image: "python@sha256:229a2c5bfa27522db7815ea81f9bed70af17ccb9de9fc7ad142b1877b5830d36"',  # no tag
    "        docker { image 'python:3.12-slim' }",
])
def test_mutable_image_tag_is_refused(line: str) -> None:
    assert unpinned(f"job:\n{line}\n"), line


def test_pinned_references_pass_the_check() -> None:
    assert unpinned(
        "      - uses: ./.github/actions/notary\n"
        "      - uses: actions/checkout@11d5960a326750d5838078e36cf38b85af677262  # v4.4.0\n"
        "  image: python:3.12-slim@sha256:229a2c5bfa27522db7815ea81f9bed70af17ccb9de9fc7ad142b1877b5830d36\n"
        "  # image: python:3.12-slim   (a comment is not a reference)\n") == []
