"""The webhook's container image (packaging/container/Containerfile), built here and run as the Deployment runs it.

scripts/webhook-image.sh builds it once per session with podman, in private storage: the Debian base (made with
mmdebstrap from Debian's packages) and the dependency wheels are cached under ~/.cache/notary/webhook-image/,
notary's own wheel and the image are built fresh (about 20-25 s here once the caches are warm; the first run
adds about 1.5 minutes of mmdebstrap). The container then runs with docs/kubernetes/deployment.yaml's command,
args, user and read-only root, and must answer AdmissionReviews over TLS.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from notary.sources.base import Subject
from tests.support.integration import missing
from tests.support.registry import free_port
from tests.support.runtimes import GateWorld, Podman, self_signed_cert

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENT = REPO / "docs" / "kubernetes" / "deployment.yaml"
GOOD = "sha256:" + "d1" * 32
UNSIGNED = "sha256:" + "d2" * 32
UID = 10001  # the Deployment's runAsUser


def deployment_container() -> dict[str, Any]:
    """image, command and args of the webhook container in deployment.yaml (flow sequences there are JSON)."""
    text = DEPLOYMENT.read_text()
    image = re.search(r"(?m)^\s+image:\s*(\S+)\s*$", text)
    command = re.search(r"(?m)^\s+command:\s*(\[[^\]]*\])", text)
    args = re.search(r"(?m)^\s+args:\s*(\[[^\]]*\])", text)
    assert image and command and args, "deployment.yaml's webhook container changed shape: update this test"
    return {"image": image.group(1), "command": json.loads(command.group(1)), "args": json.loads(args.group(1))}


@pytest.fixture(scope="module")
def image(podman: Podman) -> str:
    for tool in ("mmdebstrap", "unzip"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            missing(tool, "needed to build the webhook image")
    started = time.monotonic()
    proc = subprocess.run([str(REPO / "scripts" / "webhook-image.sh"), "--", *podman.argv()[1:]],
                          env=podman.env(), capture_output=True, text=True, timeout=1800, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"webhook image built in {time.monotonic() - started:.0f} s")  # shown with -s / in CI logs on failure
    return proc.stdout.strip().splitlines()[-1]


def test_deployment_manifest_names_the_image_the_build_makes(image: str) -> None:
    assert deployment_container()["image"] == image


def test_image_runs_as_the_deployments_unprivileged_user(podman: Podman, image: str) -> None:
    user = podman.run("image", "inspect", "--format", "{{.Config.User}}", image)
    assert user.stdout.strip() == f"{UID}:{UID}", user.stderr
    proc = podman.run("run", "--rm", "--read-only", "--network", "host", "--entrypoint", "id", image, "-u")
    assert proc.stdout.strip() == str(UID), proc.stderr


@pytest.fixture
def served(podman: Podman, image: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The image running deployment.yaml's command and args (port moved to a free one, loopback only), with
    the Deployment's mounts: config, keys, TLS, and a writable state volume; root filesystem read-only."""
    world = GateWorld(tmp_path / "world")
    world.notarize(Subject(GOOD, "registry.example/app", "oci-manifest"))
    etc = tmp_path / "etc-notary"
    (etc / "keys").mkdir(parents=True)
    (etc / "keys" / "release.pub").write_bytes((world.root / "trusted.key.pub").read_bytes())
    (etc / "notary.toml").write_text(
        'ledger = "file:///ledger/ledger.db"\nstate_dir = "/var/lib/notary/gate-state"\n'
        '[policy]\nfail = "closed"\ndecision_log = "/dev/stdout"\n'
        '[[policy.trust]]\nimages = ["registry.example/*"]\nkeys = ["keys/release.pub"]\n')
    cert, _key = self_signed_cert(etc / "tls")
    state = tmp_path / "state"
    state.mkdir()
    for path in (world.root, state, etc):  # the container's user reads these and writes state and the ledger's WAL
        subprocess.run(["chown", "-R", f"{UID}:{UID}", str(path)], check=True)
    container = deployment_container()
    port = free_port()
    args = [{"0.0.0.0": "127.0.0.1", "8443": str(port)}.get(a, a) for a in container["args"]]
    name = "notary-webhook-" + uuid.uuid4().hex[:8]
    mounts = {etc / "notary.toml": "/etc/notary/notary.toml:ro", etc / "keys": "/etc/notary/keys:ro",
              etc / "tls": "/etc/notary/tls:ro", state: "/var/lib/notary", world.root: "/ledger"}
    volumes = [arg for source, target in mounts.items() for arg in ("-v", f"{source}:{target}")]
    argv = podman.argv("run", "--rm", "--name", name, "--network", "host", "--read-only", "--user", f"{UID}:{UID}",
                       *volumes, "--entrypoint", container["command"][0], image, *args)
    log = tmp_path / "container.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=podman.env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                requests.get(f"https://127.0.0.1:{port}/healthz", verify=str(cert), timeout=2)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        yield f"https://127.0.0.1:{port}", cert
    finally:
        podman.run("rm", "--force", name)
        proc.wait(timeout=30)


def _review(image_ref: str) -> dict[str, Any]:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "prod"},
           "spec": {"containers": [{"name": "app", "image": image_ref}]}}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": str(uuid.uuid4()), "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "operation": "CREATE", "namespace": "prod", "object": pod}}


def test_image_serves_the_webhook_as_deployed(served: tuple[str, Path]) -> None:
    url, cert = served
    assert requests.get(url + "/healthz", verify=str(cert), timeout=10).text == "ok\n"
    allowed = requests.post(url + "/validate", json=_review(f"registry.example/app@{GOOD}"), verify=str(cert),
                            timeout=30).json()["response"]
    assert allowed["allowed"] is True, allowed
    denied = requests.post(url + "/validate", json=_review(f"registry.example/app@{UNSIGNED}"), verify=str(cert),
                           timeout=30).json()["response"]
    assert denied["allowed"] is False and "not notarized" in denied["status"]["message"], denied

