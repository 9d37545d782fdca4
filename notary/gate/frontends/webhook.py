"""Kubernetes validating admission webhook: AdmissionReview v1 over TLS for Pods and pod templates.

Every container, init container and ephemeral container image in the object is checked through the gate;
tags are resolved to digests through the registry (the gate verifies digests, never tags). An image string is
the Pod author's, so only an image reference or a bare digest is read: a notary SUBJECT form (`oci:/path`,
`docker-archive:...`) would have the webhook read its own host's files for whoever may create a Pod, and is
refused as not an image reference (gate.resolve.resolve_reference). One refused image
refuses the object, and the response's status message says which image and why. A malformed request is
answered with an HTTP error (the API server then applies the webhook's failurePolicy: use Fail).

Operations (admission.k8s.io/v1): CREATE and UPDATE carry the object being written, and one without it is a
malformed review (HTTP 400), never an allow. DELETE carries no object (only oldObject) and runs nothing: it is
allowed. CONNECT (exec, attach, port-forward) carries the subresource's options object, not a pod spec: it
starts no new image and is allowed once the object is there (webhook.yaml does not register it). Every other
operation is malformed.

TLS only: a webhook without a certificate and key does not start (UsageError), unless plain HTTP was asked
for explicitly (`--insecure-plain-http`, local tests), and then only on a loopback address.

stdlib only, on the gate servers' shared bounded model (`pool`): a 1024-deep listen backlog, an acceptor
that only accepts, `workers` threads (each does its connection's TLS handshake, within the handler's
timeout, so a slow or silent client never stalls the acceptor), at most `queue_size` connections waiting
for one, and past that a small refusal path that completes the handshake and answers HTTP 503 with a
Kubernetes Status saying the gate is busy (with failurePolicy: Fail the API server refuses the object and
shows it). A request body size limit, socket timeouts, /healthz (liveness: the process answers) and /readyz
(readiness: the ledger head verifies and the server is not draining; webhook_ha.py, with the SIGTERM drain).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import HTTPServer
from typing import TYPE_CHECKING

from notary.errors import EXIT_INTEGRITY, EXIT_UNAVAILABLE, EXIT_USAGE, InputError, NotaryError, UsageError
from notary.gate.decision import Gate, GateDecision
from notary.gate.frontends.pool import (
    DEFAULT_QUEUE,
    DEFAULT_WORKERS,
    BusyReply,
    PooledHandler,
    PooledServer,
    tls_handshake,
)
from notary.gate.frontends.webhook_ha import Drainable, Readiness, head_probe
from notary.jsonsafe import JsonObject, parse
from notary.sources.base import SourceOptions

if TYPE_CHECKING:
    from notary.gate.metrics import Metrics

DEFAULT_MAX_BODY = 1 << 20
DRAIN_LIMIT = 64 << 20  # larger refused bodies are cut off (the client then sees a reset)
TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet", "ReplicationController"}
CONTAINER_FIELDS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class ImageUse:
    field: str  # e.g. spec.template.spec.initContainers[0]
    container: str
    image: str


def pod_spec_of(kind: str, obj: Mapping[str, object]) -> tuple[str, Mapping[str, object]] | None:
    """(path, pod spec) of a Pod or a workload's pod template; None for kinds without one."""
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return None
    if kind == "Pod":
        return "spec", spec
    if kind in TEMPLATE_KINDS:
        template = spec.get("template")
        if isinstance(template, Mapping) and isinstance(template.get("spec"), Mapping):
            return "spec.template.spec", template["spec"]
        return None
    if kind == "CronJob":
        job = spec.get("jobTemplate")
        job_spec = job.get("spec") if isinstance(job, Mapping) else None
        template = job_spec.get("template") if isinstance(job_spec, Mapping) else None
        if isinstance(template, Mapping) and isinstance(template.get("spec"), Mapping):
            return "spec.jobTemplate.spec.template.spec", template["spec"]
    return None


