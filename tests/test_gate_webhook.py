"""The admission webhook as its own process over real TLS: AdmissionReview v1 in, a reasoned verdict out."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from notary.sources.base import Subject
from tests.support.processes import stop_process
from tests.support.registry import registry  # noqa: F401 - fixture
from tests.support.runtimes import GateWorld, Webhook

GOOD = "sha256:" + "a1" * 32
GOOD2 = "sha256:" + "a2" * 32
REVOKED = "sha256:" + "b1" * 32
UNKNOWN = "sha256:" + "c1" * 32


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> GateWorld:
    w = GateWorld(tmp_path_factory.mktemp("webhook") / "world")
    for digest in (GOOD, GOOD2, REVOKED):
        w.notarize(Subject(digest, "registry.example/app", "oci-manifest",
                           names=("registry.example/app", "registry.example/side")))
    w.revoke(REVOKED, "CVE-2026-3333")
    return w


@pytest.fixture(scope="module")
def webhook(world: GateWorld) -> Iterator[Webhook]:
    with Webhook(world, "--max-body", "65536", "--insecure") as server:
        yield server


def review(kind: str, obj: dict[str, Any], *, group: str = "", version: str = "v1",
           operation: str = "CREATE") -> dict[str, Any]:
    resource = {"Pod": "pods", "Deployment": "deployments", "CronJob": "cronjobs"}.get(kind, kind.lower() + "s")
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "name": obj["metadata"]["name"],
            "namespace": "prod",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:ci:deployer", "groups": ["system:serviceaccounts"]},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def pod_spec(*images: str, init: tuple[str, ...] = (), ephemeral: tuple[str, ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)],
                            "restartPolicy": "Always"}
    if init:
        spec["initContainers"] = [{"name": f"init{i}", "image": im} for i, im in enumerate(init)]
    if ephemeral:
        spec["ephemeralContainers"] = [{"name": f"debug{i}", "image": im} for i, im in enumerate(ephemeral)]
    return spec


def pod(*images: str, **kw: Any) -> dict[str, Any]:
    return review("Pod", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "prod"},
                          "spec": pod_spec(*images, **kw)})


def deployment(*images: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "prod"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                    "template": {"metadata": {"labels": {"app": "api"}}, "spec": pod_spec(*images, init=init)}}}
    return review("Deployment", obj, group="apps")


def cronjob(*images: str) -> dict[str, Any]:
    obj = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "prod"},
           "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
               **pod_spec(*images), "restartPolicy": "OnFailure"}}}}}}
    return review("CronJob", obj, group="batch")


def post(webhook: Webhook, body: dict[str, Any] | bytes) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(webhook.url + "/validate", data=data, verify=str(webhook.cert), timeout=30,
                         headers={"Content-Type": "application/json"})


def verdict(webhook: Webhook, body: dict[str, Any]) -> dict[str, Any]:
    resp = post(webhook, body)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["apiVersion"] == "admission.k8s.io/v1" and out["kind"] == "AdmissionReview"
    assert out["response"]["uid"] == body["request"]["uid"]
    return out["response"]


def test_health_endpoint_answers_over_tls(webhook: Webhook) -> None:
    resp = requests.get(webhook.url + "/healthz", verify=str(webhook.cert), timeout=5)
    assert resp.status_code == 200 and resp.text.strip() == "ok"


def test_plain_http_is_not_served(webhook: Webhook) -> None:
    with pytest.raises(requests.RequestException):
        requests.get(f"http://127.0.0.1:{webhook.port}/healthz", timeout=5)


def test_pod_with_three_notarized_containers_is_allowed(webhook: Webhook, world: GateWorld) -> None:
    out = verdict(webhook, pod(f"registry.example/app@{GOOD}", f"registry.example/app@{GOOD2}",
                               f"registry.example/side@{GOOD}"))
    assert out["allowed"] is True
    line = world.decisions()[-1]
    assert line["front_end"] == "webhook" and line["namespace"] == "prod" and line["object"] == "Pod/web"


def test_image_signed_for_one_repository_is_refused_under_another(webhook: Webhook) -> None:
    out = verdict(webhook, pod(f"registry.example/app@{GOOD}", f"registry.example/other@{GOOD}"))
    assert out["allowed"] is False
    assert "spec.containers[1]" in out["status"]["message"]
    assert "not notarized under the name registry.example/other" in out["status"]["message"]


def test_pod_with_a_revoked_container_is_refused_with_the_reason(webhook: Webhook) -> None:
    out = verdict(webhook, pod(f"registry.example/app@{GOOD}", f"registry.example/app@{REVOKED}"))
    assert out["allowed"] is False
    assert out["status"]["code"] == 403
    assert "spec.containers[1]" in out["status"]["message"] and "CVE-2026-3333" in out["status"]["message"]


def test_deployment_init_container_is_checked(webhook: Webhook) -> None:
    good = f"registry.example/app@{GOOD}"
    assert verdict(webhook, deployment(good, init=(good,)))["allowed"] is True
    out = verdict(webhook, deployment(good, init=(f"registry.example/setup@{UNKNOWN}",)))
    assert out["allowed"] is False
    assert "spec.template.spec.initContainers[0]" in out["status"]["message"]
    assert "not notarized" in out["status"]["message"]


def test_cronjob_pod_template_is_checked(webhook: Webhook) -> None:
    assert verdict(webhook, cronjob(f"registry.example/app@{GOOD}"))["allowed"] is True
    out = verdict(webhook, cronjob(f"registry.example/app@{REVOKED}"))
    assert out["allowed"] is False and "spec.jobTemplate.spec.template.spec.containers[0]" in out["status"]["message"]


def test_ephemeral_debug_container_is_checked(webhook: Webhook) -> None:
    out = verdict(webhook, pod(f"registry.example/app@{GOOD}", ephemeral=(f"busybox@{UNKNOWN}",)))
    assert out["allowed"] is False and "ephemeralContainers[0]" in out["status"]["message"]


def test_delete_is_allowed_without_an_object(webhook: Webhook) -> None:
    body = pod(f"registry.example/app@{UNKNOWN}")
    body["request"]["operation"] = "DELETE"
    body["request"]["object"] = None
    assert verdict(webhook, body)["allowed"] is True


def test_concurrent_requests_each_get_their_own_verdict(webhook: Webhook) -> None:
    bodies = [pod(f"registry.example/app@{GOOD}") if i % 2 == 0 else pod(f"registry.example/app@{REVOKED}")
              for i in range(24)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda b: verdict(webhook, b), bodies))
    for i, (body, result) in enumerate(zip(bodies, results, strict=True)):
        assert result["uid"] == body["request"]["uid"]
        assert result["allowed"] is (i % 2 == 0)


def test_malformed_body_is_a_400_not_an_allow(webhook: Webhook) -> None:
    resp = post(webhook, b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": ')
    assert resp.status_code == 400 and "malformed JSON" in resp.json()["error"]
    resp = post(webhook, {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
                          "request": {"uid": "x"}})
    assert resp.status_code == 400 and "version" in resp.json()["error"]
    body = pod(f"registry.example/app@{GOOD}")
    del body["request"]["object"]["spec"]["containers"][0]["image"]
    resp = post(webhook, body)
    assert resp.status_code == 400 and "has no image" in resp.json()["error"]


def test_oversize_body_is_refused_with_413(webhook: Webhook) -> None:
    body = pod(f"registry.example/app@{GOOD}")
    body["request"]["object"]["metadata"]["annotations"] = {"padding": "x" * 70000}
    resp = post(webhook, body)
    assert resp.status_code == 413
    assert verdict(webhook, pod(f"registry.example/app@{GOOD}"))["allowed"] is True  # still serving


def test_image_by_tag_is_resolved_through_the_registry(webhook: Webhook, world: GateWorld, registry: str,  # noqa: F811
                                                       busybox_layout: Path, tmp_path: Path) -> None:
    from tests.support.images import build_busybox_layout

    digest = registry.push(busybox_layout, "v1", "gate/bb:v1")  # type: ignore[attr-defined]
    world.notarize(Subject(digest, f"{registry}/gate/bb:v1", "oci-manifest"))
    other = build_busybox_layout(tmp_path / "other", tag="v1", marker="unsigned")
    registry.push(other, "v1", "gate/bb:v2")  # type: ignore[attr-defined]
    out = verdict(webhook, pod(f"{registry}/gate/bb:v1"))
    assert out["allowed"] is True, out
    assert world.decisions()[-1]["digest"] == digest
    out = verdict(webhook, pod(f"{registry}/gate/bb:v2"))
    assert out["allowed"] is False and "not notarized" in out["status"]["message"]
    out = verdict(webhook, pod(f"{registry}/gate/bb:missing"))
    assert out["allowed"] is False and "cannot resolve" in out["status"]["message"]


@pytest.mark.parametrize(
    ("kind", "obj", "fields"),
    [
        ("StatefulSet", {"spec": {"template": {"spec": pod_spec("a", init=("b",))}}},
         ["spec.template.spec.initContainers[0]", "spec.template.spec.containers[0]"]),
        ("DaemonSet", {"spec": {"template": {"spec": pod_spec("a", "c")}}},
         ["spec.template.spec.containers[0]", "spec.template.spec.containers[1]"]),
        ("Job", {"spec": {"template": {"spec": pod_spec("a")}}}, ["spec.template.spec.containers[0]"]),
        ("ReplicaSet", {"spec": {"template": {"spec": pod_spec("a")}}}, ["spec.template.spec.containers[0]"]),
        ("Pod", {"spec": pod_spec("a", ephemeral=("d",))}, ["spec.containers[0]", "spec.ephemeralContainers[0]"]),
        ("EphemeralContainers", {"ephemeralContainers": [{"name": "dbg", "image": "d"}]},
         ["ephemeralContainers[0]"]),
        ("Service", {"spec": {"ports": []}}, []),
    ],
)
def test_every_container_of_every_pod_template_kind_is_found(kind: str, obj: dict[str, Any],
                                                              fields: list[str]) -> None:
    from notary.gate.frontends.webhook import image_uses

    assert [u.field for u in image_uses(kind, obj)] == fields


def test_a_workload_without_a_pod_template_is_malformed() -> None:
    from notary.errors import InputError
    from notary.gate.frontends.webhook import image_uses

    with pytest.raises(InputError):
        list(image_uses("Deployment", {"spec": {"replicas": 1}}))


def test_image_without_a_tag_is_resolved_as_latest(webhook: Webhook, world: GateWorld, registry: str,  # noqa: F811
                                                   busybox_layout: Path) -> None:
    digest = registry.push(busybox_layout, "v1", "gate/untagged:latest")  # type: ignore[attr-defined]
    world.notarize(Subject(digest, f"{registry}/gate/untagged:latest", "oci-manifest"))
    out = verdict(webhook, pod(f"{registry}/gate/untagged"))
    assert out["allowed"] is True, out
    assert world.decisions()[-1]["digest"] == digest


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE", "CONNECT"])
@pytest.mark.parametrize("missing", ["null", "absent"])
def test_webhook_create_without_object_is_a_bad_request(webhook: Webhook, operation: str, missing: str) -> None:
    """Only DELETE may come without an object: a CREATE/UPDATE/CONNECT without one is HTTP 400 (with
    failurePolicy Fail the API server then refuses it), never "nothing to run"."""
    body = pod(f"registry.example/app@{UNKNOWN}")
    body["request"]["operation"] = operation
    if missing == "null":
        body["request"]["object"] = None
    else:
        del body["request"]["object"]
    resp = post(webhook, body)
    assert resp.status_code == 400, resp.text
    assert f"{operation} request has no object" in resp.json()["error"]


def test_webhook_review_without_a_known_operation_is_a_bad_request(webhook: Webhook) -> None:
    for operation in (None, "PATCH", "delete"):
        body = pod(f"registry.example/app@{UNKNOWN}")
        body["request"]["operation"] = operation
        resp = post(webhook, body)
        assert resp.status_code == 400 and "operation" in resp.json()["error"], resp.text


def test_webhook_connect_with_its_options_object_is_allowed(webhook: Webhook) -> None:
    """kubectl exec/attach reviews carry PodExecOptions, not a pod spec: nothing new is admitted to run."""
    body = review("PodExecOptions", {"metadata": {"name": "web"}, "kind": "PodExecOptions",
                                     "command": ["sh"], "stdin": True}, operation="CONNECT")
    out = verdict(webhook, body)
    assert out["allowed"] is True and "CONNECT" in out["status"]["message"]


def _webhook_cli(world: GateWorld, *args: str, wait: float = 20) -> tuple[int | None, str, int]:
    """Run `notary gate webhook ARGS` on a free port; (exit code or None if it kept serving, stderr, port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "notary.cli.main", "--config", str(world.config), "gate",
                             "webhook", "--port", str(port), *args], env=world.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        code: int | None = proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        stop_process(proc)  # type: ignore[arg-type]
    return code, proc.stderr.read() if proc.stderr else "", port


