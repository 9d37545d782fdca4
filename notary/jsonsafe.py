"""One JSON parser for documents from outside: manifests, indexes, archive manifests, registry answers, a
container's state and bundle config.

`json.loads` on hostile bytes fails in ways that are not `ValueError`: 100,000 nested brackets raise
RecursionError, a 5,000-digit integer raises the interpreter's int-conversion ValueError with a message about
sys.set_int_max_str_digits, a `\\ud800` escape gives a string that cannot be encoded again (it crashes
whoever writes it to the ledger or a log), and `{"a":1,"a":2}` means one thing here and another in a parser
that keeps the first key. `parse` turns each of these into one InputError line, before anything is trusted:

- nesting depth is measured on the raw text before parsing, in linear time (strings are skipped with a
  regular expression that cannot backtrack), so the recursive parser never sees a deep document;
- integers are limited in digits (an OCI size is an int64; 32 digits is generous), and NaN/Infinity, which
  are not JSON, are refused;
- the text must be UTF-8 (a UTF-8 BOM is tolerated), and no string or key may hold a lone surrogate;
- duplicate keys in any object are refused (parsers disagree on which one wins).
"""

from __future__ import annotations

import json
import re
from array import array
from itertools import accumulate
from typing import Any, NoReturn, TypeAlias

from notary.errors import InputError, NotaryError

# What a parsed document is made of (json.loads gives nothing else); callers narrow with isinstance. Also the
# type of a document being built, when it is built of exactly these (dict[str, object] serves otherwise).
JsonValue: TypeAlias = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]
JsonObject: TypeAlias = dict[str, JsonValue]

MAX_DEPTH = 64
MAX_INT_DIGITS = 32

# Patterns stay strings (re caches them once used): the OCI hook imports this module on every container
# start, and most documents never need the first two.
# From a quote: the string's body, then its closing quote if there is one (an unterminated string runs to the
# end of the text instead of failing and being retried from the next quote: no quadratic backtracking).
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"?'
_NOT_BRACKET = r"[^\[\]{}]+"
_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_SURROGATE_ESCAPE = r"\\u[dD][89a-fA-F]"
_SURROGATE = "[\ud800-\udfff]"


class _Refused(Exception):
    """Raised from inside the parser's hooks; parse turns it into the caller's error type."""


def nesting_depth(text: str, limit: int = MAX_DEPTH) -> int:
    """The deepest bracket nesting outside strings (0 for a scalar), in time linear in len(text). When the
    text has at most limit opening brackets in all, that count is returned: an upper bound, and enough."""
    opening = text.count("[") + text.count("{")
    if opening <= limit:
        return opening
    skeleton = re.sub(_NOT_BRACKET, "", re.sub(_STRING, "", text, flags=re.S)).encode("ascii")
    if not skeleton:
        return 0
    steps = array("b", skeleton.translate(_STEP))
    return max(0, max(accumulate(steps)))


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS} are accepted)")
    return int(text)


def _constant(name: str) -> NoReturn:
    raise _Refused(f"{name} is not a JSON value")


def _object(pairs: list[tuple[str, JsonValue]]) -> JsonObject:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"duplicate key {key[:60]!r}")
            seen.add(key)
    return obj


def _check_surrogates(doc: JsonValue) -> None:
    stack: list[object] = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if re.search(_SURROGATE, item):
                raise _Refused("a string holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not Unicode text")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def loads(data: bytes | str, where: str, *, max_depth: int = MAX_DEPTH,
          error: type[NotaryError] = InputError) -> Any:
    """parse, left untyped for the callers that do not narrow what they read yet (immudb's gateway answers
    and mirror seal, in notary.ledger.immudb); the rest of notary uses parse."""
    return parse(data, where, max_depth=max_depth, error=error)


def loads_object(data: bytes | str, where: str, *, error: type[NotaryError] = InputError) -> dict[str, Any]:
    """parse_object, left untyped for the callers that do not narrow what they read yet (see loads)."""
    return parse_object(data, where, error=error)


def parse(data: bytes | str, where: str, *, max_depth: int = MAX_DEPTH,
          error: type[NotaryError] = InputError) -> JsonValue:
    """Parse one untrusted JSON document; error (InputError: exit 2) names where it came from."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise error(f"malformed JSON in {where}: not UTF-8 text (byte {exc.start})") from None
    else:
        text = data
    depth = nesting_depth(text, max_depth)
    if depth > max_depth:
        raise error(f"malformed JSON in {where}: nested {depth} deep, over the limit of {max_depth}")
    try:
        doc: JsonValue = json.loads(text, parse_int=_int, parse_constant=_constant, object_pairs_hook=_object)
        if "\\u" in text and re.search(_SURROGATE_ESCAPE, text):
            _check_surrogates(doc)
    except _Refused as exc:
        raise error(f"malformed JSON in {where}: {exc}") from None
    except RecursionError:  # cannot happen after the depth check; kept so it can never become a traceback
        raise error(f"malformed JSON in {where}: nested too deep") from None
    except ValueError as exc:
        raise error(f"malformed JSON in {where}: {exc}") from None
    return doc


def parse_object(data: bytes | str, where: str, *, error: type[NotaryError] = InputError) -> JsonObject:
    """parse, for documents that must be a JSON object."""
    doc = parse(data, where, error=error)
    if not isinstance(doc, dict):
        raise error(f"malformed {where}: expected a JSON object")
    return doc
