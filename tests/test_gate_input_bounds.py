"""Bounded input in every gate front end: each test is one attack on what a front end reads from outside.

Runtime storage files (Docker's config.v2.json / repositories.json, podman's containers.json / images.json)
are read on the hook's critical path: a FIFO there must refuse at once, not hang the container start. Every
outside JSON (containerd's descriptor, an AdmissionReview, a plugin request, the Docker API's answers, the
container state in a busy reply, the bundle the runtime wrapper rewrites) goes through notary.jsonsafe: a
document nested 100,000 deep or an integer of 5,000 digits is one clear refusal, never a traceback.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from notary.config import load_config
from notary.errors import InputError
from notary.gate.decision import gate_for
from notary.gate.frontends.docker_api import DockerAPI
from notary.gate.frontends.hook_server import HookServer
from notary.gate.install import ADD_HOOK_CODE
from tests.support.gate_servers import raw_http, raw_request
from tests.support.runtimes import HOOK_ARGV, AuthzPlugin, GateWorld, Webhook

DEEP = b"[" * 100_000 + b"]" * 100_000
HUGE = b"9" * 5000
DIGEST = "sha256:" + "f7" * 32
CID = "c0ffee" * 10 + "beef"


def _hook(world: GateWorld, state: dict[str, object]) -> subprocess.CompletedProcess[str]:
    env = {"NOTARY_CONFIG": str(world.config), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NOTARY_GATE_SOCKET": "none"}
    proc = subprocess.run(HOOK_ARGV, input=json.dumps(state).encode(), env=env, capture_output=True, timeout=20,
                          check=False)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def _refused_at_once_as_bad_input(world: GateWorld, state: dict[str, object]) -> str:
    start = time.monotonic()
    proc = _hook(world, state)
    assert time.monotonic() - start < 10
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    line = world.decisions()[-1]
    assert (line["allowed"], line["exit_code"]) == (False, 2)
    return proc.stderr


def _docker_root(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    """A Docker data root as dockerd lays it out, and the hook state of a container whose rootfs is in it."""
    root = tmp_path / "docker"
    rootfs = root / "overlay2" / "layer1" / "merged"
    rootfs.mkdir(parents=True)
    (root / "containers" / CID).mkdir(parents=True)
    (root / "image" / "overlay2").mkdir(parents=True)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "root": {"path": str(rootfs)}}))
    return root, {"ociVersion": "1.0.2", "id": CID, "status": "creating", "pid": 1, "bundle": str(bundle)}


def _podman_root(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    root = tmp_path / "storage"
    rootfs = root / "overlay" / "layer1" / "merged"
    rootfs.mkdir(parents=True)
    (root / "overlay-containers").mkdir()
    (root / "overlay-images").mkdir()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "root": {"path": str(rootfs)}}))
    return root, {"ociVersion": "1.0.2", "id": CID, "status": "creating", "pid": 1, "bundle": str(bundle)}


# ---------------------------------------------------------------- runtime storage on the hook's path


def test_fifo_docker_config_v2_does_not_hang_the_hook(world: GateWorld, tmp_path: Path) -> None:
    root, state = _docker_root(tmp_path)
    os.mkfifo(root / "containers" / CID / "config.v2.json")
    assert "is a FIFO, not a regular file" in _refused_at_once_as_bad_input(world, state)


def test_deeply_nested_docker_repositories_json_is_bad_input(world: GateWorld, tmp_path: Path) -> None:
    root, state = _docker_root(tmp_path)
    (root / "containers" / CID / "config.v2.json").write_text(json.dumps({"Image": DIGEST}))
    (root / "image" / "overlay2" / "repositories.json").write_bytes(b'{"Repositories": ' + DEEP + b"}")
    assert "nested" in _refused_at_once_as_bad_input(world, state)


def test_fifo_podman_containers_json_does_not_hang_the_hook(world: GateWorld, tmp_path: Path) -> None:
    root, state = _podman_root(tmp_path)
    os.mkfifo(root / "overlay-containers" / "containers.json")
    assert "is a FIFO, not a regular file" in _refused_at_once_as_bad_input(world, state)


def test_huge_integer_in_podman_images_json_is_bad_input(world: GateWorld, tmp_path: Path) -> None:
    root, state = _podman_root(tmp_path)
    (root / "overlay-containers" / "containers.json").write_text(json.dumps([{"id": CID, "image": "f7" * 32}]))
    (root / "overlay-images" / "images.json").write_bytes(b'[{"id": "' + b"f7" * 32 + b'", "size": ' + HUGE + b"}]")
    assert "integer of 5000 digits" in _refused_at_once_as_bad_input(world, state)


def test_podman_images_json_linked_to_dev_zero_is_refused(world: GateWorld, tmp_path: Path) -> None:
    root, state = _podman_root(tmp_path)
    (root / "overlay-containers" / "containers.json").write_text(json.dumps([{"id": CID, "image": "f7" * 32}]))
    (root / "overlay-images" / "images.json").symlink_to("/dev/zero")
    assert "symbolic link" in _refused_at_once_as_bad_input(world, state)


# ---------------------------------------------------------------- containerd verifier, runtime wrapper


@pytest.mark.parametrize(("descriptor", "reason"), [
    (b'{"mediaType": "application/vnd.oci.image.manifest.v1+json", "annotations": ' + DEEP + b"}", "nested"),
    (b'{"digest": "' + DIGEST.encode() + b'", "size": ' + HUGE + b"}", "integer of 5000 digits"),
], ids=["nested-100000-deep", "integer-of-5000-digits"])
def test_hostile_descriptor_is_bad_input_for_the_containerd_verifier(world: GateWorld, descriptor: bytes,
                                                                     reason: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "notary.gate.containerd", "-name", "registry.example/app:1",
                           "-digest", DIGEST, "-stdin-media-type", "application/vnd.oci.descriptor.v1+json"],
                          input=descriptor, env=world.env(), capture_output=True, timeout=30, check=False)
    out = proc.stdout.decode()
    assert proc.returncode == 2 and reason in out and "Traceback" not in proc.stderr.decode(), (out, proc.stderr)
    assert out.count("\n") == 1
    assert world.decisions()[-1]["allowed"] is False


@pytest.mark.parametrize("attack", ["fifo", "nested-100000-deep"])
def test_hostile_bundle_config_refuses_in_the_runtime_wrapper(attack: str, world: GateWorld, tmp_path: Path) -> None:
    """The docker runtime wrapper rewrites config.json before runc runs: a FIFO must not hang `docker run`,
    a deep document must not crash; both exit 1 (the wrapper then never runs runc), config untouched."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    if attack == "fifo":
        os.mkfifo(bundle / "config.json")
    else:
        (bundle / "config.json").write_bytes(b'{"hooks": ' + DEEP + b"}")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", ADD_HOOK_CODE, str(bundle)], env=world.env(), capture_output=True,
                          text=True, timeout=20, check=False)
    assert time.monotonic() - start < 10
    assert proc.returncode == 1 and "cannot add the gate hook" in proc.stderr and "Traceback" not in proc.stderr
    assert ("FIFO" if attack == "fifo" else "nested") in proc.stderr


