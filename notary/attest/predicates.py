"""What goes into an attestation from outside, bounded: predicate types, predicate files, SBOMs, and the
SLSA provenance notary writes itself from the CI context it detected (never a secret)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from notary import jsonsafe
from notary.errors import InputError, UsageError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"

SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document"
CYCLONEDX = "https://cyclonedx.org/bom"
# Predicate types a policy may require (an unknown one there is a usage error: a typo must not pass as "no
# such attestation, refuse everything" or, worse, be ignored). `attest` writes any https URI.
KNOWN_TYPES: Mapping[str, str] = {
    SLSA_PROVENANCE: "SLSA provenance v1",
    SPDX: "SPDX SBOM",
    CYCLONEDX: "CycloneDX SBOM",
    "https://slsa.dev/verification_summary/v1": "SLSA verification summary v1",
    "https://in-toto.io/attestation/test-result/v0.1": "in-toto test result",
    "https://in-toto.io/attestation/vulns/v0.1": "in-toto vulnerabilities",
    "https://in-toto.io/attestation/release/v0.1": "in-toto release",
    "https://in-toto.io/attestation/link/v0.3": "in-toto link",
    "https://in-toto.io/attestation/scai/attribute-report/v0.2": "SCAI attribute report",
    "https://in-toto.io/attestation/runtime-trace/v0.1": "runtime trace",
}
SBOM_TYPES = (SPDX, CYCLONEDX)
# the build type of the provenance `notarize --provenance` writes (docs/records.md, "Provenance")
BUILD_TYPE = "https://notary.dev/provenance/ci/v1"

MAX_PREDICATE = 1 << 20  # bytes, for predicates other than SBOMs
MAX_SBOM = 16 << 20  # bytes, an SBOM file
MAX_PREDICATE_DEPTH = 64
MAX_ENVELOPE = 24 << 20  # an SBOM of MAX_SBOM in base64, and the statement around it
MAX_IMMUDB_ENVELOPE = 3 << 20  # immudb answers over gRPC (its gateway too) with at most 4 MiB per message
MAX_SUBJECTS = 64
MAX_WRITE = 96 << 20  # one attestation is stored under each subject digest: the transaction's bound
TYPE_URI = re.compile(r"^https://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~\-/%+]*)?\Z")
HEX64 = re.compile(r"^[0-9a-f]{64}\Z")


class PredicateError(InputError):
    """A predicate file that is not a bounded JSON object (or not the SBOM it claims to be): exit 2."""

    kind = "bad-predicate"


class PredicateTypeError(UsageError):
    """A predicate type that is not an https URI, or not one a policy can require: exit 2."""

    kind = "usage"



# ---------------------------------------------------------------- predicates from outside


def _walk_check(value: object) -> None:
    """Floats must be finite (1e400 parses as infinity, which JSON cannot write back)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise PredicateError("the predicate holds a number too large for JSON (not finite)")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse_predicate(data: bytes, where: str) -> jsonsafe.JsonObject:
    """A predicate document: UTF-8 JSON, one non-empty object, no duplicate keys, at most 64 deep."""
    doc = jsonsafe.parse(data, where, max_depth=MAX_PREDICATE_DEPTH, error=PredicateError)
    if not isinstance(doc, dict):
        raise PredicateError(f"{where} is not a JSON object (a predicate is one object)")
    if not doc:
        raise PredicateError(f"{where} is an empty object (in-toto requires a predicate)")
    _walk_check(doc)
    return doc


def load_predicate(path: str, *, limit: int = MAX_PREDICATE, what: str = "predicate file") -> jsonsafe.JsonObject:
    from notary.fsio import read_regular

    return parse_predicate(read_regular(path, limit, what, error=PredicateError), f"{what} {path}")


def sbom_type(doc: Mapping[str, object]) -> str:
    """The predicate type of an SBOM document: SPDX 2.x or 3 JSON, or CycloneDX JSON."""
    version = doc.get("spdxVersion")
    if isinstance(version, str) and version.startswith("SPDX-2."):
        return SPDX
    context = doc.get("@context")
    contexts = context if isinstance(context, list) else [context]
    if any(isinstance(c, str) and "spdx.org/rdf/3" in c for c in contexts):
        return SPDX
    if doc.get("bomFormat") == "CycloneDX" and isinstance(doc.get("specVersion"), str):
        return CYCLONEDX
    raise PredicateError("the SBOM is neither SPDX 2.x/3 JSON (spdxVersion, or an spdx.org/rdf/3 @context) nor "
                         "CycloneDX JSON (bomFormat \"CycloneDX\" with a specVersion)")


def load_sbom(path: str) -> tuple[str, jsonsafe.JsonObject]:
    doc = load_predicate(path, limit=MAX_SBOM, what="SBOM file")
    return sbom_type(doc), doc


# ---------------------------------------------------------------- SLSA provenance from the CI context


_BUILDERS = {
    "github": "https://github.com/actions/runner",
    "gitlab": "https://gitlab.com/gitlab-org/gitlab-runner",
    "jenkins": "https://www.jenkins.io",
    "circleci": "https://circleci.com",
    "tekton": "https://tekton.dev/chains/v2",
    "local": "https://notary.dev/builders/local",
}
_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")
_PROJECT_SEGMENT = re.compile(r"[A-Za-z0-9._~+\-]+\Z")  # what a GitHub or GitLab project path holds


def source_uri(ci: Mapping[str, str]) -> str | None:
    """The source repository as SLSA writes it (git+https://host/project), from the run URL's host and the
    project, both from notary.ci's allow-list (no userinfo, query or fragment)."""
    from urllib.parse import urlsplit

    run, project = ci.get("runUrl"), ci.get("project")
    if not run or not project or "/" not in project:
        return None
    segments = project.strip("/").split("/")
    if any(s in (".", "..") or not _PROJECT_SEGMENT.match(s) for s in segments):
        return None  # a project "team/app@x" or "team/../app" would name another repository to `source`
    parts = urlsplit(run)
    return f"git+{parts.scheme}://{parts.netloc}/{'/'.join(segments)}"


def provenance(ci: Mapping[str, str]) -> dict[str, object]:
    """A SLSA provenance v1 predicate (https://slsa.dev/spec/v1.0/provenance) from the detected CI context.

    Only notary.ci's allow-listed, non-secret values reach it (never the environment itself): the builder id
    per CI system, the run URL as invocation id, the commit and source repository as resolved dependency."""
    system = ci.get("system", "local")
    external: dict[str, object] = {"ci": {k: ci[k] for k in ("system", "jobId", "pipeline", "ref", "project")
                                       if ci.get(k)}}
    source = source_uri(ci)
    if source:
        external["source"] = source
    dependencies: list[dict[str, object]] = []
    commit = ci.get("commit")
    if commit and _COMMIT.match(commit):
        uri = f"{source}@{ci['ref']}" if source and ci.get("ref") else source
        dependency: dict[str, object] = {"digest": {"gitCommit": commit}}
        dependency.update({"uri": uri} if uri else {"name": "source"})
        dependencies.append(dependency)
    build: dict[str, object] = {"buildType": BUILD_TYPE, "externalParameters": external}
    if dependencies:
        build["resolvedDependencies"] = dependencies
    invocation = ci.get("runUrl") or f"{system}:{ci.get('jobId', '')}"
    return {"buildDefinition": build,
            "runDetails": {"builder": {"id": _BUILDERS.get(system, _BUILDERS["local"])},
                           "metadata": {"invocationId": invocation}}}
