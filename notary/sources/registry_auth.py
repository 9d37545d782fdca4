"""Talking to a registry: transport rules, credentials and the auth handshake (Registry HTTP API v2).

Rules that protect users: HTTPS always, except plain HTTP to a loopback registry when the user asked for
--insecure; credentials come from a file, a credential helper or the environment (registry_credentials.py),
never the command line; a bearer-token realm must itself be HTTPS (same loopback exception) so a password is
never sent in clear; and a registry that rejects the credentials is a one-line error, not a traceback.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import threading
from urllib.parse import urlencode, urlsplit

import requests

from notary.errors import InputError, SourceUnavailableError, UsageError
from notary.jsonsafe import parse
from notary.sources.base import SourceOptions
from notary.sources.registry_credentials import Credentials, load_credentials  # files, helpers, environment

MAX_TOKEN_RESPONSE = 1 << 20
NO_CREDENTIALS_HINT = ("use --registry-auth FILE, NOTARY_REGISTRY_USERNAME/PASSWORD, or docker/podman login "
                       "(see docs/subjects.md)")
USER_AGENT = "notary/0.1"
_CHALLENGE_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def is_loopback(host: str) -> bool:
    """host (without port) is localhost or a loopback IP address."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def split_host(hostport: str) -> str:
    if hostport.startswith("["):
        return hostport[1:hostport.index("]")]
    return hostport.rsplit(":", 1)[0] if ":" in hostport else hostport


# Docker Hub's API lives on another host than the name images carry
API_HOSTS = {"docker.io": "registry-1.docker.io", "index.docker.io": "registry-1.docker.io"}


