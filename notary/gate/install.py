"""Wiring the gate into runtimes: hooks.d files for podman / CRI-O, the containerd verifier wrapper.

A hook runs with only the environment its definition gives it, so the files name the Python interpreter
that has notary installed and pass NOTARY_CONFIG explicitly. Files are written atomically (temp + rename):
a runtime reading hooks.d mid-write must never see half a hook, because a broken hook file is skipped and
containers would start ungated.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from notary.errors import UsageError
from notary.gate.oci_hook import HOOK_CODE

HOOK_FILE = "notary-gate.json"
DEFAULT_HOOKS_DIR = "/etc/containers/oci/hooks.d"
DEFAULT_CONTAINERD_BIN_DIR = "/opt/containerd/image-verifier/bin"
STAGES = ("prestart", "createRuntime")
TARGETS = ("podman", "cri-o", "containerd")


@dataclass(frozen=True)
class Installed:
    target: str
    path: str
    content: str

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "path": self.path, "content": self.content}


def hook_definition(config: str, *, stage: str = "prestart", python: str | None = None,
                    ledger: str | None = None, timeout: int = 30) -> dict[str, Any]:
    """containers/common hooks.d schema 1.0.0: run the notary hook for every container at stage."""
    if stage not in STAGES:
        raise UsageError(f"unknown hook stage {stage!r}", hint="use prestart or createRuntime")
    python = python or sys.executable
    env = [f"NOTARY_CONFIG={config}", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    if ledger:
        env.append(f"NOTARY_LEDGER={ledger}")
    return {
        "version": "1.0.0",
        "hook": {"path": python, "args": [python, "-c", HOOK_CODE], "env": env,
                 "timeout": timeout},
        "when": {"always": True},
        "stages": [stage],
    }


def verifier_script(config: str, *, python: str | None = None) -> str:
    python = python or sys.executable
    return ("#!/bin/sh\n"
            "# notary image verifier for containerd's bindir ImageVerifier (written by notary gate install)\n"
            f"NOTARY_CONFIG='{config}' exec '{python}' -m notary.gate.containerd \"$@\"\n")


def _atomic_write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".notary-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def install(target: str, *, config: str, directory: str | None = None, stage: str = "prestart",
            python: str | None = None, ledger: str | None = None, dry_run: bool = False) -> Installed:
    if target not in TARGETS:
        raise UsageError(f"unknown install target {target!r}", hint=f"one of {', '.join(TARGETS)}")
    config_path = Path(config).resolve()
    if not config_path.is_file():
        raise UsageError(f"config {config_path} does not exist", hint="write the [policy] first (docs/gate.md)")
    for value in (str(config_path), python or sys.executable):
        if "'" in value or "\n" in value:
            raise UsageError(f"path {value!r} contains a quote or newline")
    if target == "containerd":
        path = Path(directory or DEFAULT_CONTAINERD_BIN_DIR) / "notary"
        text = verifier_script(str(config_path), python=python)
        mode = 0o755
    else:
        path = Path(directory or DEFAULT_HOOKS_DIR) / HOOK_FILE
        text = json.dumps(hook_definition(str(config_path), stage=stage, python=python, ledger=ledger),
                          indent=2) + "\n"
        mode = 0o644
    if not dry_run:
        try:
            _atomic_write(path, text, mode)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror}") from exc
    return Installed(target, str(path), text)
