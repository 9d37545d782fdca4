"""Attestations on every ledger backend: the embedded file, a real immudb over gRPC, and its HTTP gateway.
The same commands, the same answers; and a forged attestation written straight into immudb is exit 3."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from notary import attest, keys, records
from tests.support.cli import Notary
from tests.support.immudb import ImmudbServer, fresh_immudb_url

PROVENANCE = "https://slsa.dev/provenance/v1"
GITHUB = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "99", "GITHUB_SHA": "ab" * 20, "GITHUB_REF": "refs/tags/v1",
          "GITHUB_REPOSITORY": "team/app", "GITHUB_SERVER_URL": "https://github.com"}


def _user(root: Path, url: str) -> Notary:
    root.mkdir(parents=True, exist_ok=True)
    notary = Notary(root, ledger_url=url)
    for name in ("NOTARY_IMMUDB_PASSWORD", "NOTARY_IMMUDB_GATEWAY"):
        if name in os.environ:
            notary.env[name] = os.environ[name]
    return notary


def test_attestations_read_the_same_on_every_backend(ledger_url: str, tmp_path: Path) -> None:
    notary = _user(tmp_path / "u", ledger_url)
    if ledger_url.startswith("file:"):
        notary.run("ledger", "init")
    key, other = notary.key(), notary.key("other")
    artifact = notary.root / "app.bin"
    artifact.write_bytes(b"the build\n")
    sbom = notary.root / "bom.json"
    sbom.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}))
    done = notary.run("--json", "notarize", str(artifact), "--key", str(key), "--provenance", "--sbom", str(sbom),
                      env=GITHUB).json
    digest = done["records"][0]["subject"]["digest"]
    notary.run("verify", digest, "--key", f"{key}.pub", "--require", PROVENANCE, "--require", attest.CYCLONEDX)
    refused = notary.run("verify", digest, "--key", f"{key}.pub", "--require", attest.SPDX, expect=1)
    assert "no attestation of https://spdx.dev/Document" in refused.err

    # another key's attestation is stored and shown, but does not satisfy a verifier that trusts only `key`
    spdx = notary.root / "spdx.json"
    spdx.write_text(json.dumps({"spdxVersion": "SPDX-2.3", "name": "app"}))
    notary.run("attest", digest, "--predicate-type", attest.SPDX, "--predicate", str(spdx), "--key", str(other))
    notary.run("verify", digest, "--key", f"{key}.pub", "--require", attest.SPDX, expect=1)
    notary.run("verify", digest, "--key", f"{other}.pub", "--require", attest.SPDX, expect=1)  # not notarized by it

    item = notary.run("--json", "history", digest, "--key", f"{key}.pub").json["subjects"][0]
    assert sorted(a["predicate_type"] for a in item["attestations"]) == sorted([PROVENANCE, attest.CYCLONEDX])
    every = notary.run("--json", "history", digest).json["subjects"][0]["attestations"]
    assert {(a["predicate_type"], a["signer"]) for a in every} == {
        (PROVENANCE, keys.key_id(keys.load_private_key(key))),
        (attest.CYCLONEDX, keys.key_id(keys.load_private_key(key))),
        (attest.SPDX, keys.key_id(keys.load_private_key(other)))}
    for a in every:
        assert a["proof"] and a["tx"] >= done["tx"]
        stmt = json.loads(base64.b64decode(a["envelope"]["payload"]))
        assert stmt["subject"][0]["digest"] == {"sha256": digest[7:]}


@pytest.mark.integration
def test_a_forged_attestation_written_straight_into_immudb_is_an_integrity_error(
        immudb_server: ImmudbServer, tmp_path: Path) -> None:
    """The server's own admin (no notary in the way) stores an attestation under the trusted signer's key,
    signed by another key: every proof of the entry holds, the signature does not. Exit 3, not "attested"."""
    url = fresh_immudb_url(immudb_server)
    notary = _user(tmp_path / "u", url)
    key = notary.key()
    _, digest = notary.notarize_file(key, b"built\n")
    signer = keys.key_id(keys.load_private_key(key))
    intruder = keys.generate_private_key()
    env = json.loads(attest.sign_statement(attest.statement([("app", digest)], PROVENANCE, {"x": 1}), intruder))
    env["signatures"][0]["keyid"] = signer
    admin = immudb_server.admin_client()
    try:
        admin.useDatabase(url.rsplit("/", 1)[1].encode())
        admin.set(attest.attestation_key(digest, signer, PROVENANCE).encode(), records.canonical_json(env))
    finally:
        admin.shutdown()
    result = notary.run("verify", digest, "--key", f"{key}.pub", "--require", PROVENANCE, expect=3)
    assert "signature" in result.err.strip().splitlines()[-1]


def test_an_sbom_too_big_for_immudb_reads_is_refused_before_it_is_written(ledger_url: str, tmp_path: Path) -> None:
    """immudb answers in gRPC messages of at most 4 MiB (its HTTP gateway too): an envelope bigger than that
    could be written but never read back, and every later read of the subject would be exit 4. On immudb it
    is exit 2 before anything is written; the embedded ledger takes it (up to the 16 MiB SBOM bound)."""
    notary = _user(tmp_path / "u", ledger_url)
    if ledger_url.startswith("file:"):
        notary.run("ledger", "init")
    key = notary.key()
    _, digest = notary.notarize_file(key, b"x\n")
    packages = [{"name": f"package-{i:07d}", "SPDXID": f"SPDXRef-{i}", "versionInfo": "1.0"} for i in range(45_000)]
    sbom = notary.root / "big.spdx.json"
    sbom.write_text(json.dumps({"spdxVersion": "SPDX-2.3", "packages": packages}, separators=(",", ":")))
    assert 2_500_000 < sbom.stat().st_size < 3_500_000
    before = notary.run("--json", "ledger", "info").json["head"]["tx"]
    immudb = ledger_url.startswith("immudb")
    result = notary.run("attest", digest, "--predicate-type", attest.SPDX, "--predicate", str(sbom),
                        "--key", str(key), expect=2 if immudb else 0)
    if immudb:
        assert "immudb reads at most 4 MiB" in result.err
        assert notary.run("--json", "ledger", "info").json["head"]["tx"] == before
    else:
        notary.run("verify", digest, "--key", f"{key}.pub", "--require", attest.SPDX)


@pytest.mark.parametrize("mirror", ["0", "1"])
def test_the_gate_requires_provenance_on_every_backend(ledger_url: str, tmp_path: Path, mirror: str) -> None:
    """A gate's `require` on each backend, with immudb's verified mirror off and on (the front ends' default)."""
    from notary.ledger import open_ledger
    from notary.sources.base import Subject
    from tests.support.runtimes import GateWorld

    digest = "sha256:" + "e1" * 32
    world = GateWorld(tmp_path / "world", ledger_url=ledger_url, extra_policy=f'require = ["{PROVENANCE}"]\n')
    world.notarize(Subject(digest, "registry.example/app:1", "oci-manifest"))
    env = {"NOTARY_IMMUDB_MIRROR": mirror}
    refused = world.gate_check(f"registry.example/app@{digest}", env=env)
    assert refused.returncode == 1 and "no attestation of https://slsa.dev/provenance/v1" in refused.stderr
    ledger = open_ledger(world.ledger_url, state_dir=world.client_state, create=True)
    try:
        attest.attest(ledger, [("registry.example/app", digest)], world.untrusted, PROVENANCE, {"x": 1})
        assert world.gate_check(f"registry.example/app@{digest}", env=env).returncode == 1
        attest.attest(ledger, [("registry.example/app", digest)], world.trusted, PROVENANCE, {"x": 1})
    finally:
        ledger.close()
    allowed = world.gate_check(f"registry.example/app@{digest}", env=env)
    assert allowed.returncode == 0, allowed.stderr
