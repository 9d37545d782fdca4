"""Which Engine API endpoint a request reaches, and which image a create body names, read as dockerd reads them.

The authorization plugin is handed the raw request target (`RequestUri`) and body. dockerd itself routes on
the *decoded* path (Go's `url.ParseRequestURI`, then gorilla/mux without `UseEncodedPath`), so
`/v1.41/containers%2Fcreate`, `/containers/%63reate` and `/containers/ID%2Fstart` are a create and a start.
A plugin that matches the encoded text lets them through ungated; this module decodes and routes the same
way (verified against dockerd 20.10 in tests/test_gate_docker.py):

- the target is origin-form (`/path?query`) or absolute-form (`http://host/path`); the query never routes;
  `#` is *not* a fragment separator in a request target (Go keeps it in the path);
- percent escapes are decoded (an invalid one is a 400 in dockerd, and unreadable here);
- mux redirects an unclean path (`//`, `/./`, `/../`) instead of routing it; if such a path reaches the
  plugin anyway it is gated as the clean path it stands for, and a trailing slash is ignored (dockerd
  answers 404 there): deciding about a request dockerd would not route costs nothing, missing one would;
- an optional version prefix `/v<digits and dots>` (dockerd routes `/v1.41.0` and `/v99` too, and rejects a
  bad version only after the plugin was asked);
- `{name:.*}` routes: a container name is everything between `/containers/` and the last segment.

Gated endpoints (each re-checks the image of the container it acts on, so an image revoked after its container
was created cannot run again): POST `containers/create`; POST `/containers/{id}/start`, `restart`, `unpause`
(resumes execution), `update` (can set a restart policy the daemon later acts on without asking anyone),
`attach` and GET `attach/ws` (stdin into the container's running process; attaching to a container that is
not running is let through, since nothing runs until the start that follows, which is checked: that keeps
`docker run` and `docker start -a` showing notary's reason), `exec` (exec create) and POST `/exec/{id}/start`
(exec start). Not gated: kill, stop, pause, wait, resize, rename, logs, archive, commit,
prune, delete: they stop, inspect or remove; stopping a revoked image's container must always work.

Create bodies are JSON read the way Go's encoding/json fills dockerd's struct: keys match fields
case-insensitively and a repeated key overwrites the earlier one. A key repeated (exactly, or at the top
level under another spelling, e.g. `Image` and `image`) makes the body ambiguous, and it is refused.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter
from typing import NamedTuple

from notary.errors import InputError
from notary.jsonsafe import JsonObject, parse

MAX_BODY = 1 << 20  # dockerd forwards bodies below 1 MiB to plugins, and none above
_CTL = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_V = r"(?:/v[0-9.]+)?"
# (method, path pattern, action); the action None means "the last path segment". re.S: a name with a newline
# never routes in dockerd (Go's `.` excludes \n), gating it anyway costs nothing.
_ROUTES: tuple[tuple[str, re.Pattern[str], str | None], ...] = (
    ("POST", re.compile(_V + r"/containers/create"), "create"),
    ("POST", re.compile(_V + r"/containers/(.*)/(start|restart|unpause|update|attach|exec)", re.S), None),
    ("POST", re.compile(_V + r"/exec/(.*)/start", re.S), "exec-start"),
    ("GET", re.compile(_V + r"/containers/(.*)/attach/ws", re.S), "attach"),
)
GATED_ACTIONS = ("create", "start", "restart", "unpause", "update", "attach", "exec", "exec-start")


class GatedCall(NamedTuple):
    action: str  # one of GATED_ACTIONS
    target: str  # the container name or id (the exec id for exec-start); "" for create
    path: str  # the decoded, cleaned path it was matched on


def request_path(uri: str) -> str:
    """The decoded path of a request target, as Go's url.ParseRequestURI gives it to the router.

    Bytes that are not UTF-8 are kept as surrogate escapes, so a name goes back to the daemon unchanged.
    Raises InputError for a target dockerd could not have parsed (or that this reading does not cover)."""
    if not uri:
        raise InputError("empty request target")
    if _CTL.search(uri):
        raise InputError("request target holds a control character")
    rest = uri
    scheme = _SCHEME.match(rest)
    if scheme:
        rest = rest[scheme.end():]
    rest = rest.split("?", 1)[0]
    if not rest.startswith("/"):
        raise InputError(f"request target {uri[:200]!r} is not a path")
    if scheme and rest.startswith("//"):
        slash = rest.find("/", 2)
        rest = rest[slash:] if slash >= 0 else ""
    try:
        raw = rest.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise InputError("request target is not UTF-8") from exc
    if _ESCAPE.search(raw):
        raise InputError(f"request target {uri[:200]!r} holds an invalid percent escape")
    decoded = re.sub(rb"%([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), raw)
    return decoded.decode("utf-8", "surrogateescape")


def clean_path(path: str) -> str:
    """Go's path.Clean, as gorilla/mux applies it, but without the trailing slash (see the module doc)."""
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    return "/" + "/".join(parts)


