"""ci-templates/github-actions.yml and .github/actions/notary run under a real GitHub Actions runner: `act`.

act runs the workflow on this host (`-P ubuntu-latest=-self-hosted`: no Docker engine): it installs notary
from the wheel `make dist` builds, by URL and sha256, notarizes a real umoci-built image into a real embedded
ledger with the signing key from a secret, and verifies it against the public key from a variable. Only the
build steps between the template's `# >>> build` markers are swapped for a copy of the umoci image (they need
Docker with BuildKit); `actions/checkout` is act's own local copy, and `actions/upload-artifact` (a GitHub
service) is replaced by a local action that copies the file, through act's --local-repository.
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
from tests.support.images import manifest_of
from tests.support.immudb import ImmudbServer, fresh_immudb_url

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TEMPLATE = REPO / "ci-templates" / "github-actions.yml"
ACTION = REPO / ".github" / "actions" / "notary"
BUILD_BLOCK = re.compile(r"^( *)# >>> build.*?^ *# <<< build[^\n]*\n", re.S | re.M)
STAND_IN_BUILD = (
    "- name: Build an OCI layout (test stand-in, a umoci-built busybox image)\n"
    '  run: cp -a "$NOTARY_TEST_LAYOUT" image-layout\n'
)
UPLOAD_STUB = """\
name: upload-artifact (test stand-in for GitHub's artifact storage)
inputs:
  name: {required: true}
  path: {required: true}
runs:
  using: composite
  steps:
    - shell: bash
      run: mkdir -p "$NOTARY_TEST_ARTIFACTS/${{ inputs.name }}" && cp "${{ inputs.path }}" "$NOTARY_TEST_ARTIFACTS/${{ inputs.name }}/"
"""


def _pinned_uses(action: str) -> str:
    """The template's `uses:` of action, ACTION@SHA as pinned there: act's --local-repository matches the exact ref."""
    match = re.search(rf"uses: ({re.escape(action)}@[0-9a-f]{{40}})\b", TEMPLATE.read_text())
    assert match, f"the template does not use {action} pinned by commit SHA"
    return match.group(1)


def _workflow_with_stand_in_build() -> str:
    text = TEMPLATE.read_text()
    match = BUILD_BLOCK.search(text)
    assert match, "the template lost its `# >>> build` / `# <<< build` markers"
    indent = match.group(1)
    stand_in = "".join(indent + line + "\n" for line in STAND_IN_BUILD.splitlines())
    return text[:match.start()] + stand_in + text[match.end():]


class ActRun:
    def __init__(self, proc: subprocess.CompletedProcess[str], artifacts: Path) -> None:
        self.proc = proc
        self.artifacts = artifacts

    @property
    def log(self) -> str:
        return self.proc.stdout + self.proc.stderr

    def why(self) -> str:
        """The failed step and what it printed (act logs every step line; the tail alone may miss it)."""
        lines = self.log.splitlines()
        failed = [i for i, line in enumerate(lines) if "Failure - " in line]
        start = max(0, (failed[0] if failed else len(lines)) - 40)
        return "\n".join(lines[start:start + 60])


def _run_act(tmp_path: Path, wheel: Wheel, house: Path, layout: Path, ledger: Path | str, signer: KeyPair,
             trusted_pem: str, *, wheel_sha256: str | None = None, immudb_password: str = "") -> ActRun:
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "notarize.yml").write_text(_workflow_with_stand_in_build())
    shutil.copytree(ACTION, repo / ".github" / "actions" / "notary")
    (repo / "Dockerfile").write_text("FROM scratch\n")
    git_repo(repo)
    stub = tmp_path / "upload-artifact"
    stub.mkdir()
    (stub / "action.yml").write_text(UPLOAD_STUB)
    artifacts = tmp_path / "artifacts"
    env = clean_env(tmp_path / "home", NOTARY_TEST_LAYOUT=str(layout), NOTARY_TEST_ARTIFACTS=str(artifacts),
                    NOTARY_STATE_DIR=str(tmp_path / "job-state"), **job_pip_env(house))
    argv = [
        str(runner_bin("act")), "push", "-W", ".github/workflows/notarize.yml",
        "-P", "ubuntu-latest=-self-hosted", "--no-cache-server", "--action-offline-mode",
        "--action-cache-path", str(tmp_path / "act-cache"),
        "--local-repository", f"{_pinned_uses('actions/upload-artifact')}={stub}",
        "--var", f"NOTARY_WHEEL_URL={wheel.url}",
        "--var", f"NOTARY_WHEEL_SHA256={wheel_sha256 or wheel.sha256}",
        "--var", f"NOTARY_LEDGER={ledger if isinstance(ledger, str) else ledger.as_uri()}",
        "--var", "NOTARY_CREATE_LEDGER=true",
        "--var", f"NOTARY_PUBLIC_KEY={trusted_pem}",
        "--secret", f"NOTARY_SIGNING_KEY={signer.private_pem}",
        "--secret", f"NOTARY_IMMUDB_PASSWORD={immudb_password}",
    ]
    proc = subprocess.run(argv, cwd=repo, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=600, check=False)
    return ActRun(proc, artifacts)


def test_github_template_notarizes_and_verifies_a_real_image(
        tmp_path: Path, notary_wheel: Wheel, wheelhouse: Path, busybox_layout: Path) -> None:
    signer = new_key_pair(tmp_path / "keys", "ci")
    ledger = tmp_path / "ledger.db"
    run = _run_act(tmp_path, notary_wheel, wheelhouse, busybox_layout, ledger, signer, signer.public_pem)
    assert run.proc.returncode == 0, run.why()
    assert "Job succeeded" in run.log
    evidence = (run.artifacts / "notarization" / "notarization.json").read_text()
    json.loads(evidence)
    assert manifest_of(busybox_layout, "v1")[0] in evidence, "the evidence artifact names the image it notarized"
    # an independent client, with its own trust, finds the image notarized by the job's key, as GitHub's run
    result = auditor(tmp_path, ledger).run(
        "--json", "verify", f"oci:{busybox_layout}:v1", "--key", str(signer.public))
    assert result.code == 0
    assert "1-1" in json.dumps(result.json), "the job id (GITHUB_RUN_ID-GITHUB_RUN_ATTEMPT) is recorded"


def test_github_template_fails_the_job_when_verification_fails(
        tmp_path: Path, notary_wheel: Wheel, wheelhouse: Path, busybox_layout: Path) -> None:
    signer = new_key_pair(tmp_path / "keys", "ci")
    stranger = new_key_pair(tmp_path / "keys", "stranger")
    ledger = tmp_path / "ledger.db"
    run = _run_act(tmp_path, notary_wheel, wheelhouse, busybox_layout, ledger, signer, stranger.public_pem)
    assert run.proc.returncode != 0, run.log[-4000:]
    assert re.search(r"Failure - Main Verify", run.log), run.log[-4000:]
    assert not (run.artifacts / "notarization").exists(), "no step after a failed verification runs"
    # the record was written (notarize ran), so the failure is the verification's refusal, exit 1
    auditor(tmp_path, ledger).run(
        "verify", f"oci:{busybox_layout}:v1", "--key", str(signer.public))


def test_github_template_refuses_a_wheel_whose_hash_differs(
        tmp_path: Path, notary_wheel: Wheel, wheelhouse: Path, busybox_layout: Path) -> None:
    signer = new_key_pair(tmp_path / "keys", "ci")
    ledger = tmp_path / "ledger.db"
    run = _run_act(tmp_path, notary_wheel, wheelhouse, busybox_layout, ledger, signer, signer.public_pem,
                   wheel_sha256="0" * 64)
    assert run.proc.returncode != 0
    assert "HASHES" in run.log.upper() or "hash" in run.log, run.log[-3000:]
    assert not ledger.exists(), "nothing is notarized by a notary whose bytes were not the pinned ones"


def test_github_template_notarizes_into_immudb_with_the_password_secret(
        tmp_path: Path, notary_wheel: Wheel, wheelhouse: Path, busybox_layout: Path,
        immudb_server: ImmudbServer) -> None:
    url = fresh_immudb_url(immudb_server)
    signer = new_key_pair(tmp_path / "keys", "ci")
    run = _run_act(tmp_path, notary_wheel, wheelhouse, busybox_layout, url, signer, signer.public_pem,
                   immudb_password=immudb_server.password)
    assert run.proc.returncode == 0, run.why()
    auditor(tmp_path, url).run(
        "verify", f"oci:{busybox_layout}:v1", "--key", str(signer.public),
        env={"NOTARY_IMMUDB_PASSWORD": immudb_server.password})
