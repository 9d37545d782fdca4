"""Just enough of the Docker Engine API for the authorization plugin to learn what image a call runs.

stdlib only (http.client over AF_UNIX): the plugin resolves an image name to its image id and repo digests,
a container to its image, and an exec instance to its container. Every answer is size-bounded and parsed
strictly; a 404 is `NotFoundError` (the daemon will answer "No such ..." itself), anything else unexpected
is `InputError` or `SourceUnavailableError`, which the plugin turns into a refusal.
"""

from __future__ import annotations

import http.client
import socket
from urllib.parse import quote, urlsplit

from notary.environment import Environment, given
from notary.errors import InputError, NotFoundError, SourceUnavailableError
from notary.jsonsafe import JsonObject, JsonValue, parse

MAX_ANSWER = 4 << 20


class UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 to a server on a unix socket (the Docker API, notary's own hook server)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def path_segment(value: str) -> str:
    """value percent-encoded as one path segment (a '/' in it must not become a path separator).

    Names come from decoded request paths and may hold any byte (kept as surrogate escapes); they go back
    out byte for byte, so the daemon looks up exactly the name it was asked to act on."""
    return quote(value.encode("utf-8", "surrogateescape"), safe="")


class DockerAPI:
    """The Engine API at DOCKER_HOST (or /var/run/docker.sock): image, container and exec lookups."""

    def __init__(self, host: str | None = None, timeout: float = 10.0, *, env: Environment | None = None) -> None:
        """host None: DOCKER_HOST of env (None: of the process), else the default socket."""
        self.host = host or given(env).docker_host or "unix:///var/run/docker.sock"
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        url = urlsplit(self.host)
        if url.scheme == "unix":
            return UnixConnection(url.path, self.timeout)
        if url.scheme in ("tcp", "http"):
            return http.client.HTTPConnection(url.hostname or "localhost", url.port or 2375, timeout=self.timeout)
        raise InputError(f"unsupported Docker host {self.host!r}", hint="use unix:///path/docker.sock")

    def get(self, path: str) -> JsonObject:
        conn = self._connection()
        try:
            conn.request("GET", path, headers={"Host": "docker"})
            resp = conn.getresponse()
            body = resp.read(MAX_ANSWER + 1)
        except OSError as exc:
            raise SourceUnavailableError(f"cannot reach the Docker API at {self.host}: {exc}") from exc
        except http.client.HTTPException as exc:
            raise SourceUnavailableError(f"the Docker API at {self.host} answered garbage: {exc!r}") from exc
        finally:
            conn.close()
        if resp.status == 404:
            raise NotFoundError(f"Docker API GET {path}: no such object")
        if resp.status != 200 or len(body) > MAX_ANSWER:
            raise InputError(f"Docker API GET {path} answered {resp.status}")
        data = parse(body, f"the Docker API's answer to GET {path[:200]}")  # bounded: depth, integers, keys
        if not isinstance(data, dict):
            raise InputError(f"Docker API GET {path} answered a non-object")
        return data

    def image(self, name: str) -> tuple[str, list[str], list[str]]:
        """(image id, repo digests, repo tags) of a local image name, id or name@digest."""
        data = self.get(f"/images/{quote(name.encode('utf-8', 'surrogateescape'), safe='/:@')}/json")
        image_id = str(data.get("Id") or "")
        digests = [d.split("@", 1)[1] for d in _strings(data.get("RepoDigests")) if "@" in d]
        tags = _strings(data.get("RepoTags"))
        return image_id, digests, tags

    def container(self, container: str) -> tuple[str, str, bool]:
        """(image id, the image name it was created with, whether it is running) of a container."""
        data = self.get(f"/containers/{path_segment(container)}/json")
        raw_config, raw_state = data.get("Config"), data.get("State")
        config = raw_config if isinstance(raw_config, dict) else {}
        state = raw_state if isinstance(raw_state, dict) else {}
        return str(data.get("Image") or ""), str(config.get("Image") or ""), state.get("Running") is not False

    def exec_container(self, exec_id: str) -> str:
        """The id of the container an exec instance runs in."""
        data = self.get(f"/exec/{path_segment(exec_id)}/json")
        container = data.get("ContainerID")
        if not isinstance(container, str) or not container:
            raise InputError(f"Docker API: exec instance {exec_id[:80]!r} names no container")
        return container


def _strings(value: JsonValue) -> list[str]:
    """The strings of a list in an answer (RepoDigests, RepoTags); anything else in it, or not a list, is none."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
