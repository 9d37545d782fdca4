"""CI context: only allow-listed, non-secret variables ever reach the immutable ledger."""

from __future__ import annotations

import json

import pytest

from notary import ci, keys, records
from notary.errors import UsageError

SECRETS = {
    "GITHUB_TOKEN": "ghs_supersecretvalue1",
    "ACTIONS_RUNTIME_TOKEN": "runtime-secret-2",
    "CI_JOB_TOKEN": "glcbt-secret-3",
    "CI_REGISTRY_PASSWORD": "secret-4",
    "AWS_SECRET_ACCESS_KEY": "secret-5",
    "NOTARY_SIGNING_KEY": "-----BEGIN PRIVATE KEY----- secret-6",
}


def test_github_actions_context_is_detected() -> None:
    env = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "987", "GITHUB_RUN_ATTEMPT": "2", "GITHUB_SHA": "abc123",
           "GITHUB_REF": "refs/heads/main", "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r"}
    ctx = ci.detect(env)
    assert ctx["system"] == "github"
    assert ctx["jobId"] == "987-2"
    assert ctx["runUrl"] == "https://github.com/o/r/actions/runs/987"
    assert ctx["commit"] == "abc123"


def test_gitlab_context_is_detected_and_explicit_job_id_wins() -> None:
    env = {"GITLAB_CI": "true", "CI_JOB_ID": "55", "CI_JOB_URL": "https://gitlab.example/j/55", "CI_COMMIT_SHA": "f00"}
    assert ci.detect(env)["jobId"] == "55"
    assert ci.detect(env, "override-1")["jobId"] == "override-1"


def test_no_ci_and_no_job_id_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--job-id"):
        ci.detect({})


@pytest.mark.parametrize("system_env", [
    {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "1"},
    {"GITLAB_CI": "true", "CI_JOB_ID": "2"},
    {"JENKINS_URL": "https://j", "BUILD_TAG": "jenkins-x-3"},
    {"CIRCLECI": "true", "CIRCLE_BUILD_NUM": "4"},
])
def test_ci_tokens_never_reach_the_record(system_env: dict[str, str]) -> None:
    env = {**system_env, **SECRETS}
    key = keys.generate_private_key()
    record = records.new_record("notarization", {"digest": "sha256:" + "0" * 64}, key, ci=ci.detect(env))
    envelope = records.sign_record(record, key).decode()
    payload = json.dumps(record.to_payload())
    for secret in SECRETS.values():
        assert secret not in envelope and secret not in payload


def test_only_allow_listed_variables_are_read() -> None:
    class Spy(dict):
        read: set[str] = set()

        def get(self, name, default=None):  # type: ignore[override]
            Spy.read.add(name)
            return super().get(name, default)

    env = Spy({"GITLAB_CI": "true", "CI_JOB_ID": "7", **SECRETS})
    ci.detect(env)
    assert Spy.read <= ci.ALLOWED_VARIABLES