@pytest.mark.parametrize("args", [
    ("--cert", "", "--key", ""),
    ("--cert", "", "--key", "tls.key"),
    ("--cert", " ", "--key", " "),
    ("--key", "tls.key"),
    (),
    ("--insecure-plain-http", "--host", "0.0.0.0"),
    ("--insecure-plain-http", "--cert", "tls.crt", "--key", "tls.key"),
])
def test_empty_tls_paths_refuse_to_start(world: GateWorld, args: tuple[str, ...]) -> None:
    """An empty --cert/--key used to mean "serve AdmissionReview over plain HTTP": now a usage error, one line."""
    code, stderr, port = _webhook_cli(world, *args, wait=20)
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("notary: usage: "), stderr
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_plain_http_only_with_the_explicit_flag_and_a_warning(world: GateWorld) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "notary.cli.main", "--config", str(world.config), "gate",
                             "webhook", "--insecure-plain-http", "--port", str(port)], env=world.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                resp = requests.post(f"http://127.0.0.1:{port}/validate", json=pod(f"registry.example/app@{GOOD}"),
                                     timeout=5)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "plain-HTTP webhook did not start"
                time.sleep(0.1)
        assert resp.status_code == 200 and resp.json()["response"]["allowed"] is True
    finally:
        stop_process(proc)  # type: ignore[arg-type]
    stderr = proc.stderr.read() if proc.stderr else ""
    assert "warning: --insecure-plain-http" in stderr and "local tests only" in stderr