def base_url(hostport: str, options: SourceOptions) -> str:
    if not options.insecure:
        return f"https://{API_HOSTS.get(hostport, hostport)}"
    if not is_loopback(split_host(hostport)):
        raise UsageError(f"plain HTTP to {hostport} refused: --insecure is only allowed for a loopback registry",
                         hint="use HTTPS (drop --insecure) for a remote registry")
    return f"http://{hostport}"


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """('bearer'|'basic'|..., params) from a WWW-Authenticate header."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for match in _CHALLENGE_PARAM.finditer(rest):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = value.replace('\\"', '"')
    return scheme.lower(), params


class RegistryClient:
    """HTTP to one repository of one registry; thread-safe (one requests.Session per thread)."""

    def __init__(self, hostport: str, repository: str, options: SourceOptions) -> None:
        self.hostport = hostport
        self.repository = repository
        self.options = options
        self.base = base_url(hostport, options)
        self.credentials: Credentials = load_credentials(hostport, options, repository)
        self._auth: str | None = f"Bearer {self.credentials.token}" if self.credentials.token else None
        self._local = threading.local()
        self._lock = threading.Lock()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            self._local.session = session
        return session

    def _send(self, method: str, url: str, headers: dict[str, str], stream: bool) -> requests.Response:
        try:
            return self._session().request(method, url, headers=headers, stream=stream,
                                           timeout=self.options.timeout, allow_redirects=True)
        except requests.exceptions.SSLError as exc:
            raise SourceUnavailableError(f"TLS failure talking to {self.hostport}: {exc.__class__.__name__}",
                                         hint="check the registry certificate (REQUESTS_CA_BUNDLE)") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise SourceUnavailableError(f"registry {self.hostport} is unreachable ({exc.__class__.__name__})",
                                         hint="check the host and port, or the network") from None
        except requests.RequestException as exc:
            raise SourceUnavailableError(f"request to {self.hostport} failed: {exc.__class__.__name__}") from None

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                stream: bool = False) -> requests.Response:
        """path relative to /v2/<repo>/; answers a 401 challenge once, then fails with a clear message."""
        url = f"{self.base}/v2/{self.repository}/{path}"
        sent_auth = self._auth
        resp = self._send(method, url, self._headers(headers), stream)
        if resp.status_code != 401:
            return resp
        challenge = resp.headers.get("WWW-Authenticate", "")
        resp.close()
        with self._lock:
            if self._auth == sent_auth:  # no other thread has already answered this challenge
                self._answer(challenge)
        resp = self._send(method, url, self._headers(headers), stream)
        if resp.status_code == 401:
            resp.close()
            raise UsageError(f"registry {self.hostport} rejected the credentials for {self.repository}",
                             hint=self._check_hint())
        return resp

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = dict(extra or {})
        if self._auth:
            headers["Authorization"] = self._auth
        return headers

    def _check_hint(self) -> str:
        where = self.credentials.origin
        return f"check the credentials from {where}" if where else "check --registry-auth or NOTARY_REGISTRY_*"

    def _answer(self, challenge: str) -> None:
        scheme, params = parse_challenge(challenge)
        creds = self.credentials
        if creds.identity_token and not creds.has_password:
            # An identity token is an OAuth2 refresh token: it must be exchanged at the token service
            # (POST grant_type=refresh_token), which this client does not do. Sent as a password or as a
            # bearer token it would be the wrong credential at best, so say so instead.
            raise UsageError(f"the credentials for {self.hostport} from {creds.origin or 'the auth file'} are an "
                             "identity token (OAuth2 refresh token), which notary cannot use yet",
                             hint="log in with a username and password or access token, or set "
                                  "NOTARY_REGISTRY_USERNAME/PASSWORD or NOTARY_REGISTRY_TOKEN")
        if scheme == "basic":
            if not creds.has_password:
                raise UsageError(f"registry {self.hostport} requires a username and password",
                                 hint=NO_CREDENTIALS_HINT)
            raw = f"{creds.username}:{creds.password}".encode()
            self._auth = "Basic " + base64.b64encode(raw).decode()
            return
        if scheme == "bearer" and params.get("realm"):
            self._auth = "Bearer " + self._fetch_token(params)
            return
        raise UsageError(f"registry {self.hostport} asks for unsupported authentication {scheme or '(none)'!r}")

    def _fetch_token(self, params: dict[str, str]) -> str:
        realm = params["realm"]
        parts = urlsplit(realm)
        if parts.scheme == "http":
            if not (self.options.insecure and is_loopback(parts.hostname or "")):
                raise InputError(f"registry {self.hostport} sent a plain-HTTP token realm {realm!r}; refused",
                                 hint="a token service must use HTTPS")
        elif parts.scheme != "https" or not parts.hostname:
            raise InputError(f"registry {self.hostport} sent an invalid token realm {realm!r}")
        query = {"service": params["service"]} if params.get("service") else {}
        query["scope"] = params.get("scope") or f"repository:{self.repository}:pull"
        url = realm + ("&" if parts.query else "?") + urlencode(query)
        headers = {}
        creds = self.credentials
        if creds.has_password:
            raw = f"{creds.username}:{creds.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        resp = self._send("GET", url, headers, True)
        try:
            if resp.status_code in (401, 403) and not creds.has_password:
                raise UsageError(f"registry {self.hostport} requires credentials (its token service refused "
                                 "anonymous access)",
                                 hint=NO_CREDENTIALS_HINT)
            if resp.status_code in (401, 403):
                raise UsageError(f"token service for {self.hostport} refused the credentials",
                                 hint=self._check_hint())
            if resp.status_code != 200:
                raise SourceUnavailableError(f"token service for {self.hostport} answered {resp.status_code}")
            body = resp.raw.read(MAX_TOKEN_RESPONSE + 1, decode_content=True)
        finally:
            resp.close()
        if len(body) > MAX_TOKEN_RESPONSE:
            raise InputError(f"token response from {realm} is too large")
        doc = parse(body, f"token response from {realm}")
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token or any(c.isspace() for c in token):
            raise InputError(f"token response from {realm} has no usable token")
        return token