# ---------------------------------------------------------------- webhook, authz plugin, Docker API answers


@pytest.fixture
def webhook(world: GateWorld) -> Iterator[int]:
    with Webhook(world, tls=False) as server:
        yield server.port


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": ' + DEEP + b"}", "nested"),
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u", "n": '
     + HUGE + b"}}", "integer of 5000 digits"),
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "kind": "AdmissionReview"}', "duplicate key"),
], ids=["nested-100000-deep", "integer-of-5000-digits", "duplicate-key"])
def test_hostile_admission_review_is_a_bad_request(webhook: int, body: bytes, reason: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", webhook, timeout=30)
    try:
        conn.request("POST", "/validate", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        answer = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 400 and reason in answer["error"], answer


def test_deeply_nested_authz_request_is_refused_and_logged(world: GateWorld) -> None:
    with AuthzPlugin(world) as plugin:
        body = b'{"RequestMethod": "POST", "RequestUri": "/v1.41/containers/create", "x": ' + DEEP + b"}"
        status, answer = raw_http(str(plugin.socket), raw_request("POST", "/AuthZPlugin.AuthZReq", body))
    reply = json.loads(answer)
    assert status == 200 and reply["Allow"] is False and "nested" in reply["Msg"], reply
    line = world.decisions()[-1]
    assert (line["allowed"], line["exit_code"], line["action"]) == (False, 2, "unknown")


def test_deeply_nested_docker_api_answer_is_bad_input(tmp_path: Path) -> None:
    """A Docker API endpoint (a compromised daemon, a proxy) answering image inspect with a deep document."""
    path = tmp_path / "docker.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    body = b'{"Id": "' + DIGEST.encode() + b'", "RepoDigests": ' + DEEP + b"}"

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        with pytest.raises(InputError, match="nested"):
            DockerAPI(f"unix://{path}").image("registry.example/app:1")
    finally:
        listener.close()
        thread.join(timeout=5)


# ---------------------------------------------------------------- the hook server's busy reply


@pytest.mark.parametrize("body", [DEEP, b'{"id": "c1", "pid": ' + HUGE + b"}"], ids=["nested-100000-deep",
                                                                                  "integer-of-5000-digits"])
def test_hostile_state_in_a_busy_reply_is_still_refused_and_logged(body: bytes, world: GateWorld) -> None:
    """With the queue full, the busy path reads the state only to log the container id: a hostile state is
    still a 503 refusal with a log line (container unknown), never a crash of the refusal thread."""
    gate = gate_for(load_config(str(world.config)), None, front_end="oci-hook-server")
    server = HookServer(str(Path("/tmp") / f"nhb-{os.getpid()}-{time.monotonic_ns()}" / "gate.sock"), gate)
    try:
        reply = server.busy_reply("POST", "/oci-hook", body)
        good = server.busy_reply("POST", "/oci-hook", b'{"id": "c2", "bundle": "/b"}')
    finally:
        server.server_close()
        gate.close()
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(server.path))
    assert reply.status == 503 and reply.body.startswith(b"notary: refused: the gate is busy")
    assert good.status == 503
    lines = world.decisions()[-2:]
    assert [line.get("container") for line in lines] == [None, "c2"]
    assert all(line["exit_code"] == 4 and not line["allowed"] for line in lines)
