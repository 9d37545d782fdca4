"""A real OCI registry on loopback: Debian's `docker-registry` (distribution), with optional basic auth.

Fixtures:
- `registry` (session): an anonymous registry. The value is a str "127.0.0.1:PORT" (use it as
  f"registry://{registry}/repo:tag", with SourceOptions(insecure=True)) that also has `.push(layout, tag,
  repo_ref)`, `.url`, `.stop()`.
- `auth_registry` (session): the same behind htpasswd basic auth; `.username`, `.password`, and
  `.write_auth_file(path)` (a docker config.json with its credentials) besides `.push`.
- `token_registry` (session): behind bearer-token auth, with a token service (a small JWT issuer in this
  module, ES256 + x5c, which the real registry verifies against its rootcertbundle); same attributes, plus
  `.token_server.issued` (the scopes it granted).
Push with skopeo (`skopeo copy oci:LAYOUT:TAG docker://HOST/REPO:TAG --dest-tls-verify=false`).
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.integration import missing, require_tool
from tests.support.processes import free_port, stop_process


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash (cost 4: tests, not secrets) for htpasswd; distribution accepts only bcrypt."""
    htpasswd = shutil.which("htpasswd")
    if htpasswd:
        out = subprocess.run([htpasswd, "-nBi", "-C", "4", "user"], input=password, capture_output=True, text=True,
                             check=True).stdout
        return out.strip().split(":", 1)[1]
    try:
        import bcrypt  # type: ignore[import-not-found]

        return str(bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode())
    except ImportError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # removed in Python 3.13; present (with libxcrypt bcrypt) on Debian's 3.11

            hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
            if hashed and hashed.startswith("$2"):
                return hashed
    except ImportError:
        pass
    missing("bcrypt", "need apache2-utils (htpasswd), python bcrypt, or the crypt module for htpasswd auth")
    raise AssertionError("unreachable")


class RegistryServer(str):
    """host:port of a running registry; also knows how to push and stop it."""

    proc: subprocess.Popen[bytes]
    workdir: Path
    username: str | None
    password: str | None
    token_server: TokenServer | None

    @property
    def url(self) -> str:
        return f"http://{self}"

    def write_auth_file(self, path: Path) -> Path:
        """A docker config.json holding this registry's credentials."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        path.write_text(json.dumps({"auths": {str(self): {"auth": token}}}))
        path.chmod(0o600)
        return path

    def push(self, layout: Path, tag: str, repo_ref: str, *, all_platforms: bool = True) -> str:
        """Copy oci:LAYOUT:TAG to HOST/REPO_REF; returns the pushed manifest digest (skopeo's)."""
        skopeo = require_tool("skopeo")
        argv = [skopeo, "copy", "--quiet", "--dest-tls-verify=false"]
        if all_platforms:
            argv.append("--all")
        if self.username:
            argv += ["--dest-authfile", str(self.write_auth_file(self.workdir / "push-auth.json"))]
        digest_file = self.workdir / f"pushed-{secrets.token_hex(4)}.digest"
        argv += ["--digestfile", str(digest_file), f"oci:{layout}:{tag}", f"docker://{self}/{repo_ref}"]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"skopeo push failed: {proc.stderr.strip()}")
        return digest_file.read_text().strip()

    def stop(self) -> None:
        stop_process(self.proc)
        if self.token_server is not None:
            self.token_server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A bearer-token service for the registry: Basic credentials in, an ES256 JWT out.

    The registry trusts tokens signed by the key of the certificate in its rootcertbundle; the token header
    carries that certificate (x5c). Only what the real registry needs, for tests only.
    """

    def __init__(self, username: str, password: str, service: str, issuer: str, workdir: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.username, self.password, self.service, self.issuer = username, password, service, issuer
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "notary-test-token-issuer")])
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.cert_path = workdir / "token-ca.pem"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.cert_der = self.cert.public_bytes(serialization.Encoding.DER)
        self.issued: list[list[str]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                expected = "Basic " + base64.b64encode(f"{server.username}:{server.password}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                scopes = query.get("scope", [])
                server.issued.append(scopes)
                body = json.dumps({"token": server.token(scopes), "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def token(self, scopes: list[str]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        access = []
        for scope in scopes:
            for one in scope.split(" "):
                kind, _, rest = one.partition(":")
                name, _, actions = rest.rpartition(":")
                if kind == "repository" and name:
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        claims = {"iss": self.issuer, "sub": self.username, "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def start_registry(*, username: str | None = None, password: str | None = None,
                   token_auth: bool = False, token_realm: str | None = None) -> RegistryServer:
    """A registry on a free loopback port; token_realm overrides the realm it advertises (to test clients
    that must refuse a realm)."""
    binary = require_tool("docker-registry")
    workdir = Path(tempfile.mkdtemp(prefix="notary-registry-"))
    port = free_port()
    config = [
        "version: 0.1",
        "log:",
        "  level: error",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {workdir / 'data'}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        f"  secret: {secrets.token_hex(16)}",
    ]
    token_server = None
    if token_auth:
        assert username and password
        token_server = TokenServer(username, password, "notary-test-registry", "notary-test-issuer", workdir)
        config += ["auth:", "  token:", f"    realm: {token_realm or token_server.realm}", "    service: notary-test-registry",
                   "    issuer: notary-test-issuer", f"    rootcertbundle: {token_server.cert_path}"]
    elif username:
        assert password is not None
        (workdir / "htpasswd").write_text(f"{username}:{bcrypt_hash(password)}\n")
        config += ["auth:", "  htpasswd:", "    realm: notary-test", f"    path: {workdir / 'htpasswd'}"]
    (workdir / "config.yml").write_text("\n".join(config) + "\n")
    log = open(workdir / "registry.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([binary, "serve", str(workdir / "config.yml")], stdout=log, stderr=subprocess.STDOUT)
    server = RegistryServer(f"127.0.0.1:{port}")
    server.proc = proc
    server.workdir = workdir
    server.username = username
    server.password = password
    server.token_server = token_server
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = (workdir / "registry.log").read_text(errors="replace")
            server.stop()
            raise RuntimeError(f"docker-registry exited: {text[-2000:]}")
        try:
            resp = requests.get(f"{server.url}/v2/", timeout=1)
            if resp.status_code in (200, 401):
                return server
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError("docker-registry did not answer within 20s")


@pytest.fixture(scope="session")
def registry() -> Iterator[RegistryServer]:
    """An anonymous registry on a free loopback port for the whole session."""
    server = start_registry()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def auth_registry() -> Iterator[RegistryServer]:
    """A registry that requires basic auth (htpasswd); credentials on .username/.password."""
    server = start_registry(username="notary", password=secrets.token_urlsafe(12))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def token_registry() -> Iterator[RegistryServer]:
    """A registry behind bearer-token auth (token service on another loopback port)."""
    server = start_registry(username="notary", password=secrets.token_urlsafe(12), token_auth=True)
    try:
        yield server
    finally:
        server.stop()
