"""A real Kubernetes control plane on loopback for tests: etcd + kube-apiserver, and a small client.

`KubeCluster(root)` starts etcd (own data dir, free client and peer ports) and kube-apiserver (free secure
port, a serving certificate we made so clients can verify it, a static token file whose one user is in
`system:masters`, service-account keys, RBAC), waits for `/readyz`, and creates the `default`
ServiceAccount that the controller manager would create (without it the ServiceAccount admission plugin
refuses every Pod). `stop()` stops both with SIGTERM, as a service manager would.

There is no scheduler, controller manager or kubelet: objects are admitted (or not) and stored, never run.
That is exactly the part the admission webhook takes part in.

The client is `requests` against the REST API. YAML manifests (docs/kubernetes) are handed to the API server
as YAML (`application/yaml`): the server, not a Python YAML library, reads them, so what the tests apply is
what `kubectl apply -f` would send.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from tests.support.components import component_dir
from tests.support.processes import free_port, stop_process, wait_until
from tests.support.runtimes import self_signed_cert

# kind -> (API prefix, plural, namespaced) for what the tests create
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Pod": ("/api/v1", "pods", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Secret": ("/api/v1", "secrets", True),
    "Service": ("/api/v1", "services", True),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims", True),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "StatefulSet": ("/apis/apps/v1", "statefulsets", True),
    "DaemonSet": ("/apis/apps/v1", "daemonsets", True),
    "ReplicaSet": ("/apis/apps/v1", "replicasets", True),
    "Job": ("/apis/batch/v1", "jobs", True),
    "CronJob": ("/apis/batch/v1", "cronjobs", True),
    "ValidatingWebhookConfiguration": ("/apis/admissionregistration.k8s.io/v1",
                                       "validatingwebhookconfigurations", False),
}


def collection_path(kind: str, namespace: str | None = None) -> str:
    prefix, plural, namespaced = RESOURCES[kind]
    if namespaced:
        return f"{prefix}/namespaces/{namespace or 'default'}/{plural}"
    return f"{prefix}/{plural}"


def yaml_documents(text: str) -> list[str]:
    """The documents of a multi-document YAML manifest (split on `---` lines), comment-only ones dropped."""
    docs = re.split(r"(?m)^---[ \t]*$", text)
    return [d for d in docs if any(line.strip() and not line.lstrip().startswith("#") for line in d.splitlines())]


def yaml_kind(doc: str) -> tuple[str, str | None]:
    """(kind, metadata.namespace) of a manifest document, read from its top-level lines (enough to route it)."""
    kind = re.search(r"(?m)^kind:[ \t]*(\S+)", doc)
    namespace = re.search(r"(?m)^metadata:\n(?:[ \t]+.*\n)*?[ \t]+namespace:[ \t]*(\S+)", doc)
    if kind is None:
        raise ValueError(f"manifest document without kind: {doc[:80]!r}")
    return kind.group(1), namespace.group(1) if namespace else None


class KubeClient:
    """Bearer-token REST client for one API server, verifying its certificate."""

    def __init__(self, server: str, token: str, ca: Path) -> None:
        self.server = server
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        # per request, not session.verify: requests lets REQUESTS_CA_BUNDLE override a session's setting
        self.ca = str(ca)

    def request(self, method: str, path: str, *, body: Any = None, text: str | None = None,
                content_type: str = "application/json", params: Mapping[str, str] | None = None,
                timeout: float = 60) -> requests.Response:
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        data = text.encode() if text is not None else None
        return self.session.request(method, self.server + path, json=body, data=data, headers=headers,
                                    params=params, timeout=timeout, verify=self.ca)

    def create(self, obj: Mapping[str, Any], *, dry_run: bool = False) -> requests.Response:
        """POST obj to its collection (strict field validation: an unknown field is an error, not dropped)."""
        params = {"fieldValidation": "Strict", **({"dryRun": "All"} if dry_run else {})}
        meta = obj.get("metadata") or {}
        return self.request("POST", collection_path(obj["kind"], meta.get("namespace")), body=obj, params=params)

    def create_yaml(self, doc: str, *, namespace: str | None = None, dry_run: bool = False) -> requests.Response:
        """POST one YAML manifest document as YAML, the way kubectl would send its content."""
        kind, doc_namespace = yaml_kind(doc)
        params = {"fieldValidation": "Strict", **({"dryRun": "All"} if dry_run else {})}
        return self.request("POST", collection_path(kind, doc_namespace or namespace), text=doc,
                            content_type="application/yaml", params=params)

    def get(self, kind: str, name: str, namespace: str | None = None) -> requests.Response:
        return self.request("GET", f"{collection_path(kind, namespace)}/{name}")

    def patch(self, kind: str, name: str, patch: Any, *, namespace: str | None = None, subresource: str = "",
              patch_type: str = "application/merge-patch+json") -> requests.Response:
        path = f"{collection_path(kind, namespace)}/{name}" + (f"/{subresource}" if subresource else "")
        return self.request("PATCH", path, body=patch, content_type=patch_type)

    def delete(self, kind: str, name: str, namespace: str | None = None) -> requests.Response:
        return self.request("DELETE", f"{collection_path(kind, namespace)}/{name}")

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        """A namespace with its `default` ServiceAccount (what the controller manager would add)."""
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(labels or {})}}
        resp = self.create(ns)
        if resp.status_code not in (201, 409):
            raise RuntimeError(f"cannot create namespace {name}: {resp.status_code} {resp.text}")
        self.ensure_default_service_account(name)

    def ensure_default_service_account(self, namespace: str) -> None:
        sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}}
        resp = self.create(sa)
        if resp.status_code not in (201, 409):
            raise RuntimeError(f"cannot create {namespace}/default ServiceAccount: {resp.status_code} {resp.text}")


class KubeCluster:
    """etcd + kube-apiserver as child processes under root; `client` talks to the API server as an admin."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        etcd_bin = component_dir("etcd") / "etcd"
        apiserver_bin = component_dir("kube-apiserver") / "kube-apiserver"
        self.etcd: subprocess.Popen[bytes] | None = None
        self.apiserver: subprocess.Popen[bytes] | None = None
        try:
            self._start_etcd(etcd_bin)
            self._start_apiserver(apiserver_bin)
        except BaseException:
            self.stop()
            raise

    # ------------------------------------------------------------ etcd

    def _start_etcd(self, binary: Path) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        self.etcd_log = self.root / "etcd.log"
        with open(self.etcd_log, "wb") as log:
            self.etcd = subprocess.Popen(
                [str(binary), "--name", "test", "--data-dir", str(self.root / "etcd"),
                 "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
                 "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                 "--initial-cluster", f"test={peer_url}", "--log-level", "warn",
                 "--unsafe-no-fsync"],  # throwaway data: durability would only cost test time
                stdout=log, stderr=subprocess.STDOUT)
        wait_until("etcd", self.etcd, self.etcd_log, lambda: requests.get(self.etcd_url + "/health", timeout=2)
                   .json().get("health") == "true", timeout=60)

    # ------------------------------------------------------------ kube-apiserver

    def _start_apiserver(self, binary: Path) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self.cert, self.key = self_signed_cert(self.root / "pki")
        sa_key = ec.generate_private_key(ec.SECP256R1())
        sa_private, sa_public = self.root / "pki" / "sa.key", self.root / "pki" / "sa.pub"
        sa_private.write_bytes(sa_key.private_bytes(serialization.Encoding.PEM,
                                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                                    serialization.NoEncryption()))
        sa_public.write_bytes(sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                               serialization.PublicFormat.SubjectPublicKeyInfo))
        self.token = secrets.token_urlsafe(24)
        tokens = self.root / "pki" / "tokens.csv"
        tokens.write_text(f'{self.token},notary-test-admin,notary-test-admin,"system:masters"\n')
        tokens.chmod(0o600)
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        self.apiserver_log = self.root / "kube-apiserver.log"
        with open(self.apiserver_log, "wb") as log:
            self.apiserver = subprocess.Popen(
                [str(binary), "--etcd-servers", self.etcd_url, "--bind-address", "127.0.0.1",
                 "--advertise-address", "127.0.0.1", "--secure-port", str(port),
                 "--cert-dir", str(self.root / "apiserver-certs"),
                 "--tls-cert-file", str(self.cert), "--tls-private-key-file", str(self.key),
                 "--token-auth-file", str(tokens), "--authorization-mode", "RBAC",
                 "--service-account-issuer", "https://kubernetes.default.svc",
                 "--service-account-key-file", str(sa_public),
                 "--service-account-signing-key-file", str(sa_private),
                 "--service-cluster-ip-range", "10.96.0.0/16", "--profiling=false", "--v=1",
                 # no Endpoints for the `kubernetes` Service: 127.0.0.1 is not a valid endpoint address
                 "--endpoint-reconciler-type", "none"],
                stdout=log, stderr=subprocess.STDOUT)
        self.client = KubeClient(self.server, self.token, self.cert)

        def ready() -> bool:
            return self.client.request("GET", "/readyz", timeout=5).status_code == 200

        wait_until("kube-apiserver", self.apiserver, self.apiserver_log, ready, timeout=120)
        self.client.ensure_default_service_account("default")

    # ------------------------------------------------------------ common

    def stop(self) -> None:
        """kube-apiserver first (it holds etcd connections), then etcd."""
        stop_process(self.apiserver, grace=20)
        stop_process(self.etcd, grace=20)
