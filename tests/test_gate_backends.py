"""The gate decides the same way on both ledger backends (embedded file and a real immudb server)."""

from __future__ import annotations

from pathlib import Path

from notary.sources.base import Subject
from tests.support.runtimes import GateWorld

DIGEST = "sha256:" + "f1" * 32
OTHER = "sha256:" + "f2" * 32


def test_gate_check_verdicts_on_every_backend(ledger_url: str, tmp_path: Path) -> None:
    world = GateWorld(tmp_path / "world", ledger_url=ledger_url)
    world.notarize(Subject(DIGEST, "registry.example/app:1", "oci-manifest"))
    world.notarize(Subject(OTHER, "registry.example/app:2", "oci-manifest"), trusted=False)
    ok = world.gate_check(f"registry.example/app@{DIGEST}")
    assert ok.returncode == 0, ok.stderr
    untrusted = world.gate_check(OTHER)
    assert untrusted.returncode == 1 and "not notarized by any trusted key" in untrusted.stderr
    world.revoke(DIGEST, "CVE-2026-9999")
    revoked = world.gate_check(DIGEST)
    assert revoked.returncode == 1 and "CVE-2026-9999" in revoked.stderr
    sizes = [line["tree_size"] for line in world.decisions()]
    assert all(isinstance(s, int) and s > 0 for s in sizes) and sizes[-1] > sizes[0]


def test_stopped_immudb_is_refused_unless_the_policy_fails_open(tmp_path: Path) -> None:
    from tests.support.immudb import ImmudbServer, fresh_immudb_url

    server = ImmudbServer(tmp_path / "immudb").start()
    try:
        world = GateWorld(tmp_path / "world", ledger_url=fresh_immudb_url(server))
        world.notarize(Subject(DIGEST, "registry.example/app:1", "oci-manifest"))
        assert world.gate_check(DIGEST).returncode == 0
    finally:
        server.stop()
    closed = world.gate_check(DIGEST)
    assert closed.returncode == 4 and "unreachable" in closed.stderr
    world.write_policy(fail="open")
    opened = world.gate_check(DIGEST)
    assert opened.returncode == 0, opened.stderr
    assert world.decisions()[-1]["via"] == "fail-open"



def test_revocation_semantics_hold_on_every_backend(ledger_url: str, tmp_path: Path) -> None:
    """Tied revocations, sticky revocations, key roles and name binding decide alike on both ledgers."""
    from notary.ledger import open_ledger
    from notary.notarize import notarization_writes
    from notary.sources.base import Artifact

    world = GateWorld(tmp_path / "world", ledger_url=ledger_url)
    config, index = "sha256:" + "c1" * 32, "sha256:" + "c2" * 32
    world.notarize(Subject(DIGEST, "registry.example/app:1", "oci-manifest", image_id=config))
    world.notarize(Subject(index, "registry.example/app:1", "oci-index",
                           (Artifact(index, 1, "x", "index"), Artifact(DIGEST, 1, "y", "manifest", "linux/amd64"))))
    world.notarize(Subject(OTHER, "registry.example/app:2", "oci-manifest"))
    assert world.gate_check(f"registry.example/app@{DIGEST}").returncode == 0
    assert world.gate_check(f"registry.example/other@{DIGEST}").returncode == 1  # name binding

    world.revoke(index, "bad multi-arch push")  # the index ties DIGEST as its linux/amd64 manifest
    refused = world.gate_check(f"registry.example/app@{DIGEST}")
    assert refused.returncode == 1 and "its index" in refused.stderr and "bad multi-arch push" in refused.stderr

    world.revoke(config, "CVE-2026-0707")  # an image id revocation refuses only the manifests naming it
    assert world.gate_check(f"registry.example/app@{OTHER}").returncode == 0

    world.revoke(OTHER, "CVE-2026-0808")
    ledger = open_ledger(world.ledger_url, state_dir=world.client_state)
    try:  # a writer that bypasses notarize's check: a plain notarization must not lift the revocation
        import time

        time.sleep(1.1)
        ledger.write(notarization_writes([Subject(OTHER, "registry.example/app:2", "oci-manifest")], world.trusted,
                                         {"system": "local", "jobId": "replay"})[0])
    finally:
        ledger.close()
    again = world.gate_check(f"registry.example/app@{OTHER}")
    assert again.returncode == 1 and "CVE-2026-0808" in again.stderr