def image_uses(kind: str, obj: Mapping[str, object]) -> Iterator[ImageUse]:
    if kind == "EphemeralContainers":  # the pods/ephemeralcontainers subresource before Kubernetes 1.23
        yield from _containers("", "ephemeralContainers", obj.get("ephemeralContainers"))
        return
    found = pod_spec_of(kind, obj)
    if found is None:
        if kind == "Pod" or kind in TEMPLATE_KINDS or kind == "CronJob":
            raise InputError(f"{kind} object has no pod spec")
        return
    path, spec = found
    for field_name in CONTAINER_FIELDS:
        yield from _containers(path + ".", field_name, spec.get(field_name))


def _containers(prefix: str, field_name: str, containers: object) -> Iterator[ImageUse]:
    where = f"{prefix}{field_name}"
    if containers is None:
        return
    if not isinstance(containers, list):
        raise InputError(f"{where} is not a list")
    for i, container in enumerate(containers):
        if not isinstance(container, Mapping):
            raise InputError(f"{where}[{i}] is not an object")
        image = container.get("image")
        if not isinstance(image, str) or not image.strip():
            raise InputError(f"{where}[{i}] has no image")
        yield ImageUse(f"{where}[{i}]", str(container.get("name", "")), image.strip())


def parse_review(body: bytes) -> JsonObject:
    review = parse(body, "AdmissionReview request body")  # depth, integer size, surrogates, duplicate keys
    if not isinstance(review, dict) or review.get("kind") != "AdmissionReview":
        raise InputError("request body is not an AdmissionReview")
    if review.get("apiVersion") != "admission.k8s.io/v1":
        raise InputError(f"unsupported AdmissionReview version {review.get('apiVersion')!r}",
                         hint="configure admissionReviewVersions: [v1]")
    request = review.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str) or not request["uid"]:
        raise InputError("AdmissionReview has no request.uid")
    return request


class Reviewer:
    """Turns an AdmissionReview request into a response through a Gate."""

    def __init__(self, gate: Gate, options: SourceOptions | None = None,
                 resolve: Callable[[str, SourceOptions], tuple[str | None, list[str]]] | None = None) -> None:
        from notary.gate.resolve import resolve_reference

        self.gate = gate
        self.options = options or SourceOptions()
        self.resolve = resolve or resolve_reference

    def review(self, request: Mapping[str, object]) -> dict[str, object]:
        uid = request["uid"]
        kind_field = request.get("kind")
        kind = kind_field.get("kind") if isinstance(kind_field, Mapping) else None
        operation = request.get("operation")
        obj = request.get("object")
        if operation == "DELETE":
            return _response(uid, True, "DELETE runs nothing")
        if operation not in ("CREATE", "UPDATE", "CONNECT"):
            raise InputError(f"AdmissionReview request has no known operation (got {str(operation)[:40]!r})")
        if not isinstance(obj, Mapping):
            raise InputError(f"AdmissionReview {operation} request has no object: only DELETE comes without one")
        if operation == "CONNECT":
            return _response(uid, True, "CONNECT starts no new image")
        if not isinstance(kind, str):
            raise InputError("AdmissionReview request has no kind")
        where = _where(request)
        refused: list[tuple[ImageUse, GateDecision]] = []
        seen: dict[str, GateDecision] = {}
        uses = list(image_uses(kind, obj))
        for use in uses:
            decision = seen.get(use.image)
            if decision is None:
                decision = self._decide(use, where)
                seen[use.image] = decision
            if not decision.allowed:
                refused.append((use, decision))
        if refused:
            message = "; ".join(f"{use.field} ({use.container}) image {use.image}: {d.reason}" for use, d in refused)
            return _response(uid, False, f"notary refused: {message}", code=403,
                             reason="Forbidden")
        return _response(uid, True, f"notary: {len(seen)} image(s) verified")

    def _decide(self, use: ImageUse, where: Mapping[str, object]) -> GateDecision:
        extra = {**where, "field": use.field}
        try:
            name, digests = self.resolve(use.image, self.options)
        except NotaryError as exc:
            decision = GateDecision(image=use.image, digest=None, allowed=False,
                                    exit_code=exc.exit_code or EXIT_USAGE,
                                    reason=f"cannot resolve {use.image} to a digest: {exc.one_line()}",
                                    via="error", extra=extra)
            self.gate.log_only(decision)
            return decision
        except Exception as exc:  # noqa: BLE001 - fail closed
            decision = GateDecision(image=use.image, digest=None, allowed=False, exit_code=EXIT_INTEGRITY,
                                    reason=f"cannot resolve {use.image}: "
                                    f"{type(exc).__name__}: {exc}",
                                    via="error", extra=extra)
            self.gate.log_only(decision)
            return decision
        return self.gate.check(name or use.image, digests, front_end="webhook", extra=extra)


