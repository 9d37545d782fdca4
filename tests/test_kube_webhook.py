"""notary's admission webhook behind a real kube-apiserver: the API server calls it and admits or denies.

docs/kubernetes/webhook.yaml is what registers the webhook here (only its CA placeholder is filled and its
in-cluster Service reference swapped for the test webhook's 127.0.0.1 URL), and docs/kubernetes/deployment.yaml
is applied with strict field validation: the shipped manifests cannot rot without a test failing. The webhook
runs as the real CLI (`notary gate webhook --cert --key --port`); images live in the real loopback registry
and tags are resolved through it.
"""

from __future__ import annotations

import base64
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.kube import KubeClient, KubeCluster, yaml_documents, yaml_kind
from tests.support.pushed_images import PushedImage, gate_world, pushed_images  # noqa: F401 - fixture
from tests.support.registry import registry  # noqa: F401 - fixture
from tests.support.runtimes import GateWorld, Webhook

DOCS = Path(__file__).resolve().parents[1] / "docs" / "kubernetes"
CA_PLACEHOLDER = 'caBundle: "<base64 PEM of the CA>"'
GATED = "prod"
DENIED_BY = 'admission webhook "gate.notary.dev" denied the request: notary refused'


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    kube = KubeCluster(tmp_path_factory.mktemp("kube"))
    try:
        kube.client.create_namespace(GATED)
        yield kube
    finally:
        kube.stop()


@pytest.fixture(scope="module")
def images(pushed_images: dict[str, PushedImage]) -> dict[str, PushedImage]:  # noqa: F811 - fixture
    return pushed_images


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, images: dict[str, PushedImage]) -> GateWorld:
    return gate_world(tmp_path_factory.mktemp("kube-gate") / "world", images, "CVE-2026-4242")


@pytest.fixture(scope="module")
def webhook(world: GateWorld) -> Iterator[Webhook]:
    with Webhook(world, "--insecure") as hook:  # --insecure: the loopback registry is plain HTTP
        yield hook


def webhook_configuration(client: KubeClient, cert: Path, url: str) -> dict[str, Any]:
    """docs/kubernetes/webhook.yaml as the API server reads it, pointed at url (the test webhook, or the load
    balancer in front of its replicas) and trusting cert."""
    text = (DOCS / "webhook.yaml").read_text()
    assert CA_PLACEHOLDER in text, "webhook.yaml changed its caBundle placeholder: update this test with it"
    ca = base64.b64encode(cert.read_bytes()).decode()
    resp = client.create_yaml(text.replace(CA_PLACEHOLDER, f'caBundle: "{ca}"'), dry_run=True)
    assert resp.status_code == 201, resp.text
    config = resp.json()
    for hook_entry in config["webhooks"]:
        client_config = hook_entry["clientConfig"]
        assert client_config["service"]["path"] == "/validate"
        del client_config["service"]  # in a cluster: the notary-gate Service; here: the process on loopback
        client_config["url"] = url + "/validate"
    for key in ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields"):
        config["metadata"].pop(key, None)
    return config


@pytest.fixture(scope="module")
def kube(cluster: KubeCluster, webhook: Webhook, images: dict[str, PushedImage]) -> KubeClient:
    """The API server with docs/kubernetes/webhook.yaml registered, once the webhook is in effect."""
    client = cluster.client
    assert webhook.cert is not None
    resp = client.create(webhook_configuration(client, webhook.cert, webhook.url))
    assert resp.status_code == 201, resp.text
    deadline = time.monotonic() + 60
    while True:  # the API server picks configurations up asynchronously: wait until it calls notary
        probe = client.create(pod(images["unsigned"].tag_ref), dry_run=True)
        if probe.status_code == 403 and DENIED_BY in probe.json().get("message", ""):
            return client
        assert time.monotonic() < deadline, f"webhook never took effect: {probe.status_code} {probe.text}"
        time.sleep(0.5)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pod_spec(*images: str, init: tuple[str, ...] = (), restart: str = "Always") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)],
                            "restartPolicy": restart}
    if init:
        spec["initContainers"] = [{"name": f"init{i}", "image": im} for i, im in enumerate(init)]
    return spec


def pod(*images: str, namespace: str = GATED, init: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": _name("pod"), "namespace": namespace},
            "spec": pod_spec(*images, init=init)}


