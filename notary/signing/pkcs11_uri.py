"""PKCS#11 URIs (RFC 7512): parsed strictly, because a URI names the key that signs for a pipeline.

Strict means: an attribute notary does not know (`objekt=`, a vendor `x-` attribute), a repeated one, an
empty value, a character RFC 7512 does not allow there or broken percent-encoding is a usage error (exit 2).
Ignoring an unknown attribute would be what the RFC permits, but a typo would then widen the match to "any
key in the token" and sign with whichever one that finds.

`pin-value` is refused: a URI travels on command lines (`--key`), into shell history and process listings.
The PIN comes from NOTARY_PKCS11_PIN, a file (NOTARY_PKCS11_PIN_FILE or `pin-source=file:...`) or nowhere.
Error messages name attributes, never their values, so nothing secret-looking is ever echoed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from notary.errors import UsageError

SCHEME = "pkcs11:"
MAX_URI = 4096

# RFC 7512 section 2.3: the characters a value may hold unencoded, in the path and in the query part
_UNRESERVED = "A-Za-z0-9\\-._~"
_RES_AVAIL = ":\\[\\]@!$'()*+,="
_PATH_VALUE = re.compile(f"[{_UNRESERVED}{_RES_AVAIL}&]*")
_QUERY_VALUE = re.compile(f"[{_UNRESERVED}{_RES_AVAIL}/?|]*")
_PCT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")

# path attributes that select the token (and its slot and library), text values matched exactly
TOKEN_ATTRS = ("token", "manufacturer", "serial", "model", "library-manufacturer", "library-description",
               "library-version", "slot-description", "slot-manufacturer", "slot-id")
PATH_ATTRS = (*TOKEN_ATTRS, "object", "id", "type")
QUERY_ATTRS = ("module-path", "pin-source")
OBJECT_TYPES = ("private", "public", "cert", "secret-key", "data")


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed `pkcs11:` URI. text is the URI as given (it holds no PIN: pin-value is refused)."""

    text: str
    token: dict[str, str] = field(default_factory=dict)  # TOKEN_ATTRS -> decoded value
    object: str | None = None
    id: bytes | None = None
    type: str | None = None
    module_path: str | None = None
    pin_source: str | None = None

    @property
    def describe(self) -> str:
        """How messages name the key: its object label (or id) in its token, never the query part."""
        what = f"object {self.object!r}" if self.object is not None else f"id {self.id.hex() if self.id else '?'}"
        where = f"token {self.token['token']!r}" if "token" in self.token else "the token"
        return f"{what} in {where}"


def is_uri(text: object) -> bool:
    return isinstance(text, str) and text.startswith(SCHEME)


def parse(text: str) -> Pkcs11Uri:
    """Parse text as an RFC 7512 URI; UsageError (exit 2) for anything malformed or unknown."""
    if not text.startswith(SCHEME):
        raise UsageError("not a PKCS#11 URI", hint="it starts with pkcs11:")
    if len(text) > MAX_URI:
        raise UsageError(f"PKCS#11 URI is longer than {MAX_URI} characters")
    path, _, query = text[len(SCHEME):].partition("?")
    seen: dict[str, bytes] = {}
    for part, sep, allowed, known in ((path, ";", _PATH_VALUE, PATH_ATTRS), (query, "&", _QUERY_VALUE, QUERY_ATTRS)):
        if not part:
            continue
        for item in part.split(sep):
            name, value = _attribute(item, allowed, known)
            if name in seen:
                raise UsageError(f"PKCS#11 URI repeats attribute {name}")
            seen[name] = value
    return _build(text, seen)


def _attribute(item: str, allowed: re.Pattern[str], known: tuple[str, ...]) -> tuple[str, bytes]:
    name, eq, raw = item.partition("=")
    if not eq:
        raise UsageError("PKCS#11 URI has an attribute without '='", hint="attributes are name=value")
    if not _NAME.fullmatch(name):
        raise UsageError("PKCS#11 URI has a malformed attribute name")
    if name == "pin-value":
        raise UsageError("PKCS#11 URI carries pin-value: a PIN never goes on a command line",
                         hint="set NOTARY_PKCS11_PIN or NOTARY_PKCS11_PIN_FILE, or pin-source=file:PATH")
    if name == "module-name":
        raise UsageError("PKCS#11 URI attribute module-name is not supported", hint="give module-path=/abs/path.so")
    if name not in known:
        where = "query" if "module-path" in known else "path"
        other = QUERY_ATTRS if where == "path" else PATH_ATTRS
        hint = (f"it belongs in the {'query (after ?)' if where == 'path' else 'path (before ?)'}"
                if name in other else f"known: {', '.join(known)}")
        raise UsageError(f"unknown PKCS#11 URI {where} attribute {name}", hint=hint)
    if not raw:
        raise UsageError(f"PKCS#11 URI attribute {name} is empty")
    if _PCT.search(raw):
        raise UsageError(f"PKCS#11 URI attribute {name} has broken percent-encoding", hint="use %XX, two hex digits")
    if not allowed.fullmatch(_ENCODED.sub("", raw)):
        raise UsageError(f"PKCS#11 URI attribute {name} has a character that must be percent-encoded")
    return name, unquote_to_bytes(raw)


def _text(name: str, value: bytes) -> str:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"PKCS#11 URI attribute {name} is not UTF-8 after percent-decoding") from exc
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise UsageError(f"PKCS#11 URI attribute {name} holds a control character")
    return text


def _build(text: str, seen: dict[str, bytes]) -> Pkcs11Uri:
    token = {name: _text(name, seen[name]) for name in TOKEN_ATTRS if name in seen}
    if "slot-id" in token and not token["slot-id"].isdigit():
        raise UsageError("PKCS#11 URI attribute slot-id must be a decimal number")
    if "library-version" in token and not re.fullmatch(r"\d+(\.\d+)?", token["library-version"]):
        raise UsageError("PKCS#11 URI attribute library-version must be MAJOR[.MINOR]")
    kind = _text("type", seen["type"]) if "type" in seen else None
    if kind is not None and kind not in OBJECT_TYPES:
        raise UsageError("PKCS#11 URI attribute type is not one of " + ", ".join(OBJECT_TYPES))
    module = _text("module-path", seen["module-path"]) if "module-path" in seen else None
    if module is not None and not module.startswith("/"):
        raise UsageError("PKCS#11 URI module-path must be absolute",
                         hint="a relative module would be loaded from wherever the job happens to run")
    return Pkcs11Uri(
        text=text,
        token=token,
        object=_text("object", seen["object"]) if "object" in seen else None,
        id=seen.get("id"),
        type=kind,
        module_path=module,
        pin_source=_text("pin-source", seen["pin-source"]) if "pin-source" in seen else None,
    )
