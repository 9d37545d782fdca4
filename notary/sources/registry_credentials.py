"""Where registry credentials come from: the files and credential helpers docker and podman already use.

Users of ECR, GCR and ACR never see a password: `docker login` / `podman login` leave a config file naming a
credential helper, and the helper prints short-lived credentials on request. Reading the same files in the
same order means notary works wherever `docker pull` or `podman pull` does, with nothing new to configure.

Precedence (first that applies wins), so an explicit choice always beats a discovered one:
1. `--registry-auth FILE` / `[registry] auth_file`: that file only, docker form or the plain
   {"username","password"} / {"token"} form;
2. NOTARY_REGISTRY_USERNAME / NOTARY_REGISTRY_TOKEN (with NOTARY_REGISTRY_PASSWORD): for every registry;
3. the first of these files that has credentials for the host (podman's search, then docker's):
   $REGISTRY_AUTH_FILE (alone, when set), ${XDG_RUNTIME_DIR}/containers/auth.json (without XDG_RUNTIME_DIR:
   /run/containers/UID/auth.json), ${XDG_CONFIG_HOME:-~/.config}/containers/auth.json,
   ${DOCKER_CONFIG:-~/.docker}/config.json. A missing file is skipped, as podman does.
Within one file, docker's order: credHelpers[host], then an auths entry that holds credentials, then credsStore.

Everything in these files is treated as hostile: a helper name is a bare name (never a path), the helper runs
with a timeout in its own process group (killed whole), its output is bounded and parsed with jsonsafe, and
no secret ever reaches an error message or a repr.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from notary.environment import given
from notary.errors import InputError, NotFoundError, SourceUnavailableError, UsageError
from notary.fsio import MAX_AUTH_FILE, read_regular
from notary.jsonsafe import parse_object
from notary.sources.base import SourceOptions

HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_HELPER_STDOUT = 64 << 10   # a helper answer is a few hundred bytes; a GCP access token ~2 KiB
MAX_HELPER_STDERR = 4 << 10    # kept only to quote one short line of it
MAX_SERVER_URL = 2048          # stays below the pipe buffer, so writing it to the helper never blocks
NOT_IN_KEYCHAIN = "credentials not found in native keychain"  # docker-credential-helpers' "no entry" answer
IDENTITY_TOKEN_USER = "<token>"  # docker's convention: Secret is an identity (OAuth2 refresh) token
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")
DOCKER_FORM_KEYS = ("auths", "credHelpers", "credsStore")


@dataclass(frozen=True)
class Credentials:
    """What notary can present to a registry. Secrets are kept out of repr, so a traceback or a debug print
    of this object never shows them. origin names where they came from, for error hints."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)
    origin: str = ""

    @property
    def has_password(self) -> bool:
        return bool(self.username) and self.password is not None

    @property
    def present(self) -> bool:
        return self.has_password or bool(self.token) or bool(self.identity_token)


def registry_environ(options: SourceOptions | None = None) -> Mapping[str, str]:
    """The variables logins are looked up in: the environment the caller read (options.environment), else
    the process's now. A caller (a long-running server) can pass its own instead."""
    return given(options.environment if options is not None else None).variables


def load_credentials(hostport: str, options: SourceOptions, repository: str = "",
                     env: Mapping[str, str] | None = None) -> Credentials:
    """Credentials for repository on hostport, by the precedence in the module docstring."""
    env = registry_environ(options) if env is None else env
    if options.registry_auth_file:
        where = options.registry_auth_file
        raw = read_regular(where, MAX_AUTH_FILE, "registry credentials file", error=UsageError)
        doc = parse_object(raw, f"registry credentials file {where}")
        if any(key in doc for key in DOCKER_FORM_KEYS):
            return _from_docker_config(doc, where, hostport, repository, env, options.timeout)
        return _from_auth_entry(doc, where)
    username, token = env.get("NOTARY_REGISTRY_USERNAME") or None, env.get("NOTARY_REGISTRY_TOKEN") or None
    if username or token:
        return Credentials(username, env.get("NOTARY_REGISTRY_PASSWORD"), token,
                           origin="NOTARY_REGISTRY_* environment")
    for where in auth_file_candidates(env):
        try:
            raw = read_regular(where, MAX_AUTH_FILE, "registry credentials file")
        except NotFoundError:
            continue
        doc = parse_object(raw, f"registry credentials file {where}")
        creds = _from_docker_config(doc, where, hostport, repository, env, options.timeout)
        if creds.present:
            return creds
    return Credentials()


