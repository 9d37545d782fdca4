"""The shapes an evidence bundle's JSON fields must have: each check raises ValueError, which the loaders turn
into one "malformed bundle" ProofError (a hostile bundle is exit 3, never a traceback)."""

from __future__ import annotations

from collections.abc import Mapping


def mapping(v: object) -> Mapping[str, object]:
    if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
        raise ValueError("an object was expected")
    return v


def listed(v: object) -> list[object]:
    if not isinstance(v, list):
        raise ValueError("a list was expected")
    return v


def string(v: object) -> str:
    if not isinstance(v, str):
        raise ValueError("a string was expected")
    return v


def integer(v: object) -> int:
    if type(v) is not int or not 0 <= v < 1 << 63:
        raise ValueError("a non-negative integer was expected")
    return v
