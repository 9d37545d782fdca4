"""A real SoftHSM2 token for the PKCS#11 tests: its own softhsm2.conf and token directory under the test's tmp
dir, initialised with Debian's softhsm2-util, so no test touches the machine's tokens or another test's.

Missing softhsm2 (the tool or its module) or python-pkcs11 skips locally and fails with
NOTARY_REQUIRE_INTEGRATION=1 (tests/support/integration.py), so CI can never pass without the token tests.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.integration import missing, require_tool

MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",  # Debian, Ubuntu
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",  # Fedora
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
SO_PIN = "so-4417-officer"
# distinctive on purpose: every test searches outputs and ledger bytes for it
PIN = "pin-7391-secret"


def find_module() -> str | None:
    """NOTARY_TEST_SOFTHSM_MODULE (another build of SoftHSM2), else where distributions install it."""
    override = os.environ.get("NOTARY_TEST_SOFTHSM_MODULE")
    candidates = (override,) if override else MODULES
    return next((m for m in candidates if os.path.isfile(m)), None)


@dataclass
class SoftHsm:
    root: Path
    conf: Path
    module: str
    label: str = "ci"
    pin: str = PIN

    @property
    def env(self) -> dict[str, str]:
        """What a notary process needs to reach the token: its config, and the PIN the documented way."""
        return {"SOFTHSM2_CONF": str(self.conf), "NOTARY_PKCS11_PIN": self.pin}

    def uri(self, obj: str, *, path: str = "", query: str = "") -> str:
        """pkcs11:token=LABEL;object=OBJ[;PATH]?module-path=MODULE[&QUERY]"""
        return (f"pkcs11:token={self.label};object={obj}{';' + path if path else ''}"
                f"?module-path={self.module}{'&' + query if query else ''}")

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        """A logged-in python-pkcs11 session in this process, to inspect the token as an attacker with the PIN
        would. SoftHSM reads SOFTHSM2_CONF at C_Initialize, so the module is re-initialised for this token."""
        import pkcs11

        before = os.environ.get("SOFTHSM2_CONF")
        os.environ["SOFTHSM2_CONF"] = str(self.conf)
        try:
            lib = pkcs11.lib(self.module)
            lib.reinitialize()
            with lib.get_token(token_label=self.label).open(user_pin=self.pin) as session:
                yield session
        finally:
            if before is None:
                os.environ.pop("SOFTHSM2_CONF", None)
            else:
                os.environ["SOFTHSM2_CONF"] = before


def start(root: Path, label: str = "ci") -> SoftHsm:
    """A fresh, initialised token `label` with user PIN PIN, in root."""
    tool = require_tool("softhsm2-util")
    module = find_module()
    if module is None:
        missing("SoftHSM2's PKCS#11 module", "install Debian's softhsm2 (libsofthsm2.so)")
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        missing("python-pkcs11", "pip install '.[pkcs11]'")
    assert module is not None
    tokens = root / "tokens"
    tokens.mkdir(parents=True)
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
                    "slots.removable = false\n")
    proc = subprocess.run([tool, "--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", PIN],
                          env={**os.environ, "SOFTHSM2_CONF": str(conf)}, capture_output=True, text=True,
                          timeout=60, check=False)
    if proc.returncode != 0:  # the tool is there and fails: a broken setup, never a skip
        pytest.fail(f"softhsm2-util --init-token failed: {proc.stderr.strip()[-300:]}", pytrace=False)
    return SoftHsm(root=root, conf=conf, module=module, label=label)
