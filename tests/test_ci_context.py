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


def test_job_id_with_a_trailing_newline_never_reaches_a_ledger_key() -> None:
    with pytest.raises(UsageError, match="printable ASCII"):
        ci.detect({}, "55\n")
    with pytest.raises(UsageError, match="no CI job id"):
        ci.detect({"GITLAB_CI": "true", "CI_JOB_ID": "55\n"})


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


@pytest.mark.parametrize("system_env, url_var", [
    ({"GITLAB_CI": "true", "CI_JOB_ID": "2"}, "CI_JOB_URL"),
    ({"JENKINS_URL": "https://j", "BUILD_TAG": "jenkins-x-3"}, "BUILD_URL"),
    ({"CIRCLECI": "true", "CIRCLE_BUILD_NUM": "4"}, "CIRCLE_BUILD_URL"),
    ({"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "1", "GITHUB_REPOSITORY": "o/r"}, "GITHUB_SERVER_URL"),
])
@pytest.mark.parametrize("url", [
    "https://ci-user:tok3n-s3cret@ci.example:8443/job/9/?circle-token=tok3n-s3cret#tok3n-s3cret",
    "https://ci.example:8443/job/9/?token=tok3n-s3cret",
    "https://tok3n-s3cret@ci.example:8443/job/9/",
])
def test_token_in_ci_url_never_reaches_the_ledger(system_env: dict[str, str], url_var: str, url: str,
                                                   tmp_path) -> None:  # noqa: ANN001 - pytest fixture
    """Through the real notarize into a real ledger: no byte of the token is stored, the URL's host stays."""
    from notary.ledger import open_ledger
    from notary.notarize import notarize
    from notary.sources.base import Subject

    context = ci.detect({**system_env, url_var: url})
    assert "tok3n-s3cret" not in json.dumps(context)
    assert context["runUrl"].startswith("https://ci.example:8443/")
    key = keys.generate_private_key()
    ledger = open_ledger((tmp_path / "l.db").as_uri(), state_dir=tmp_path / "state")
    try:
        notarize(ledger, [Subject("sha256:" + "0" * 64, "app", "file")], key, context)
    finally:
        ledger.close()
    assert b"tok3n-s3cret" not in (tmp_path / "l.db").read_bytes()
    wal = tmp_path / "l.db-wal"
    assert not wal.exists() or b"tok3n-s3cret" not in wal.read_bytes()


@pytest.mark.parametrize("url", ["ftp://ci.example/x", "javascript:alert(1)", "https://[::1", "not a url"])
def test_ci_url_that_is_not_plain_http_is_not_recorded(url: str) -> None:
    assert "runUrl" not in ci.detect({"GITLAB_CI": "true", "CI_JOB_ID": "2", "CI_JOB_URL": url})