def _response(uid: object, allowed: bool, message: str, *, code: int = 200,
              reason: str | None = None) -> dict[str, object]:
    status: dict[str, object] = {"code": code, "message": message}
    if reason:
        status["reason"] = reason
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": uid, "allowed": allowed, "status": status}}


class _Handler(PooledHandler):
    """No access log (the decision log is the record); kept-alive connections hand their worker on."""

    server: WebhookServer
    timeout = 15.0
    request_deadline = 10.0  # the API server's own limit for a review: a slower sender is not one
    server_version = "notary-gate"

    def _send(self, code: int, body: bytes, ctype: str = "application/json", *, close: bool = False) -> None:
        self.send_body(code, body, {"Content-Type": ctype}, close=close)

    def _error(self, code: int, message: str, *, close: bool = False) -> None:
        self._send(code, json.dumps({"error": message}).encode(), close=close)

    def _discard(self, length: int) -> None:
        """Read (and drop) a refused body, bounded, so the client gets to read the 413 instead of a reset."""
        remaining = min(max(length, 0), DRAIN_LIMIT)
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass

    def end_reply_headers(self) -> None:
        """While draining, every reply ends its connection: the client reconnects, to a ready replica."""
        if self.server.readiness.draining.is_set():
            self.send_header("Connection", "close")
            self.end_headers()
        else:
            super().end_reply_headers()

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        if path in ("/healthz", "/livez"):
            self._send(200, b"ok\n", "text/plain")
        elif path == "/readyz":
            ready, why = self.server.readiness.state()
            self._send(200 if ready else 503, f"{'ok' if ready else 'not ready'}: {why}\n".encode(), "text/plain")
        elif self.path.split("?", 1)[0] == "/metrics" and self.server.metrics is not None:
            self.send_metrics(self.server.metrics)
        else:
            self._error(404, "not found")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        if self.path.split("?", 1)[0] not in ("/", "/validate"):
            self._error(404, "not found; POST AdmissionReview to /validate", close=True)
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None or "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._error(411, "Content-Length required", close=True)
            return
        try:
            length = int(length_text)
        except ValueError:
            self._error(400, "bad Content-Length", close=True)
            return
        if length < 0 or length > self.server.max_body:
            self._error(413, f"request body over the {self.server.max_body}-byte limit", close=True)
            self._discard(length)
            return
        body = self.read_body(length)
        if len(body) != length:
            self._error(400, "request body shorter than Content-Length", close=True)
            return
        try:
            request = parse_review(body)
            response = self.server.reviewer.review(request)
        except NotaryError as exc:
            self._error(400, exc.one_line())
            return
        except Exception as exc:  # noqa: BLE001 - fail closed with an answer the API server can show
            self._error(500, f"internal error: {type(exc).__name__}: {exc}")
            return
        self._send(200, json.dumps(response).encode())