def gated_call(method: str, uri: str) -> GatedCall | None:
    """The gated endpoint a request reaches, or None for every other endpoint. InputError if unreadable."""
    path = clean_path(request_path(uri))
    verb = method.upper()
    for route_method, pattern, action in _ROUTES:
        if verb != route_method:
            continue
        match = pattern.fullmatch(path)
        if match is None:
            continue
        if action == "create":
            return GatedCall("create", "", path)
        return GatedCall(action or match.group(2), match.group(1), path)
    return None


def _fold(key: str) -> str:
    """A key folded so that every spelling Go's encoding/json would match to the same field folds alike.

    Go (before 1.21: simple case folding, with K/k/KELVIN SIGN and S/s/LONG S; since: unicode.ToUpper per
    rune) matches more than ASCII case: `ımage` (dotless i) is `Image` to Go 1.21. Folding wider than Go
    only refuses more."""
    out = []
    for ch in key:
        upper = ch.upper()
        out.append(upper if len(upper) == 1 else ch)
    return "".join(out).replace("\u212a", "K")


def read_body(encoded: object) -> JsonObject:
    """The JSON object of an AuthZReq's base64 RequestBody; InputError for anything dockerd might read otherwise."""
    if not isinstance(encoded, str) or not encoded:
        raise InputError("no request body (dockerd forwards only application/json bodies under 1 MiB)")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError("request body is not base64") from exc
    if len(raw) > MAX_BODY:
        raise InputError("request body is larger than 1 MiB")
    try:
        raw.decode("utf-8")  # strictly UTF-8 (jsonsafe would accept a BOM, which Go's decoder refuses)
        body = parse(raw, "the request body")  # depth, integer size, surrogates; exact repeats at any level
    except UnicodeDecodeError as exc:
        raise InputError(f"request body is not a single UTF-8 JSON value: {str(exc)[:200]}") from exc
    except InputError as exc:
        raise InputError(f"request body is not a single UTF-8 JSON value: {exc.one_line()[:300]}") from exc
    if not isinstance(body, dict):
        raise InputError("request body is not a JSON object")
    folded = Counter(_fold(k) for k in body)
    clash = [k for k in body if folded[_fold(k)] > 1]
    if clash:
        raise InputError(f"keys {', '.join(repr(k[:40]) for k in clash)} name the same field "
                         "(dockerd matches keys case-insensitively and reads the last)")
    return body


def create_image(encoded: object) -> str:
    """The image a containers/create body names, exactly as dockerd will read it."""
    body = read_body(encoded)
    keys = [k for k in body if _fold(k) == "IMAGE"]
    image = body[keys[0]] if keys else None
    if not isinstance(image, str) or not image:
        raise InputError("containers/create body names no image")
    try:
        image.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError("containers/create image name is not valid UTF-8") from exc
    return image
