"""The bounded JSON parser's limits sit exactly where documented, and valid documents are not collateral."""

from __future__ import annotations

import time

import pytest

from notary.errors import InputError, UsageError
from notary.jsonsafe import MAX_DEPTH, MAX_INT_DIGITS, loads, loads_object, nesting_depth


def test_nesting_at_the_limit_parses_and_one_deeper_is_refused() -> None:
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH, "t") is not None
    with pytest.raises(InputError, match=f"nested {MAX_DEPTH + 1} deep"):
        loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "t")


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = '{"a": "' + "[{" * 1000 + '\\"]", "b": [' + '"[[[[",' * 200 + "1]}"
    assert nesting_depth(text) == 2
    assert loads_object(text, "t")["b"][-1] == 1


def test_depth_scan_stays_linear_on_an_unterminated_string_of_escaped_quotes() -> None:
    """The string-skipping pattern never fails and retries from the next quote (no quadratic backtracking)."""
    start = time.monotonic()
    with pytest.raises(InputError):
        loads('"' + '\\"' * 1_000_000 + "[" * 100, "t")
    assert time.monotonic() - start < 5


def test_integer_digits_limit() -> None:
    assert loads("-" + "9" * MAX_INT_DIGITS, "t") == -int("9" * MAX_INT_DIGITS)
    with pytest.raises(InputError, match="integer of 33 digits"):
        loads("9" * (MAX_INT_DIGITS + 1), "t")


@pytest.mark.parametrize("text,needle", [('"\\ud800"', "surrogate"), ('{"\\udc00": 1}', "surrogate"),
                                         ('[["\\ud83d"]]', "surrogate"), ("NaN", "NaN is not a JSON value"),
                                         ("[-Infinity]", "Infinity"), ('{"a": 1, "a": 1}', "duplicate key 'a'"),
                                         (b"\xed\xa0\x80", "not UTF-8"), (b"\xff", "not UTF-8")])
def test_what_other_parsers_would_read_differently_is_refused(text: str | bytes, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        loads(text, "t")


def test_valid_text_is_not_collateral() -> None:
    assert loads('["\\ud83d\\ude00", "\\u00e9"]', "t") == ["\U0001F600", "é"]
    assert loads(b"\xef\xbb\xbf{}", "t") == {}  # a UTF-8 BOM, as Windows tools write
    assert loads('{"a": {"a": 1}}', "t") == {"a": {"a": 1}}  # the same key at two levels is no duplicate


def test_the_caller_chooses_the_error_type() -> None:
    with pytest.raises(UsageError, match="malformed JSON in policy file"):
        loads("{", "policy file", error=UsageError)
