"""Durations in settings and flags (`max_age = "30d"`, `verify --max-age 12h`): one parser, one behaviour.

Why zero is refused: a maximum age of zero refuses every notarization ever made (each is older than now), so
in a policy it can only be a mistake that turns the gate into "refuse everything", and on `verify --max-age`
it cannot be told apart from "no limit", which is what leaving the flag out means. Why there is an upper
bound: `timedelta` overflows past 999,999,999 days (an OverflowError, not a user error), and a limit of more
than a few centuries limits nothing; 100 years is accepted, more is refused as the typo it is.
"""

from __future__ import annotations

import re
from datetime import timedelta

from notary.errors import UsageError

_DURATION = re.compile(r"^([0-9]+)([smhdw])\Z")  # ASCII digits only: int() would take any Unicode digit
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DURATION = timedelta(days=36525)  # 100 years
MAX_SECONDS = int(MAX_DURATION.total_seconds())
HINT = "a whole number and a unit (s, m, h, d, w), e.g. 90m, 12h, 30d, 2w"


def parse_duration(text: object, what: str = "duration") -> timedelta:
    """A positive duration of at most 100 years, or a UsageError (exit 2) naming what was being set."""
    if not isinstance(text, str):
        raise UsageError(f"{what} must be a string such as \"30d\", not {type(text).__name__} {text!r:.40}",
                         hint=HINT)
    match = _DURATION.match(text.strip())
    if not match:
        raise UsageError(f"{what}: not a duration: {text[:40]!r}", hint=HINT)
    digits = match.group(1).lstrip("0") or "0"
    # more than 12 digits is over 100 years in any unit (and int() refuses over 4,300 digits)
    seconds = int(digits) * _SECONDS[match.group(2)] if len(digits) <= 12 else MAX_SECONDS + 1
    if seconds == 0:
        raise UsageError(f"{what} cannot be zero: it would refuse every notarization",
                         hint="leave it out for no age limit")
    if seconds > MAX_SECONDS:
        raise UsageError(f"{what} {text.strip()[:40]!r} is longer than 100 years",
                         hint="leave it out for no age limit")
    return timedelta(seconds=seconds)
