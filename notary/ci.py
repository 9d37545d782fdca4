"""CI context for records, read from an allow-list of non-secret variables.

The ledger is immutable: a secret written once stays forever. So this module never iterates the
environment; it reads only the variable names listed below, each known to hold an identifier or a URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from notary.errors import UsageError

_SAFE_VALUE = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,511}\Z")


@dataclass(frozen=True)
class _System:
    name: str
    marker: str
    job_id: tuple[str, ...]
    run_url: str | None = None
    commit: str | None = None
    ref: str | None = None
    pipeline: str | None = None
    runner: str | None = None
    project: str | None = None


# Each tuple in job_id is tried in order; the first set variable wins.
SYSTEMS: tuple[_System, ...] = (
    _System("github", "GITHUB_ACTIONS", ("GITHUB_RUN_ID",), None, "GITHUB_SHA", "GITHUB_REF",
            "GITHUB_WORKFLOW", "RUNNER_NAME", "GITHUB_REPOSITORY"),
    _System("gitlab", "GITLAB_CI", ("CI_JOB_ID",), "CI_JOB_URL", "CI_COMMIT_SHA", "CI_COMMIT_REF_NAME",
            "CI_PIPELINE_ID", "CI_RUNNER_ID", "CI_PROJECT_PATH"),
    _System("jenkins", "JENKINS_URL", ("BUILD_TAG", "BUILD_NUMBER"), "BUILD_URL", "GIT_COMMIT", "GIT_BRANCH",
            "JOB_NAME", "NODE_NAME", None),
    _System("circleci", "CIRCLECI", ("CIRCLE_WORKFLOW_JOB_ID", "CIRCLE_BUILD_NUM"), "CIRCLE_BUILD_URL",
            "CIRCLE_SHA1", "CIRCLE_BRANCH", "CIRCLE_WORKFLOW_ID", None, "CIRCLE_PROJECT_REPONAME"),
    _System("tekton", "TEKTON_PIPELINE_RUN", ("TEKTON_TASK_RUN", "TEKTON_PIPELINE_RUN"), None, "GIT_COMMIT",
            None, "TEKTON_PIPELINE_RUN", None, None),
)

#: Every environment variable this module may ever read. Tests assert nothing else reaches a record.
ALLOWED_VARIABLES = frozenset(
    v
    for s in SYSTEMS
    for v in (s.marker, *s.job_id, s.run_url, s.commit, s.ref, s.pipeline, s.runner, s.project)
    if v
) | {"GITHUB_SERVER_URL", "GITHUB_RUN_ATTEMPT"}


def _get(env: Mapping[str, str], name: str | None) -> str | None:
    if not name:
        return None
    value = env.get(name)
    if value is None or not _SAFE_VALUE.match(value):
        return None
    return value


def clean_url(value: str | None) -> str | None:
    """A URL-valued variable as it may be recorded: scheme, host, port and path only.

    CI systems put tokens in URLs (`https://user:token@ci/...`, `?circle-token=...`); the ledger is forever, so
    userinfo, query and fragment are dropped, and anything that is not a plain http(s) URL is not recorded."""
    if not value:
        return None
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(value)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def detect(env: Mapping[str, str], job_id: str | None = None) -> dict[str, str]:
    """CI context for the record: system, jobId, runUrl, commit, ref, pipeline, runner, project (when known).

    An explicit job_id wins over the detected one; with neither, a UsageError says how to give one.
    """
    context: dict[str, str] = {}
    for system in SYSTEMS:
        if not env.get(system.marker):
            continue
        context["system"] = system.name
        detected = next((v for v in (_get(env, n) for n in system.job_id) if v), None)
        if detected:
            context["jobId"] = detected
        for field_name, var in (
            ("runUrl", system.run_url),
            ("commit", system.commit),
            ("ref", system.ref),
            ("pipeline", system.pipeline),
            ("runner", system.runner),
            ("project", system.project),
        ):
            value = _get(env, var)
            if value and field_name == "runUrl":
                value = clean_url(value)
            if value:
                context[field_name] = value
        if system.name == "github":
            server, repo, run = clean_url(_get(env, "GITHUB_SERVER_URL")), _get(env, "GITHUB_REPOSITORY"), detected
            if server and repo and run:
                context["runUrl"] = f"{server}/{repo}/actions/runs/{run}"
            attempt = _get(env, "GITHUB_RUN_ATTEMPT")
            if detected and attempt:
                context["jobId"] = f"{detected}-{attempt}"
        break
    if job_id is not None:
        if not _SAFE_VALUE.match(job_id) or "/" in job_id or " " in job_id:
            raise UsageError(f"--job-id {job_id!r} must be printable ASCII without spaces or '/'")
        context["jobId"] = job_id
    if "jobId" not in context:
        raise UsageError(
            "no CI job id: not running under a known CI system",
            hint="pass --job-id ID (e.g. --job-id \"$CI_JOB_ID\")",
        )
    context.setdefault("system", "local")
    return context
