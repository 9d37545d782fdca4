"""A real man in the middle for immudb's HTTP gateway: a loopback HTTP server forwarding to the real gateway.

The gateway is plain HTTP unless immudb's web server is given a certificate, so anyone on the path can rewrite
answers. Each request is forwarded as it came; a test installs `rewrite(path, reply) -> reply` to lie with the
real server's bytes (a changed value, a forged state, another server uuid, a cut or hostile body).

    proxy = HttpProxy(server.gateway_url).start()
    proxy.rewrite = lambda path, reply: reply._replace(body=...)
    os.environ["NOTARY_IMMUDB_GATEWAY"] = proxy.url
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import urlsplit


class Reply(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


Rewrite = Callable[[str, Reply], Reply]


class HttpProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rewrite: Rewrite | None = None
        self.paths: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.paths.append(self.path)
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    answer = conn.getresponse()
                    reply = Reply(answer.status, [(k, v) for k, v in answer.getheaders()
                                                  if k.lower() not in ("content-length", "transfer-encoding",
                                                                       "connection")], answer.read())
                finally:
                    conn.close()
                if proxy.rewrite is not None:
                    reply = proxy.rewrite(self.path, reply)
                self.send_response(reply.status)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = _forward  # noqa: N815 - http.server's naming

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> HttpProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
