"""The main job through the real CLI: notarize in CI, verify before run, revoke, audit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.cli import Notary
from tests.support.images import manifest_of


@pytest.fixture
def notary(tmp_path: Path) -> Notary:
    return Notary(tmp_path)


def test_notarize_verify_revoke_refuse_audit(notary: Notary, busybox_layout: Path) -> None:
    key = notary.key()
    subject = f"oci:{busybox_layout}:v1"
    digest, _ = manifest_of(busybox_layout, "v1")

    done = notary.run("--json", "notarize", subject, "--job-id", "build-7", "--key", str(key)).json
    assert [r["subject"]["digest"] for r in done["records"]] == [digest]
    roles = sorted(a["role"] for a in done["records"][0]["artifacts"])
    assert "config" in roles and "layer" in roles

    ok = notary.run("verify", subject, "--key", f"{key}.pub")
    assert "trusted" in ok.out
    assert notary.run("verify", digest, "--key", f"{key}.pub").code == 0

    notary.run("revoke", digest, "--reason", "CVE-2026-0001", "--key", str(key))
    refused = notary.run("verify", subject, "--key", f"{key}.pub", expect=1)
    assert "revoked" in refused.err and "CVE-2026-0001" in refused.err
    assert len(refused.err.strip().splitlines()) == 1

    history = notary.run("--json", "history", digest).json["subjects"][0]["versions"]
    assert [v["status"] for v in history] == ["notarized", "revoked"]
    first_tx = history[0]["tx"]
    as_of = notary.run("--json", "get", digest, "--at-tx", str(first_tx)).json["records"]
    assert [r["status"] for r in as_of] == ["notarized"]

    found = notary.run("--json", "lookup", "--job-id", "build-7").json["results"]
    assert found[0]["subjects"][0]["digest"] == digest


def test_verify_json_carries_checkable_proofs(notary: Notary, tmp_path: Path) -> None:
    key = notary.key()
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"release build\n")
    notary.run("notarize", str(artifact), "--job-id", "j1", "--key", str(key))
    out = notary.run("--json", "verify", str(artifact), "--key", f"{key}.pub").json
    decision = out["decisions"][0]
    assert decision["allowed"] is True
    proof = decision["entry"]["proof"]
    assert proof, "verify --json includes the proofs it checked"
    assert {"tree_size", "root_hash"} <= set(proof) or proof.get("format") == "immudb"


def test_time_travel_by_date_shows_what_was_true_then(notary: Notary, tmp_path: Path) -> None:
    key = notary.key()
    artifact = tmp_path / "tool"
    artifact.write_bytes(b"v1")
    notary.run("notarize", str(artifact), "--job-id", "j1", "--key", str(key))
    time.sleep(1.2)
    between = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    time.sleep(1.2)
    notary.run("revoke", str(artifact), "--reason", "bad build", "--key", str(key))
    then = notary.run("--json", "get", str(artifact), "--at-time", between).json["records"]
    assert [r["status"] for r in then] == ["notarized"]
    now = notary.run("--json", "get", str(artifact)).json["records"]
    assert [r["status"] for r in now] == ["revoked"]


def test_record_by_an_untrusted_key_is_refused(notary: Notary, tmp_path: Path) -> None:
    trusted, other = notary.key("trusted"), notary.key("other")
    artifact = tmp_path / "a"
    artifact.write_bytes(b"x")
    notary.run("notarize", str(artifact), "--job-id", "j", "--key", str(other))
    refused = notary.run("verify", str(artifact), "--key", f"{trusted}.pub", expect=1)
    assert "not notarized by any trusted key" in refused.err


def test_revocation_by_another_key_does_not_revoke_a_trusted_signers_record(notary: Notary, tmp_path: Path) -> None:
    trusted, other = notary.key("trusted"), notary.key("other")
    artifact = tmp_path / "a"
    artifact.write_bytes(b"x")
    notary.run("notarize", str(artifact), "--job-id", "j", "--key", str(trusted))
    notary.run("revoke", str(artifact), "--reason", "griefing", "--key", str(other))
    notary.run("verify", str(artifact), "--key", f"{trusted}.pub")


def test_verify_without_a_trusted_key_is_a_usage_error(notary: Notary) -> None:
    result = notary.run("verify", "sha256:" + "a" * 64, expect=2)
    assert "--key" in result.err


def test_lookup_by_artifact_finds_the_images_containing_a_layer(notary: Notary, busybox_layout: Path) -> None:
    key = notary.key()
    notary.run("notarize", f"oci:{busybox_layout}:v1", "--job-id", "j9", "--key", str(key))
    digest, manifest = manifest_of(busybox_layout, "v1")
    layer = manifest["layers"][0]["digest"]
    hits = notary.run("--json", "lookup", "--artifact", layer).json["results"]
    assert digest in hits[0]["subjects"]


def test_ci_token_never_reaches_the_ledger_file(notary: Notary, tmp_path: Path) -> None:
    key = notary.key()
    artifact = tmp_path / "a"
    artifact.write_bytes(b"x")
    secret = "ghs_TOPSECRETTOKENVALUE123"
    notary.run("notarize", str(artifact), "--key", str(key),
               env={"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "4242", "GITHUB_TOKEN": secret,
                    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": secret})
    found = notary.run("--json", "lookup", "--job-id", "4242", "--system", "github").json["results"]
    assert found
    for path in notary.root.glob("ledger.db*"):
        assert secret.encode() not in path.read_bytes()


def test_signing_key_from_environment_pem(notary: Notary, tmp_path: Path) -> None:
    key = notary.key()
    artifact = tmp_path / "a"
    artifact.write_bytes(b"x")
    notary.run("notarize", str(artifact), "--job-id", "j", env={"NOTARY_SIGNING_KEY": key.read_text()})
    notary.run("verify", str(artifact), "--key", f"{key}.pub")


def test_multiarch_index_notarizes_index_and_each_platform(notary: Notary, multiarch_layout: Path) -> None:
    key = notary.key()
    done = notary.run("--json", "notarize", f"oci:{multiarch_layout}:multi", "--job-id", "m", "--key", str(key)).json
    kinds = sorted(r["subject"]["kind"] for r in done["records"])
    assert kinds.count("oci-manifest") == 2 and kinds.count("oci-index") == 1
    assert len({r["subject"]["digest"] for r in done["records"]}) == 3
    notary.run("verify", f"oci:{multiarch_layout}:multi", "--key", f"{key}.pub")


def test_json_errors_are_machine_readable(notary: Notary) -> None:
    result = notary.run("--json", "verify", "sha512:" + "a" * 128, "--key", "/nonexistent.pub", expect=2)
    assert result.json["error"]["exit_code"] == 2


def test_lookup_by_the_digest_of_a_file_notarized_on_its_own(notary: Notary) -> None:
    key = notary.key()
    _, digest = notary.notarize_file(key, b"release\n", name="release.bin", job_id="j")
    result = notary.run("--json", "lookup", "--artifact", digest)
    [hit] = result.json["results"]
    assert hit["type"] == "subject" and hit["subjects"] == [digest]
    notary.run("lookup", "--artifact", "sha256:" + "0" * 64, expect=1)