def auth_file_candidates(env: Mapping[str, str]) -> list[str]:
    """podman's search path, then docker's; REGISTRY_AUTH_FILE alone when set (podman: the user chose it)."""
    if env.get("REGISTRY_AUTH_FILE"):
        return [env["REGISTRY_AUTH_FILE"]]
    home = env.get("HOME") or os.path.expanduser("~")
    runtime = env.get("XDG_RUNTIME_DIR")
    config_home = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    docker_config = env.get("DOCKER_CONFIG") or os.path.join(home, ".docker")
    return [os.path.join(runtime, "containers", "auth.json") if runtime
            else f"/run/containers/{os.getuid()}/auth.json",
            os.path.join(config_home, "containers", "auth.json"),
            os.path.join(docker_config, "config.json")]


def _canonical_host(host: str) -> str:
    host = host.lower()
    return "docker.io" if host in DOCKER_HUB_HOSTS else host


def _split_key(key: str) -> tuple[str, str]:
    """(host, namespace) of a config key. A URL key (`https://index.docker.io/v1/`, docker's legacy form) is
    its host; a bare key may carry a repository namespace (`quay.io/team`, podman's per-namespace entries)."""
    for scheme in ("https://", "http://"):
        if key.lower().startswith(scheme):
            return _canonical_host(key[len(scheme):].split("/", 1)[0]), ""
    host, _, namespace = key.partition("/")
    return _canonical_host(host), namespace.strip("/")


def _from_docker_config(doc: Mapping[str, object], where: str, hostport: str, repository: str,
                        env: Mapping[str, str], timeout: float) -> Credentials:
    auths = doc.get("auths", {})
    helpers = doc.get("credHelpers", {})
    store = doc.get("credsStore") or None
    if not isinstance(auths, dict):
        raise InputError(f"malformed 'auths' in {where}")
    if not isinstance(helpers, dict) or not all(isinstance(v, str) for v in helpers.values()):
        raise InputError(f"malformed 'credHelpers' in {where}: expected registry -> helper name")
    if store is not None and not isinstance(store, str):
        raise InputError(f"malformed 'credsStore' in {where}: expected a helper name")
    for name in [*helpers.values(), *([store] if store else [])]:
        if not HELPER_NAME.fullmatch(name):
            raise InputError(f"credential helper name {name[:64]!r} in {where} is refused: a helper is a bare "
                             "name (letters, digits, '.', '_', '-'; at most 64), never a path")
    host = _canonical_host(hostport)
    for key, name in helpers.items():
        if _split_key(key) == (host, ""):
            return run_helper(name, key, where, env, timeout)
    best: tuple[int, str] | None = None  # (namespace length, key) of the most specific entry for repository
    for key in auths:
        key_host, namespace = _split_key(key)
        if key_host != host or (namespace and repository != namespace
                                and not repository.startswith(namespace + "/")):
            continue
        if best is None or len(namespace) > best[0]:
            best = (len(namespace), key)
    if best is not None:
        creds = _from_auth_entry(auths[best[1]], where)
        if creds.present:
            return creds
    if store:
        server = best[1] if best is not None else DOCKER_HUB_KEY if host == "docker.io" else hostport
        return run_helper(store, server, where, env, timeout)
    return Credentials()


def _from_auth_entry(entry: object, where: str) -> Credentials:
    if not isinstance(entry, dict):
        raise InputError(f"malformed registry credentials in {where}")
    user: str | None = None
    secret: str | None = None
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            user, sep, secret = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise InputError(f"malformed 'auth' value in {where}") from None
        if not sep:
            raise InputError(f"malformed 'auth' value in {where}: expected base64 of user:password")
    identity = entry.get("identitytoken")
    if identity is not None and not isinstance(identity, str):
        raise InputError(f"malformed identitytoken in {where}")
    if identity:  # docker keeps `auth` beside it only to remember the user name
        return Credentials(user or None, identity_token=identity, origin=where)
    if user is not None:
        return Credentials(user, secret, origin=where)
    token = entry.get("token") or entry.get("registrytoken")
    username: object = entry.get("username")
    password: object = entry.get("password")
    if token is not None and not isinstance(token, str):
        raise InputError(f"malformed token in {where}")
    if (username is not None and not isinstance(username, str)) or (
            password is not None and not isinstance(password, str)):
        raise InputError(f"malformed username/password in {where}")
    return Credentials(username, password, token, origin=where)


