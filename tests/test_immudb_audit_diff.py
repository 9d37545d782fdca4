"""`notary audit diff` on immudb: the verified mirror names every entry of the range, each value is read proven;
a real proxy in front of a real immudb that hides one entry is caught, and the mirror opted out is refused
(nothing would prove the range complete)."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import Notary
from tests.support.grpc_proxy import GrpcProxy
from tests.support.immudb_fixtures import fresh_database, grpc_man_in_the_middle  # noqa: F401 - fixtures "url", "proxy"
from tests.test_immudb_mirror import _ask_for_another_key, _via


def test_diff_on_immudb_is_complete_and_a_hidden_revocation_is_caught(url: str, proxy: GrpcProxy,
                                                                      tmp_path: Path) -> None:
    user = Notary(tmp_path, ledger_url=_via(proxy, url))
    user.env["NOTARY_IMMUDB_PASSWORD"] = "immudb"
    key = user.key()
    _, digest = user.notarize_file(key, b"release 1", job_id="j1")
    start = user.run("--json", "ledger", "info").json["head"]["tx"]
    user.run("revoke", digest, "--reason", "CVE-2026-7", "--key", str(key))
    user.notarize_file(key, b"release 2", name="two.bin", job_id="j2")
    found = user.run("--json", "audit", "diff", "--from", str(start)).json
    assert [c["type"] for c in found["changes"]] == ["revocation", "notarization"] and not found["findings"]
    assert found["changes"][0]["reason"] == "CVE-2026-7" and set(found["by_job"]) == {"local/j2"}
    whole = user.run("--json", "audit", "diff").json
    assert [c["type"] for c in whole["changes"]] == ["notarization", "revocation", "notarization"]

    signer = found["changes"][0]["signer"]
    proxy.requests["VerifiableGet"] = _ask_for_another_key(f"subject/{digest}/{signer}".encode(),
                                                           "VerifiableGetRequest")
    caught = user.run("audit", "diff", "--from", str(start), expect=3)
    assert "Traceback" not in caught.err and len(caught.err.strip().splitlines()) == 1, caught.err

    refused = user.run("audit", "diff", env={"NOTARY_IMMUDB_MIRROR": "0"}, expect=2)
    assert "needs the verified mirror" in refused.err
