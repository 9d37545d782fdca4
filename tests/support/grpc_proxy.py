"""A real man in the middle for immudb tests: a loopback gRPC server that forwards raw bytes to a real immudb.

immudb-py talks plain HTTP/2 gRPC, so anyone on the path can rewrite requests and answers. This proxy does what
such an attacker would: every ImmuService call is forwarded byte for byte (metadata, the server's uuid header and
status codes included), except where a test installs a rewrite for one method. The rewrites make the *real*
server lie honestly: ask it for an older transaction, or for another key, or drop an entry from its answer; its
proofs stay valid, so only a client that knows what is complete can notice.

    proxy = GrpcProxy(server.address).start()
    proxy.requests["VerifiableGet"] = lambda raw: ...   # bytes -> bytes (parse with immudb.grpc.schema_pb2)
    proxy.responses["History"] = lambda raw: ...
    url = f"immudb://immudb@{proxy.address}/defaultdb"
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc

Rewrite = Callable[[bytes], bytes]
_SERVICE = "immudb.schema.ImmuService"


def _methods() -> dict[str, tuple[bool, bool]]:
    """Every ImmuService method path -> (client streaming, server streaming), from immudb-py's schema."""
    from immudb.grpc import schema_pb2

    service = schema_pb2.DESCRIPTOR.services_by_name["ImmuService"]
    return {f"/{_SERVICE}/{m.name}": (m.client_streaming, m.server_streaming) for m in service.methods}


def _forwarded(context: grpc.ServicerContext) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in context.invocation_metadata() if not k.startswith((":", "grpc-")) and k != "user-agent"]


class GrpcProxy:
    """Forwards every immudb call from 127.0.0.1:<port> to upstream; `requests`/`responses` rewrite by method."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.requests: dict[str, Rewrite] = {}
        self.responses: dict[str, Rewrite] = {}
        self.calls: Counter[str] = Counter()
        self._channel = grpc.insecure_channel(upstream, options=[("grpc.max_receive_message_length", 64 << 20)])
        self._server: grpc.Server | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> GrpcProxy:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                             options=[("grpc.max_send_message_length", 64 << 20)])
        server.add_generic_rpc_handlers((_Handler(self),))
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None
        self._channel.close()

    def _request(self, name: str, raw: bytes) -> bytes:
        self.calls[name] += 1
        rewrite = self.requests.get(name)
        return rewrite(raw) if rewrite else raw

    def _response(self, name: str, raw: bytes) -> bytes:
        rewrite = self.responses.get(name)
        return rewrite(raw) if rewrite else raw


class _Handler(grpc.GenericRpcHandler):
    """Serves every ImmuService method with identity (de)serializers: handlers see and return raw bytes."""

    def __init__(self, proxy: GrpcProxy) -> None:
        self.proxy = proxy
        self.methods = _methods()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        path = details.method
        if path not in self.methods:
            return None
        name = path.rsplit("/", 1)[1]
        client_streaming, server_streaming = self.methods[path]
        channel, proxy = self.proxy._channel, self.proxy

        def fail(context: grpc.ServicerContext, exc: grpc.RpcError) -> None:
            context.abort(exc.code(), exc.details() or "")

        def upstream_request(request: Any) -> Any:  # one message, or (client streaming) an iterator of them
            if client_streaming:
                return (proxy._request(name, r) for r in request)
            return proxy._request(name, request)

        if not server_streaming:
            upstream_one = (channel.stream_unary if client_streaming else channel.unary_unary)(path)

            def one_answer(request: Any, context: grpc.ServicerContext) -> bytes:
                try:
                    response, call = upstream_one.with_call(upstream_request(request), metadata=_forwarded(context),
                                                            timeout=60)
                except grpc.RpcError as exc:
                    fail(context, exc)
                    raise
                context.send_initial_metadata(call.initial_metadata() or ())
                return proxy._response(name, response)

            if client_streaming:
                return grpc.stream_unary_rpc_method_handler(one_answer)
            return grpc.unary_unary_rpc_method_handler(one_answer)
        upstream_many = (channel.stream_stream if client_streaming else channel.unary_stream)(path)

        def answers(request: Any, context: grpc.ServicerContext) -> Iterator[bytes]:
            call = upstream_many(upstream_request(request), metadata=_forwarded(context), timeout=60)
            try:
                context.send_initial_metadata(call.initial_metadata() or ())
                for item in call:
                    yield proxy._response(name, item)
            except grpc.RpcError as exc:
                fail(context, exc)

        if client_streaming:
            return grpc.stream_stream_rpc_method_handler(answers)
        return grpc.unary_stream_rpc_method_handler(answers)
