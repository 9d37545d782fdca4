"""Attestations beside the checksums: in-toto Statement v1 in DSSE, stored in the ledger, required by policy.

Through the real CLI on real ledgers; the statements notary writes are read back with the in-toto attestation
library (in_toto_attestation), as other tools would read them."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement

from notary import attest, keys
from notary.config import load_config
from notary.gate.decision import gate_for
from notary.ledger import open_ledger
from notary.sources.base import Subject
from tests.support.cli import Notary
from tests.support.runtimes import GateWorld
from tests.support.softhsm import SoftHsm, start

PROVENANCE = "https://slsa.dev/provenance/v1"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
GITHUB = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_SHA": COMMIT,
          "GITHUB_REF": "refs/heads/main", "GITHUB_REPOSITORY": "team/app", "GITHUB_SERVER_URL": "https://github.com",
          "GITHUB_WORKFLOW": "release", "RUNNER_NAME": "runner-1"}
SPDX_DOC = {"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "app", "dataLicense": "CC0-1.0",
            "documentNamespace": "https://example.com/spdx/app-1", "creationInfo": {
                "created": "2026-01-01T00:00:00Z", "creators": ["Tool: build"]}, "packages": []}
CYCLONEDX_DOC = {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": [
    {"type": "library", "name": "zlib", "version": "1.3"}],
    "vulnerabilities": [{"id": "CVE-2026-1", "ratings": [{"score": 9.8, "method": "CVSSv31"}]}]}


@pytest.fixture
def notary(tmp_path: Path) -> Notary:
    return Notary(tmp_path)


def _file(notary: Notary, name: str, doc: Any) -> Path:
    path = notary.root / name
    path.write_text(json.dumps(doc))
    return path


def _attestations(notary: Notary, subject: str, *extra: str) -> list[dict[str, Any]]:
    item = notary.run("--json", "history", subject, *extra).json["subjects"][0]
    return list(item["attestations"])


def _statement(envelope: dict[str, Any]) -> dict[str, Any]:
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    return dict(json.loads(base64.b64decode(envelope["payload"])))


def test_provenance_statement_parses_with_the_in_toto_attestation_library(notary: Notary) -> None:
    key = notary.key()
    artifact = notary.root / "app.tar.gz"
    artifact.write_bytes(b"the build output\n")
    done = notary.run("--json", "notarize", str(artifact), "--key", str(key), "--provenance", env=GITHUB).json
    assert done["attestations"] == [PROVENANCE]
    digest = done["records"][0]["subject"]["digest"]
    [found] = _attestations(notary, digest)
    assert found["predicate_type"] == PROVENANCE and found["signer"] == keys.key_id(keys.load_private_key(key))
    assert found["proof"] and found["tx"] == done["tx"]  # the same transaction as the notarization
    envelope = found["envelope"]
    stmt = _statement(envelope)
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["subject"] == [{"name": "app.tar.gz", "digest": {"sha256": digest.split(":", 1)[1]}}]
    assert stmt["predicateType"] == PROVENANCE

    parsed = json_format.Parse(base64.b64decode(envelope["payload"]), statement_pb2.Statement())
    Statement.copy_from_pb(parsed).validate()  # the library's own checks: type, subjects, digests, predicate
    ResourceDescriptor.copy_from_pb(parsed.subject[0]).validate()
    assert parsed.predicate_type == PROVENANCE and dict(parsed.subject[0].digest) == {"sha256": digest[7:]}
    predicate = json_format.ParseDict(stmt["predicate"], provenance_pb2.Provenance())  # unknown fields refused
    assert predicate.build_definition.build_type == attest.BUILD_TYPE
    assert predicate.run_details.builder.id == "https://github.com/actions/runner"
    assert predicate.run_details.metadata.invocation_id == "https://github.com/team/app/actions/runs/4242"
    [dep] = predicate.build_definition.resolved_dependencies
    assert dep.uri == "git+https://github.com/team/app@refs/heads/main" and dict(dep.digest) == {"gitCommit": COMMIT}
    assert stmt["predicate"]["buildDefinition"]["externalParameters"]["ci"]["jobId"] == "4242-1"


def test_provenance_holds_no_secret_from_the_environment(notary: Notary) -> None:
    key = notary.key()
    secrets = {"GITHUB_TOKEN": "ghp_FAKEtoken0123456789abcdef", "ACTIONS_RUNTIME_TOKEN": "eyFAKEruntimeTOKEN",
               "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "FAKEidTokenRequest", "NPM_TOKEN": "npm_FAKEFAKEFAKE",
               "GITHUB_SERVER_URL": "https://ci-user:FAKEpassw0rd@github.com"}
    artifact = notary.root / "app.bin"
    artifact.write_bytes(b"x\n")
    done = notary.run("--json", "notarize", str(artifact), "--key", str(key), "--provenance",
                      env={**GITHUB, **secrets}).json
    [found] = _attestations(notary, done["records"][0]["subject"]["digest"])
    payload = base64.b64decode(found["envelope"]["payload"]).decode()
    stored = notary.ledger_path.read_bytes()
    for secret in ("ghp_FAKEtoken", "eyFAKEruntime", "FAKEidToken", "npm_FAKE", "FAKEpassw0rd", "ci-user"):
        assert secret not in payload and secret.encode() not in stored
    assert str(notary.root) not in payload  # no local path either: the subject is named, not located
    assert "https://github.com/team/app/actions/runs/4242" in payload


@pytest.mark.parametrize(("doc", "ptype"), [(SPDX_DOC, attest.SPDX), (CYCLONEDX_DOC, attest.CYCLONEDX),
                                            ({"@context": "https://spdx.org/rdf/3.0.1/spdx-context.jsonld",
                                              "@graph": []}, attest.SPDX)])
def test_sbom_is_attested_as_its_format_with_the_notarization(notary: Notary, doc: dict[str, Any], ptype: str) -> None:
    key = notary.key()
    artifact = notary.root / "app.bin"
    artifact.write_bytes(b"x\n")
    sbom = _file(notary, "sbom.json", doc)
    done = notary.run("--json", "notarize", str(artifact), "--job-id", "j1", "--key", str(key), "--sbom", str(sbom),
                      "--provenance").json
    digest = done["records"][0]["subject"]["digest"]
    found = _attestations(notary, digest)
    assert sorted(a["predicate_type"] for a in found) == sorted([PROVENANCE, ptype])
    [sb] = [a for a in found if a["predicate_type"] == ptype]
    assert _statement(sb["envelope"])["predicate"] == doc  # as given (a CVSS score's float included)
    human = notary.run("history", digest).out
    assert "attested  signer" in human and ptype in human and PROVENANCE in human
    notary.run("verify", digest, "--key", f"{key}.pub", "--require", ptype, "--require", PROVENANCE)


def test_attest_command_writes_a_statement_that_verify_can_require(notary: Notary) -> None:
    key = notary.key()
    _, digest = notary.notarize_file(key, b"built\n")
    refused = notary.run("verify", digest, "--key", f"{key}.pub", "--require", PROVENANCE, expect=1)
    assert f"no attestation of {PROVENANCE} by a trusted key" in refused.err
    predicate = _file(notary, "prov.json", {"buildDefinition": {"buildType": "https://example.com/build/v1",
                                                                "externalParameters": {}},
                                            "runDetails": {"builder": {"id": "https://builder.example/ci"}}})
    done = notary.run("--json", "attest", digest, "--predicate-type", PROVENANCE, "--predicate", str(predicate),
                      "--key", str(key), "--name", "registry.example.com/team/app").json
    assert done["schema"] == "notary.attest/v1" and done["predicate_type"] == PROVENANCE
    assert done["subjects"] == [{"name": "registry.example.com/team/app", "digest": digest}]
    assert any(k.startswith(f"attestation/{digest}/") for k in done["keys"])
    notary.run("verify", digest, "--key", f"{key}.pub", "--require", PROVENANCE)
    unknown = notary.run("verify", digest, "--key", f"{key}.pub", "--require", "https://slsa.dev/provenance/v9",
                         expect=2)
    assert "unknown predicate type" in unknown.err and len(unknown.err.strip().splitlines()) == 1


def test_attesting_a_layout_names_every_digest_of_the_image(notary: Notary, multiarch_layout: Path) -> None:
    key = notary.key()
    notary.run("ledger", "init")
    predicate = _file(notary, "t.json", {"result": "PASSED", "passedTests": ["unit"]})
    done = notary.run("--json", "attest", f"oci:{multiarch_layout}:multi", "--predicate-type",
                      "https://in-toto.io/attestation/test-result/v0.1", "--predicate", str(predicate),
                      "--key", str(key), "--name", "registry.example.com/team/app").json
    digests = [s["digest"] for s in done["subjects"]]
    assert len(digests) >= 3 and {s["name"] for s in done["subjects"]} == {"registry.example.com/team/app"}
    for digest in digests:  # stored under each digest, one statement naming them all
        [found] = _attestations(notary, digest)
        assert [s["digest"] for s in found["subjects"]] == digests


@pytest.mark.integration
def test_a_key_in_a_pkcs11_token_signs_attestations(tmp_path: Path) -> None:
    hsm: SoftHsm = start(tmp_path / "hsm")
    notary = Notary(tmp_path / "n")
    notary.root.mkdir()
    notary.env.update(hsm.env)
    pub = notary.root / "hsm.pub"
    notary.run("key", "generate", "--pkcs11", hsm.uri("att"), "--out", str(pub))
    artifact = notary.root / "app.bin"
    artifact.write_bytes(b"x\n")
    done = notary.run("--json", "notarize", str(artifact), "--job-id", "j1", "--key", hsm.uri("att"),
                      "--provenance").json
    digest = done["records"][0]["subject"]["digest"]
    notary.run("verify", digest, "--key", str(pub), "--require", PROVENANCE)


# ---------------------------------------------------------------- the gate


def _world(tmp_path: Path, require: str) -> GateWorld:
    return GateWorld(tmp_path / "world", extra_policy=require)


def _attest(world: GateWorld, digest: str, predicate: dict[str, Any], *, trusted: bool = True,
            ptype: str = PROVENANCE) -> None:
    ledger = open_ledger(world.ledger_url, state_dir=world.client_state, create=True)
    try:
        attest.attest(ledger, [("registry.example/app", digest)], world.trusted if trusted else world.untrusted,
                      ptype, predicate)
    finally:
        ledger.close()


DIGEST = "sha256:" + "ab" * 32
GOOD_CI = {"system": "github", "jobId": "7-1", "runUrl": "https://github.com/team/app/actions/runs/7",
           "commit": COMMIT, "ref": "refs/heads/main", "project": "team/app"}
TABLE_RULE = ('[[policy.trust.require]]\ntype = "https://slsa.dev/provenance/v1"\n'
              'builder_id = "https://github.com/actions/runner"\nsource = "https://github.com/team/app"\n')


def test_gate_requires_provenance_from_a_trusted_key(tmp_path: Path) -> None:
    world = _world(tmp_path, f'require = ["{PROVENANCE}"]\n')
    world.notarize(Subject(DIGEST, "registry.example/app:1", "oci-manifest"))
    refused = world.gate_check(f"registry.example/app@{DIGEST}")
    assert refused.returncode == 1, refused.stderr
    line = world.decisions()[-1]
    assert line["status"] == "missing-attestation" and PROVENANCE in line["reason"]
    _attest(world, DIGEST, attest.provenance(GOOD_CI))
    allowed = world.gate_check(f"registry.example/app@{DIGEST}")
    assert allowed.returncode == 0, allowed.stderr


def test_gate_checks_the_builder_and_source_conditions(tmp_path: Path) -> None:
    world = _world(tmp_path, TABLE_RULE)
    world.notarize(Subject(DIGEST, "registry.example/app:1", "oci-manifest"))
    _attest(world, DIGEST, attest.provenance({**GOOD_CI, "project": "someone/else"}))
    refused = world.gate_check(f"registry.example/app@{DIGEST}")
    assert refused.returncode == 1
    assert "source git+https://github.com/someone/else, not https://github.com/team/app" not in refused.stderr
    assert "source https://github.com/someone/else, not https://github.com/team/app" in refused.stderr
    _attest(world, DIGEST, attest.provenance(GOOD_CI))  # the newest statement of the type is the key's word
    assert world.gate_check(f"registry.example/app@{DIGEST}").returncode == 0
    _attest(world, DIGEST, attest.provenance({**GOOD_CI, "system": "jenkins"}))
    refused = world.gate_check(f"registry.example/app@{DIGEST}")
    assert refused.returncode == 1 and "builder id https://www.jenkins.io" in refused.stderr


@pytest.mark.parametrize(("rule", "words"), [
    ('require = ["https://slsa.dev/provenance/v0.2"]\n', "unknown predicate type"),
    ('require = ["not a uri"]\n', "is not an https URI"),
    ('require = []\n', "require is empty"),
    ('[[policy.trust.require]]\ntype = "https://spdx.dev/Document"\nbuilder_id = "https://x"\n', "only"),
    ('[[policy.trust.require]]\ntype = "https://slsa.dev/provenance/v1"\nbuilder = "https://x"\n', "unknown setting"),
])
def test_a_bad_require_in_policy_is_a_usage_error_at_load(tmp_path: Path, rule: str, words: str) -> None:
    world = _world(tmp_path, rule)
    result = world.gate_check(DIGEST)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_verify_with_policy_keys_applies_the_rules_require(tmp_path: Path) -> None:
    world = _world(tmp_path, TABLE_RULE)
    world.notarize(Subject(DIGEST, "registry.example/app:1", "oci-manifest"))
    (tmp_path / "cli").mkdir()
    notary = Notary(tmp_path / "cli", ledger_url=world.ledger_url)
    notary.env.update(world.env())
    refused = notary.run("verify", DIGEST, "--name", "registry.example/app", expect=1)
    assert "no attestation of https://slsa.dev/provenance/v1 (builder id" in refused.err
    _attest(world, DIGEST, attest.provenance(GOOD_CI))
    notary.run("verify", DIGEST, "--name", "registry.example/app")


def test_a_require_check_adds_under_2_ms_to_a_gate_decision(tmp_path: Path) -> None:
    """The issue's bound: predicate checks in policy add at most 2 ms to a gate decision (embedded ledger,
    one trusted key; the minimum over many decisions, so a busy machine does not decide the result)."""
    plain, required = _world(tmp_path / "a", ""), _world(tmp_path / "b", TABLE_RULE)
    for world in (plain, required):
        world.notarize(Subject(DIGEST, "registry.example/app:1", "oci-manifest"))
        _attest(world, DIGEST, attest.provenance(GOOD_CI))

    # both gates timed in turn, so a busy spell of the machine falls on both rather than on one of them
    gates = []
    try:
        for world in (plain, required):
            config = load_config(str(world.config))
            gates.append(gate_for(config, config.ledger_url, front_end="test"))
            assert gates[-1].check("registry.example/app", [DIGEST]).allowed
        best = [float("inf"), float("inf")]
        for _ in range(80):
            for n, gate in enumerate(gates):
                start_at = time.perf_counter()
                decision = gate.check("registry.example/app", [DIGEST])
                best[n] = min(best[n], time.perf_counter() - start_at)
                assert decision.allowed, decision.reason
    finally:
        for gate in gates:
            gate.close()

    overhead = best[1] - best[0]
    assert overhead < 0.002, f"a require check added {overhead * 1000:.2f} ms"


# ---------------------------------------------------------------- evidence bundles


def test_evidence_bundle_carries_attestations_and_decides_require_offline(notary: Notary) -> None:
    key = notary.key()
    artifact = notary.root / "app.bin"
    artifact.write_bytes(b"x\n")
    done = notary.run("--json", "notarize", str(artifact), "--key", str(key), "--provenance", env=GITHUB).json
    digest = done["records"][0]["subject"]["digest"]
    bundle = notary.root / "app.evidence.json"
    made = notary.run("--json", "evidence", "export", digest, "--key", f"{key}.pub", "--require", PROVENANCE,
                      "--require", attest.SPDX, "-o", str(bundle)).json
    assert [a["predicate_type"] for a in made["attestations"]] == [PROVENANCE]
    assert made["decisions"][0]["status"] == "missing-attestation"  # no SPDX attestation: proven absent
    notary.run("evidence", "verify", str(bundle), "--key", f"{key}.pub", "--require", PROVENANCE)
    refused = notary.run("evidence", "verify", str(bundle), "--key", f"{key}.pub", "--require", attest.SPDX, expect=1)
    assert "no attestation of https://spdx.dev/Document" in refused.err
    unasked = notary.run("evidence", "verify", str(bundle), "--key", f"{key}.pub", "--require", attest.CYCLONEDX,
                         expect=2)
    assert "not exported with --require https://cyclonedx.org/bom" in unasked.err

    data = json.loads(bundle.read_bytes())  # an exporter that leaves the provenance out
    signer = keys.key_id(keys.load_private_key(key))
    del data["histories"][attest.attestation_key(digest, signer, PROVENANCE)]
    bundle.write_text(json.dumps(data))
    cut = notary.run("evidence", "verify", str(bundle), "--key", f"{key}.pub", "--require", PROVENANCE, expect=3)
    assert "leaves out" in cut.err


# ---------------------------------------------------------------- audits


def test_audit_diff_shows_attestations_and_flags_one_that_does_not_open(notary: Notary) -> None:
    key = notary.key()
    artifact = notary.root / "app.bin"
    artifact.write_bytes(b"x\n")
    done = notary.run("--json", "notarize", str(artifact), "--key", str(key), "--provenance", env=GITHUB).json
    digest = done["records"][0]["subject"]["digest"]
    found = notary.run("--json", "audit", "diff", "--from", "0", "--key", f"{key}.pub").json
    [row] = found["attestations"]
    assert row["predicate_type"] == PROVENANCE and row["digest"] == digest and row["trusted_signer"] is True
    assert found["findings"] == [] and found["index_entries"]["attestation-index"] == 1
    assert "attestation" in notary.run("audit", "diff", "--from", "0").out

    # a writer with ledger access files a statement without its signer's index: a finding, exit 3
    intruder = keys.generate_private_key()
    ledger = open_ledger(notary.ledger_url, state_dir=notary.root / "attacker-state")
    try:
        ledger.write({attest.attestation_key(digest, keys.key_id(intruder), PROVENANCE): attest.sign_statement(
            attest.statement([("app", digest)], PROVENANCE, {"x": 1}), intruder)})
    finally:
        ledger.close()
    result = notary.run("--json", "audit", "diff", "--from", str(done["tx"]), expect=3)
    [finding] = result.json["findings"]
    assert "without that signer's attestation index" in finding["problem"]