def test_busy_and_decided_log_lines_name_the_object_alike() -> None:
    """A refusal for a full queue and a decision name the same namespace and object (metadata's namespace when
    the review has none: the API server leaves it out for some objects)."""
    from notary.gate.frontends.webhook import _where

    review = {"uid": "u", "kind": {"kind": "Pod"}, "object": {"metadata": {"generateName": "web-", "namespace": "prod"}}}
    assert _where(review) == {"namespace": "prod", "object": "Pod/web-"}
    assert _where({"uid": "u", "namespace": "ns", "kind": "Pod", "object": None}) == {"namespace": "ns",
                                                                                      "object": "?/?"}


def test_pod_naming_a_host_layout_is_refused_without_reading_it(webhook: Webhook, world: GateWorld,
                                                                 busybox_layout: Path, tmp_path: Path) -> None:
    """A Pod's image string is the submitter's, not the operator's: `oci:/path` would have the webhook read a
    layout on its own host (here one that is notarized, so reading it would admit the Pod), `oci-archive:` a
    FIFO it would block on. Both are refused as not image references, and the refusal is logged."""
    from tests.support.images import manifest_of

    digest, _ = manifest_of(busybox_layout, "v1")
    world.notarize(Subject(digest, "registry.example/app", "oci-manifest", names=("registry.example/app",)))
    fifo = tmp_path / "archive.tar"
    import os

    os.mkfifo(fifo)
    for image in (f"oci:{busybox_layout}:v1", f"oci-archive:{fifo}", f"docker-archive:{fifo}",
                  "docker-daemon:registry.example/app:1", "registry://registry.example/app:1"):
        started = time.monotonic()
        out = verdict(webhook, pod(image))
        assert out["allowed"] is False, (image, out)
        assert "not an image reference" in out["status"]["message"], out
        assert time.monotonic() - started < 10
        line = world.decisions()[-1]
        assert line["image"] == image and line["decision"] == "refuse"


@pytest.mark.parametrize("image", ["oci:/etc", "oci-archive:/etc/passwd", "docker-archive:/root/x.tar",
                                   "docker-daemon:busybox", "registry://127.0.0.1:1/x:1", "docker://x:1",
                                   "/etc/passwd", "../layout", "file:///etc/passwd", "oci:layout:v1"])
def test_workload_image_strings_that_are_not_references_never_reach_a_source(image: str) -> None:
    from notary.errors import InputError
    from notary.gate.resolve import resolve_reference

    with pytest.raises(InputError, match="not an image reference"):
        resolve_reference(image)
