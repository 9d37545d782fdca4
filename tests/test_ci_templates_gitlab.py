"""ci-templates/gitlab-ci.yml runs under a real GitLab CI runner: `gitlab-ci-local`, in shell mode.

A pipeline includes the template as written, after a `build` job (the user's part, here a stand-in) that
pushes a real umoci-built image to a real registry on loopback behind basic auth with skopeo and publishes
its digest as a dotenv report, as the template asks. The template's job installs notary from the wheel
`make dist` builds, by URL and sha256, notarizes `registry://$CI_REGISTRY_IMAGE@$IMAGE_DIGEST` with the job's
registry credentials into a real embedded ledger, and verifies it: the job fails unless verification passes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.ci_runners import (
    REPO,
    KeyPair,
    Wheel,
    auditor,
    clean_env,
    git_repo,
    job_pip_env,
    new_key_pair,
    runner_bin,
)
from tests.support.integration import require_tool
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TEMPLATE = REPO / "ci-templates" / "gitlab-ci.yml"
PIPELINE = """\
include:
  - local: notary.gitlab-ci.yml
stages: [build, test, deploy]
build:
  stage: build
  script:
    - >-
      skopeo copy --quiet --dest-tls-verify=false --dest-creds "$CI_REGISTRY_USER:$CI_REGISTRY_PASSWORD"
      --digestfile digest "oci:$NOTARY_TEST_LAYOUT:v1" "docker://$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA"
    - echo "IMAGE_DIGEST=$(cat digest)" > build.env
  artifacts:
    reports:
      dotenv: build.env
"""


def _yaml_block(value: str, indent: str = "  ") -> str:
    """A YAML literal block scalar holding value (PEM texts keep their newlines)."""
    return "|\n" + "".join(f"{indent}{line}\n" for line in value.splitlines())


class PipelineRun:
    def __init__(self, proc: subprocess.CompletedProcess[str], repo: Path) -> None:
        self.proc = proc
        self.repo = repo

    @property
    def log(self) -> str:
        return self.proc.stdout + self.proc.stderr


def _run_pipeline(tmp_path: Path, wheel: Wheel, house: Path, layout: Path, registry: RegistryServer,
                  ledger: Path, signer: KeyPair, trusted_pem: str, *, pipeline: str = PIPELINE) -> PipelineRun:
    require_tool("skopeo")
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(TEMPLATE, repo / "notary.gitlab-ci.yml")
    (repo / ".gitlab-ci.yml").write_text(pipeline)
    (repo / ".gitignore").write_text(".gitlab-ci-local/\n")
    git_repo(repo, remote="https://gitlab.example.invalid/team/app.git")
    # CI/CD variables, as a project would define them (PEM texts as multi-line values)
    variables = {
        "CI_REGISTRY_IMAGE": f"{registry}/team/app",
        "CI_REGISTRY_USER": registry.username or "",
        "CI_REGISTRY_PASSWORD": registry.password or "",
        "NOTARY_WHEEL_URL": wheel.url,
        "NOTARY_WHEEL_SHA256": wheel.sha256,
        "NOTARY_LEDGER": ledger.as_uri(),
        "NOTARY_CREATE_LEDGER": "1",
        "NOTARY_ARGS": "--insecure",
    }
    lines = [f"{name}: {json.dumps(value)}\n" for name, value in variables.items()]
    lines.append(f"NOTARY_SIGNING_KEY: {_yaml_block(signer.private_pem)}")
    lines.append(f"NOTARY_PUBLIC_KEY: {_yaml_block(trusted_pem)}")
    variables_file = tmp_path / "variables.yml"
    variables_file.write_text("".join(lines))
    env = clean_env(tmp_path / "home", NOTARY_TEST_LAYOUT=str(layout), NOTARY_STATE_DIR=str(tmp_path / "job-state"),
                    # GitLab predefines these; a local run has to set them (gitlab-ci-local warns otherwise)
                    GCL_IGNORE_PREDEFINED_VARS="CI_REGISTRY_IMAGE,CI_REGISTRY_USER,CI_REGISTRY_PASSWORD",
                    **job_pip_env(house))
    # gitlab-ci-local resolves --variables-file against the project directory: kept outside it (it holds a key)
    argv = [str(runner_bin("gitlab-ci-local")), "--force-shell-executor", "--no-color",
            "--variables-file", f"../{variables_file.name}", "--home", str(tmp_path / "home" / ".gitlab-ci-local")]
    proc = subprocess.run(argv, cwd=repo, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=600, check=False)
    return PipelineRun(proc, repo)


def test_gitlab_template_notarizes_and_verifies_a_pushed_image(
        tmp_path: Path, notary_wheel: Wheel, wheelhouse: Path, busybox_layout: Path,
        auth_registry: RegistryServer) -> None:
    signer = new_key_pair(tmp_path / "keys", "ci")
    ledger = tmp_path / "ledger.db"
    run = _run_pipeline(tmp_path, notary_wheel, wheelhouse, busybox_layout, auth_registry, ledger, signer,
                        signer.public_pem)
    assert run.proc.returncode == 0, run.log[-5000:]
    assert re.search(r"PASS\s+notarize", run.log), run.log[-5000:]
    digest = (run.repo / "digest").read_text().strip()  # what the build job pushed (shell mode: runs in place)
    result = auditor(tmp_path, ledger).run("--json", "verify", f"registry://{auth_registry}/team/app@{digest}", "--insecure",
                         "--key", str(signer.public),
                         env={"NOTARY_REGISTRY_USERNAME": auth_registry.username or "",
                              "NOTARY_REGISTRY_PASSWORD": auth_registry.password or ""})
    assert result.code == 0
    assert auth_registry.password not in (ledger.read_bytes().decode("latin-1")), "no credential reaches the ledger"


def test_gitlab_template_fails_the_job_when_verification_fails(
        tmp_path: Path, notary_wheel: Wheel, wheelhouse: Path, busybox_layout: Path,
        auth_registry: RegistryServer) -> None:
    signer = new_key_pair(tmp_path / "keys", "ci")
    stranger = new_key_pair(tmp_path / "keys", "stranger")
    ledger = tmp_path / "ledger.db"
    run = _run_pipeline(tmp_path, notary_wheel, wheelhouse, busybox_layout, auth_registry, ledger, signer,
                        stranger.public_pem)
    assert run.proc.returncode != 0, run.log[-5000:]
    assert re.search(r"PASS\s+build", run.log) and re.search(r"FAIL\s+notarize", run.log), run.log[-5000:]
    assert "is not notarized by any trusted key" in run.log, run.log[-5000:]
    # notarize ran and wrote its record: what failed the job is the verification's refusal
    assert "$ notary verify" in run.log and ledger.exists()


def test_gitlab_template_without_the_build_digest_fails_with_one_clear_line(
        tmp_path: Path, notary_wheel: Wheel, wheelhouse: Path, busybox_layout: Path,
        auth_registry: RegistryServer) -> None:
    signer = new_key_pair(tmp_path / "keys", "ci")
    no_dotenv = PIPELINE.split("  artifacts:")[0]  # a build job that does not publish IMAGE_DIGEST
    run = _run_pipeline(tmp_path, notary_wheel, wheelhouse, busybox_layout, auth_registry, tmp_path / "ledger.db",
                        signer, signer.public_pem, pipeline=no_dotenv)
    assert run.proc.returncode != 0 and re.search(r"FAIL\s+notarize", run.log), run.log[-5000:]
    assert "IMAGE_DIGEST is not set" in run.log
    assert not (tmp_path / "ledger.db").exists()