def deployment(*images: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
    labels = {"app": _name("app")}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": _name("deploy"), "namespace": GATED},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec(*images, init=init)}}}


def job(*images: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": _name("job"), "namespace": GATED},
            "spec": {"template": {"spec": pod_spec(*images, restart="Never")}}}


def cronjob(*images: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": _name("cron"), "namespace": GATED},
            "spec": {"schedule": "*/5 * * * *",
                     "jobTemplate": {"spec": {"template": {"spec": pod_spec(*images, restart="OnFailure")}}}}}


def assert_admitted(client: KubeClient, obj: dict[str, Any]) -> None:
    resp = client.create(obj)
    assert resp.status_code == 201, resp.text
    meta = obj["metadata"]
    assert client.get(obj["kind"], meta["name"], meta.get("namespace")).status_code == 200


def assert_denied(client: KubeClient, obj: dict[str, Any], *reasons: str) -> str:
    """The API server answers 403 with notary's message, and the object was not stored."""
    resp = client.create(obj)
    assert resp.status_code == 403, resp.text
    message = resp.json()["message"]
    assert DENIED_BY in message, message
    for reason in reasons:
        assert reason in message, message
    meta = obj["metadata"]
    assert client.get(obj["kind"], meta["name"], meta.get("namespace")).status_code == 404
    return str(message)


# ---------------------------------------------------------------- Pods


def test_pod_with_a_notarized_image_named_by_tag_is_admitted(kube: KubeClient, images: dict[str, PushedImage],
                                                              world: GateWorld) -> None:
    obj = pod(images["good"].tag_ref)
    assert_admitted(kube, obj)
    line = [d for d in world.decisions() if d.get("object") == f"Pod/{obj['metadata']['name']}"][-1]
    assert line["front_end"] == "webhook" and line["decision"] == "allow"
    assert line["digest"] == images["good"].digest and line["namespace"] == GATED


def test_pod_with_a_notarized_image_pinned_by_digest_is_admitted(kube: KubeClient,
                                                                 images: dict[str, PushedImage]) -> None:
    assert_admitted(kube, pod(images["good"].digest_ref))


def test_pod_with_a_never_notarized_image_is_denied_with_notarys_reason(kube: KubeClient,
                                                                        images: dict[str, PushedImage],
                                                                        world: GateWorld) -> None:
    obj = pod(images["good"].tag_ref, images["unsigned"].tag_ref)
    message = assert_denied(kube, obj, f"spec.containers[1] (c1) image {images['unsigned'].tag_ref}", "not notarized")
    assert "spec.containers[0]" not in message  # the notarized container is not blamed
    line = [d for d in world.decisions() if d.get("object") == f"Pod/{obj['metadata']['name']}"][-1]
    assert line["decision"] == "refuse" and line["digest"] == images["unsigned"].digest


def test_pod_with_a_revoked_image_is_denied_with_the_revocation_reason(kube: KubeClient,
                                                                       images: dict[str, PushedImage]) -> None:
    assert_denied(kube, pod(images["revoked"].tag_ref), "revoked", "CVE-2026-4242")


def test_pod_with_a_tag_the_registry_does_not_have_is_denied(kube: KubeClient,
                                                             images: dict[str, PushedImage]) -> None:
    missing_tag = f"{images['good'].name}:no-such-tag"
    assert_denied(kube, pod(missing_tag), f"image {missing_tag}", "cannot resolve")


def test_pod_update_to_an_unnotarized_image_is_denied(kube: KubeClient, images: dict[str, PushedImage]) -> None:
    obj = pod(images["good"].tag_ref)
    assert_admitted(kube, obj)
    name = obj["metadata"]["name"]
    patch = {"spec": {"containers": [{"name": "c0", "image": images["unsigned"].tag_ref}]}}
    resp = kube.patch("Pod", name, patch, namespace=GATED, patch_type="application/strategic-merge-patch+json")
    assert resp.status_code == 403 and DENIED_BY in resp.json()["message"], resp.text
    stored = kube.get("Pod", name, GATED).json()
    assert stored["spec"]["containers"][0]["image"] == images["good"].tag_ref


def test_ephemeral_container_with_an_unnotarized_image_is_denied(kube: KubeClient,
                                                                 images: dict[str, PushedImage]) -> None:
    """`kubectl debug` writes the pods/ephemeralcontainers subresource: the webhook sees it as a Pod UPDATE."""
    obj = pod(images["good"].tag_ref)
    assert_admitted(kube, obj)
    name = obj["metadata"]["name"]

    def add_debug(image: str, debug_name: str) -> Any:
        patch = {"spec": {"ephemeralContainers": [{"name": debug_name, "image": image, "targetContainerName": "c0",
                                                   "terminationMessagePolicy": "File"}]}}
        return kube.patch("Pod", name, patch, namespace=GATED, subresource="ephemeralcontainers",
                          patch_type="application/strategic-merge-patch+json")

    denied = add_debug(images["unsigned"].tag_ref, "debug0")
    assert denied.status_code == 403, denied.text
    assert "spec.ephemeralContainers[0] (debug0)" in denied.json()["message"]
    assert not kube.get("Pod", name, GATED).json()["spec"].get("ephemeralContainers")
    allowed = add_debug(images["good"].tag_ref, "debug1")
    assert allowed.status_code == 200, allowed.text
    stored = kube.get("Pod", name, GATED).json()["spec"]["ephemeralContainers"]
    assert [c["name"] for c in stored] == ["debug1"]


# ---------------------------------------------------------------- workloads


def test_deployment_with_notarized_images_is_admitted(kube: KubeClient, images: dict[str, PushedImage]) -> None:
    assert_admitted(kube, deployment(images["good"].tag_ref, init=(images["good"].digest_ref,)))


def test_deployment_with_an_unnotarized_init_container_is_denied(kube: KubeClient,
                                                                 images: dict[str, PushedImage]) -> None:
    assert_denied(kube, deployment(images["good"].tag_ref, init=(images["unsigned"].tag_ref,)),
                  "spec.template.spec.initContainers[0] (init0)", "not notarized")


def test_job_with_a_notarized_image_is_admitted(kube: KubeClient, images: dict[str, PushedImage]) -> None:
    assert_admitted(kube, job(images["good"].tag_ref))


def test_job_with_a_revoked_image_is_denied(kube: KubeClient, images: dict[str, PushedImage]) -> None:
    assert_denied(kube, job(images["revoked"].digest_ref), "spec.template.spec.containers[0]", "CVE-2026-4242")


def test_cronjob_with_a_notarized_image_is_admitted(kube: KubeClient, images: dict[str, PushedImage]) -> None:
    assert_admitted(kube, cronjob(images["good"].tag_ref))


def test_cronjob_with_an_unnotarized_image_is_denied(kube: KubeClient, images: dict[str, PushedImage]) -> None:
    assert_denied(kube, cronjob(images["unsigned"].tag_ref), "spec.jobTemplate.spec.template.spec.containers[0]",
                  "not notarized")


# ---------------------------------------------------------------- the shipped manifests and exemptions


def test_deployment_manifest_applies_and_its_exempt_namespace_admits_the_unnotarized_gate(
        kube: KubeClient, images: dict[str, PushedImage]) -> None:
    """Every object of docs/kubernetes/deployment.yaml passes the API server's strict validation; the gate's own
    namespace is exempted by webhook.yaml's namespaceSelector, so its (unnotarized) Deployment is admitted."""
    created = []
    for doc in yaml_documents((DOCS / "deployment.yaml").read_text()):
        resp = kube.create_yaml(doc)
        assert resp.status_code == 201, f"{yaml_kind(doc)}: {resp.text}"
        created.append(resp.json()["kind"])
    assert {"Namespace", "ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment", "PodDisruptionBudget",
            "Service"} <= set(created)
    assert_highly_available(kube)
    kube.ensure_default_service_account("notary-system")
    for namespace in ("notary-system", "kube-system"):
        kube.ensure_default_service_account(namespace)
        assert_admitted(kube, pod(images["unsigned"].tag_ref, namespace=namespace))


def assert_highly_available(kube: KubeClient) -> None:
    """The HA settings of deployment.yaml, as the API server stored them (docs/gate.md, "High availability")."""
    from notary.gate.frontends.webhook_ha import ACCEPT_BOUND, CLOSE_BOUND, FINISH_BOUND

    deploy = kube.get("Deployment", "notary-gate", "notary-system").json()["spec"]
    assert deploy["replicas"] >= 2
    assert deploy["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    spec = deploy["template"]["spec"]
    container = spec["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    args = container["args"]
    drain = float(args[args.index("--drain-seconds") + 1])
    # the whole exit (drain, the backlog's accepts, replies in flight, the ledger's close) ends before SIGKILL
    assert spec["terminationGracePeriodSeconds"] > drain + ACCEPT_BOUND + FINISH_BOUND + CLOSE_BOUND
    labels = deploy["template"]["metadata"]["labels"]
    spread = spec["topologySpreadConstraints"]
    assert any(c["topologyKey"] == "kubernetes.io/hostname" and c["labelSelector"]["matchLabels"] == labels
               for c in spread)
    anti = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    pvc = kube.get("PersistentVolumeClaim", "notary-gate-state", "notary-system").json()["spec"]
    assert pvc["accessModes"] == ["ReadWriteMany"]  # every replica shares one forward-only trusted state
    pdb = kube.get("PodDisruptionBudget", "notary-gate", "notary-system").json()["spec"]
    assert pdb["minAvailable"] == 1 and pdb["selector"]["matchLabels"] == labels
    assert pdb["minAvailable"] < deploy["replicas"]  # a drain can evict one, and one always answers


def test_namespace_claiming_an_exempt_name_by_label_is_still_gated(kube: KubeClient,
                                                                    images: dict[str, PushedImage]) -> None:
    """The selector matches the kubernetes.io/metadata.name label, which the API server sets to the real name:
    a namespace that labels itself notary-system is not exempt."""
    kube.create_namespace("lookalike", {"kubernetes.io/metadata.name": "notary-system"})
    labels = kube.get("Namespace", "lookalike").json()["metadata"]["labels"]
    assert labels["kubernetes.io/metadata.name"] == "lookalike"
    assert_denied(kube, pod(images["unsigned"].tag_ref, namespace="lookalike"), "not notarized")


def test_webhook_down_with_failure_policy_fail_denies_everything(kube: KubeClient, webhook: Webhook,
                                                                 images: dict[str, PushedImage]) -> None:
    webhook.stop()
    try:
        obj = pod(images["good"].tag_ref)
        resp = kube.create(obj)
        assert resp.status_code >= 400, resp.text
        assert 'failed calling webhook "gate.notary.dev"' in resp.json()["message"]
        assert kube.get("Pod", obj["metadata"]["name"], GATED).status_code == 404
    finally:
        webhook.start()
    assert_admitted(kube, pod(images["good"].tag_ref))  # the same request passes once notary answers again


def test_busy_webhook_refuses_with_notarys_busy_message(kube: KubeClient, webhook: Webhook,
                                                       images: dict[str, PushedImage]) -> None:
    """With its worker and queue held by clients that never finish a TLS handshake, the webhook answers the
    API server HTTP 503 with a Status saying the gate is busy: the object is refused with that message
    (failurePolicy: Fail), not after a timeout; the same request passes once the webhook is free. (A text body
    would be lost: the API server shows only "the server is currently unable to handle the request"; with
    Retry-After it would retry until its own timeout and show "context deadline exceeded".)"""
    saved = webhook.args
    webhook.stop()
    webhook.args = (*saved, "--workers", "1", "--queue", "1")
    webhook.start()
    held = [socket.create_connection(("127.0.0.1", webhook.port), timeout=30)]
    try:
        time.sleep(0.3)
        held.append(socket.create_connection(("127.0.0.1", webhook.port), timeout=30))
        time.sleep(0.3)
        obj = pod(images["good"].tag_ref)
        started = time.monotonic()
        resp = kube.create(obj)
        assert time.monotonic() - started < 5
        assert resp.status_code >= 400, resp.text
        message = resp.json()["message"]
        assert 'failed calling webhook "gate.notary.dev"' in message and "the gate is busy" in message, message
        assert kube.get("Pod", obj["metadata"]["name"], GATED).status_code == 404
    finally:
        for sock in held:
            sock.close()
        webhook.stop()
        webhook.args = saved
        webhook.start()
    assert_admitted(kube, pod(images["good"].tag_ref))