class WebhookServer(Drainable, PooledServer, HTTPServer):
    """AdmissionReview over TLS on the bounded pool (`pool.PooledServer`); accepting never handshakes; /readyz
    and the SIGTERM drain from `webhook_ha.Drainable`."""

    def __init__(self, address: tuple[str, int], reviewer: Reviewer, context: ssl.SSLContext | None,
                 max_body: int = DEFAULT_MAX_BODY, metrics: Metrics | None = None, *, workers: int = DEFAULT_WORKERS,
                 queue_size: int = DEFAULT_QUEUE) -> None:
        self.reviewer = reviewer
        self.max_body = max_body
        self.metrics = metrics  # notary.gate.metrics.Metrics, served at GET /metrics on the same port
        self.init_drain(Readiness(head_probe(reviewer.gate)))
        self.init_pool(workers, queue_size)
        super().__init__(address, _Handler)
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.start_pool()

    def open_connection(self, request: socket.socket, seconds: float) -> bool:
        """The TLS handshake, in the worker (or refuser) and all of it within seconds."""
        return tls_handshake(request, seconds) if isinstance(request, ssl.SSLSocket) else True

    def busy_reply(self, method: str, path: str, body: bytes) -> BusyReply:
        """Queue full: a Kubernetes Status the API server shows (and, failurePolicy Fail, refuses the object
        with); a review refused this way is logged like every other refusal (exit code 4).

        A Status, not text: the API server replaces a text 503 body with "the server is currently unable to
        handle the request". No Retry-After: it would retry until its own timeout and show "context deadline
        exceeded" instead (both seen with kube-apiserver v1.34, tests/test_kube_webhook.py)."""
        reason = (f"the gate is busy: {self.workers} reviews being decided and {self.queue_size} waiting; "
                  "refusing rather than letting the API server time out")
        if method == "POST" and path in ("/", "/validate"):
            self._log_busy(body, reason)
        status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                  "message": f"notary refused: {reason}", "reason": "ServiceUnavailable", "code": 503}
        return BusyReply(503, json.dumps(status).encode(), {"Content-Type": "application/json"})

    def _log_busy(self, body: bytes, reason: str) -> None:
        extra: dict[str, object] = {}
        try:
            request = parse_review(body)
            extra = {**_where(request), "uid": request["uid"]}
        except NotaryError:
            pass
        self.reviewer.gate.log_only(GateDecision(image=None, digest=None, allowed=False, exit_code=EXIT_UNAVAILABLE,
                                                 reason=reason, via="error", extra=extra))


def _where(request: Mapping[str, object]) -> dict[str, object]:
    """Namespace and kind/name of a review's object, as every decision-log line about it names them."""
    kind = request.get("kind")
    kind_name = kind.get("kind") if isinstance(kind, Mapping) else None
    obj = request.get("object")
    raw_meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    meta: Mapping[str, object] = raw_meta if isinstance(raw_meta, Mapping) else {}
    return {"namespace": request.get("namespace") or meta.get("namespace"),
            "object": f"{kind_name or '?'}/{meta.get('name') or meta.get('generateName') or '?'}"}


def tls_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise InputError(f"cannot load TLS certificate {certfile} / key {keyfile}: {exc}") from exc
    return context


def check_listen_options(certfile: str | None, keyfile: str | None, host: str | None, *,
                         plain_http: bool = False) -> str:
    """The address to listen on, or UsageError: TLS needs both files named; plain HTTP only when asked, on loopback.

    An empty path used to mean "no TLS" and silently served AdmissionReview in clear text."""
    if plain_http:
        if certfile is not None or keyfile is not None:
            raise UsageError("--insecure-plain-http serves without TLS: drop --cert and --key, or drop the flag")
        host = host or "127.0.0.1"
        if not _is_loopback(host):
            raise UsageError(f"plain HTTP is for local tests: listen on a loopback address, not {host!r}",
                             hint="use --host 127.0.0.1, or --cert and --key for TLS")
        return host
    if certfile is None or keyfile is None:
        raise UsageError("the webhook serves TLS only: --cert and --key name the certificate and key files",
                         hint="--insecure-plain-http serves plain HTTP on loopback, for local tests")
    if not certfile.strip() or not keyfile.strip():
        raise UsageError("--cert and --key must name files: an empty path would serve without TLS")
    return host or "0.0.0.0"


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(gate: Gate, *, host: str, port: int, certfile: str | None, keyfile: str | None,
                options: SourceOptions | None = None, max_body: int = DEFAULT_MAX_BODY,
                plain_http: bool = False, metrics: Metrics | None = None, workers: int = DEFAULT_WORKERS,
                queue_size: int = DEFAULT_QUEUE) -> WebhookServer:
    """The webhook server: TLS with certfile and keyfile; plain HTTP only with plain_http on loopback."""
    host = check_listen_options(certfile, keyfile, host, plain_http=plain_http)
    context = None if plain_http else tls_context(str(certfile), str(keyfile))
    return WebhookServer((host, port), Reviewer(gate, options), context, max_body, metrics, workers=workers,
                         queue_size=queue_size)


def serve_in_thread(server: WebhookServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="notary-webhook", daemon=True)
    thread.start()
    return thread
