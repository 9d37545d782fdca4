"""Where the Go-built real components live: kube-apiserver, etcd, containerd (scripts/*-build.sh).

`component_dir("containerd")` is the directory holding a component's binaries: the `<NAME>_DIR` environment
variable `make test` sets (e.g. CONTAINERD_DIR), else the build script's answer. The scripts are asked with
NOTARY_NO_BUILD=1: they find an installed or cached binary, wait for a build already under way (the
background build `make test` starts), and never start a 20-minute build inside a test. Anything missing
skips the test locally and fails it in CI (tests.support.integration). `script_dir` is that question put to
any of the scripts (the CI runners' and immudb's use it too).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.integration import missing

REPO = Path(__file__).resolve().parents[2]

# component -> (build script, binaries it provides)
COMPONENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "kube-apiserver": ("kube-apiserver-build.sh", ("kube-apiserver",)),
    "etcd": ("etcd-build.sh", ("etcd",)),
    "containerd": ("containerd-build.sh", ("containerd", "ctr", "containerd-shim-runc-v2")),
}
# A build under way in the background (make test) may hold the lock this long before a test gives up.
WAIT_FOR_BUILD = float(os.environ.get("NOTARY_TEST_BUILD_WAIT", "2700"))

_found: dict[str, Path] = {}


def _has_all(directory: Path, binaries: tuple[str, ...]) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in binaries)


def script_dir(name: str, script: str, *args: str, need: tuple[str, ...], timeout: float,
               build: bool = False) -> Path:
    """The directory scripts/<script> prints as its last line, holding every executable of need; else skip/fail
    (CI) saying why. Asked with NOTARY_NO_BUILD=1 (find, or wait for a build under way) unless build."""
    env = dict(os.environ) if build else {**os.environ, "NOTARY_NO_BUILD": "1"}
    try:
        proc = subprocess.run([str(REPO / "scripts" / script), *args], capture_output=True, text=True,
                              timeout=timeout, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        missing(name, f"scripts/{script} did not answer: {exc}")
        raise AssertionError("unreachable") from exc
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        missing(name, f"{tail} (scripts/{script} provides it; make test runs it)")
    directory = Path(lines[-1])
    if not _has_all(directory, need):
        missing(name, f"scripts/{script} printed {directory}, which lacks one of {', '.join(need)}")
    return directory


def component_dir(name: str) -> Path:
    """Directory holding every binary of component name, or skip/fail (CI) saying how to get it."""
    if name in _found:
        return _found[name]
    script, binaries = COMPONENTS[name]
    env_dir = os.environ.get(name.upper().replace("-", "_") + "_DIR")
    if env_dir and _has_all(Path(env_dir), binaries):
        _found[name] = Path(env_dir)
        return _found[name]
    _found[name] = script_dir(name, script, need=binaries, timeout=WAIT_FOR_BUILD)
    return _found[name]