def run_helper(name: str, server: str, where: str, env: Mapping[str, str], timeout: float) -> Credentials:
    """`docker-credential-NAME get` with server on stdin, as docker runs it. Not in the keychain means
    anonymous (docker's rule); a missing, failing, slow or babbling helper is one line, never its secret."""
    exe_name = f"docker-credential-{name}"
    label = f"credential helper {exe_name} (from {where})"
    if len(server) > MAX_SERVER_URL:
        raise InputError(f"registry key for {label} is over {MAX_SERVER_URL} characters")
    exe = shutil.which(exe_name, path=env.get("PATH", os.defpath))
    if not exe or not os.path.isabs(exe):  # like Go's exec.LookPath: never a helper found via "." in PATH
        raise SourceUnavailableError(f"{label} is not installed: no {exe_name} on PATH",
                                     hint=f"install it, or remove {name!r} from {where}")
    code, out, err = _run_bounded([exe, "get"], server.encode(), env, timeout, label)
    if code != 0:
        if NOT_IN_KEYCHAIN in out.decode("utf-8", "replace").lower() + err.decode("utf-8", "replace").lower():
            return Credentials()
        raise SourceUnavailableError(f"{label} failed for {server} (exit {code}): {_reason(err, out)}")
    doc = parse_object(out, f"output of {label}")
    username, secret = doc.get("Username", ""), doc.get("Secret", "")
    if not isinstance(username, str) or not isinstance(secret, str):
        raise InputError(f"malformed output of {label}: Username and Secret must be strings")
    if not secret:
        return Credentials()
    if username == IDENTITY_TOKEN_USER:
        return Credentials(identity_token=secret, origin=label)
    return Credentials(username or None, secret, origin=label)


def _reason(err: bytes, out: bytes) -> str:
    """One short printable line of what the helper said: stderr first; stdout only if it is not JSON, since
    a hostile or confused helper may print its answer (the secret) and still exit non-zero."""
    for stream in (err, out):
        for line in stream.decode("utf-8", "replace").splitlines():
            line = line.strip()
            if line and not (stream is out and line.startswith("{")):
                clean = "".join(c if c.isprintable() else "?" for c in line)
                return clean[:120] + ("..." if len(clean) > 120 else "")
    return "no message"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the helper's whole process group (it runs in its own session), so a shell script's children
    cannot keep the pipes open or outlive notary; then reap it. Only before the helper is reaped: until then
    its pid, and so its group id, cannot belong to anyone else."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _run_bounded(argv: list[str], stdin: bytes, env: Mapping[str, str], timeout: float,
                 label: str) -> tuple[int, bytes, bytes]:
    """(exit code, stdout, first bytes of stderr). communicate() would buffer without limit, so both pipes
    are read through one selector against one deadline."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(env), start_new_session=True, close_fds=True)
    except OSError as exc:
        raise SourceUnavailableError(f"cannot run {label}: {exc.strerror or exc.__class__.__name__}") from None
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    code: int | None = None
    try:
        with contextlib.suppress(BrokenPipeError):  # a helper that exits without reading stdin
            proc.stdin.write(stdin)
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            sel.register(proc.stderr, selectors.EVENT_READ)
            while sel.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SourceUnavailableError(f"{label} did not answer within {timeout:g}s; stopped it")
                for key, _ in sel.select(remaining):
                    chunk = os.read(key.fd, 1 << 16)
                    if not chunk:
                        sel.unregister(key.fileobj)
                    elif key.fileobj is proc.stdout:
                        out += chunk
                        if len(out) > MAX_HELPER_STDOUT:
                            raise InputError(f"{label} printed over {MAX_HELPER_STDOUT} bytes; stopped it")
                    else:
                        err += chunk[:max(0, MAX_HELPER_STDERR - len(err))]
        try:
            code = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise SourceUnavailableError(f"{label} did not exit within {timeout:g}s; stopped it") from None
    finally:
        if code is None:  # not reaped yet, so its process group id cannot have been reused
            _kill_group(proc)
        proc.stdout.close()
        proc.stderr.close()
    return code, bytes(out), bytes(err)
