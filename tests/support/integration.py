"""Gate for tests that need a real external component.

Locally a missing component skips the test with the reason; in CI (NOTARY_REQUIRE_INTEGRATION=1) it fails
the test instead, so a green CI run can never hide an integration test that did not run.
"""

from __future__ import annotations

import os
import shutil

import pytest


def integration_required() -> bool:
    return os.environ.get("NOTARY_REQUIRE_INTEGRATION") == "1"


def missing(component: str, why: str = "") -> None:
    """Skip (locally) or fail (CI) because component is not available."""
    text = f"{component} is not available" + (f": {why}" if why else "")
    if integration_required():
        pytest.fail(f"NOTARY_REQUIRE_INTEGRATION=1 but {text}", pytrace=False)
    pytest.skip(text)


def require_tool(name: str) -> str:
    """Path of executable name, or skip/fail as above."""
    path = shutil.which(name)
    if path is None:
        missing(name, "not on PATH")
    assert path is not None
    return path
