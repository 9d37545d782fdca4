"""A real AWS KMS API server for the awskms:// signer's tests: local-kms on loopback (scripts/local-kms-build.sh
builds the pinned version; `make test` runs it first), one per test module, with its data under tmp.

- `LocalKms.env`: what a notary process needs to reach it the documented way (AWS_ENDPOINT_URL_KMS, a region,
  static credentials) and nothing of the developer's (~/.aws is never read, instance metadata is off).
- `LocalKms.create_key(spec)`: a key made directly through the API, as an operator would (any key spec).
- `LyingKms`: a real HTTP proxy in front of it that rewrites Sign answers (another key's signature, a flipped
  byte), as a compromised or faulty service would.

Missing local-kms skips locally and fails with NOTARY_REQUIRE_INTEGRATION=1.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.components import script_dir
from tests.support.processes import free_port, stop_process, wait_until

REGION, ACCOUNT = "eu-west-2", "111122223333"


def _bin() -> Path:
    return script_dir("local-kms", "local-kms-build.sh", need=("local-kms",), timeout=300) / "local-kms"


def call(endpoint: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    """One KMS JSON API call, unsigned (local-kms does not check request signatures): the test's own hands."""
    r = requests.post(endpoint, data=json.dumps(body), timeout=10, headers={
        "X-Amz-Target": f"TrentService.{operation}", "Content-Type": "application/x-amz-json-1.1"})
    assert r.status_code == 200, r.text
    return dict(r.json()) if r.content.strip() else {}


@dataclass
class LocalKms:
    endpoint: str
    home: Path

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL_KMS": self.endpoint, "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": "AKIDLOCALKMS",
                "AWS_SECRET_ACCESS_KEY": "secret-5523-local", "AWS_CONFIG_FILE": str(self.home / "config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(self.home / "credentials"), "AWS_EC2_METADATA_DISABLED": "true"}

    def create_key(self, spec: str = "ECC_NIST_P256", usage: str = "SIGN_VERIFY", alias: str | None = None) -> str:
        """A key made through the API (not by notary); its ARN. With alias, alias/ALIAS names it too."""
        made = call(self.endpoint, "CreateKey", {"KeySpec": spec, "KeyUsage": usage})
        arn = str(made["KeyMetadata"]["Arn"])
        if alias is not None:
            call(self.endpoint, "CreateAlias", {"AliasName": f"alias/{alias}", "TargetKeyId": arn})
        return arn

    def disable(self, arn: str) -> None:
        call(self.endpoint, "DisableKey", {"KeyId": arn})

    def sign(self, arn: str, digest: bytes) -> bytes:
        answer = call(self.endpoint, "Sign", {"KeyId": arn, "Message": base64.b64encode(digest).decode(),
                                              "MessageType": "DIGEST", "SigningAlgorithm": "ECDSA_SHA_256"})
        return base64.b64decode(answer["Signature"])


@pytest.fixture(scope="module")
def local_kms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKms]:
    binary = _bin()
    home = tmp_path_factory.mktemp("local-kms")
    port = free_port()
    log = home / "local-kms.log"
    env = {"PORT": str(port), "KMS_REGION": REGION, "KMS_ACCOUNT_ID": ACCOUNT, "KMS_DATA_PATH": str(home / "data"),
           "KMS_SEED_PATH": str(home / "no-seed.yaml"), "PATH": "/usr/bin:/bin"}
    with log.open("wb") as out:
        proc = subprocess.Popen([str(binary)], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=home)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until("local-kms", proc, log, lambda: requests.post(endpoint, timeout=1, headers={
            "X-Amz-Target": "TrentService.ListKeys", "Content-Type": "application/x-amz-json-1.1"},
            data="{}").status_code == 200, timeout=30)
        yield LocalKms(endpoint, home)
    finally:
        stop_process(proc)


class LyingKms:
    """A proxy in front of a real KMS that passes every request through and lets `rewrite` change the Sign
    answers (the JSON as the service sent it): the lies a compromised service could tell."""

    def __init__(self, upstream: str, rewrite: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.upstream, self.rewrite, self.signs = upstream, rewrite, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                target = self.headers.get("X-Amz-Target", "")
                r = requests.post(proxy.upstream, data=body, timeout=10, headers={
                    "X-Amz-Target": target, "Content-Type": self.headers.get("Content-Type", "")})
                payload = r.content
                if target.endswith(".Sign") and r.status_code == 200:
                    proxy.signs += 1
                    payload = json.dumps(proxy.rewrite(r.json())).encode()
                self.send_response(r.status_code)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
