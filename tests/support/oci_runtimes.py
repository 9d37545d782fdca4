"""Low-level OCI runtimes for the hook tests: runc and crun run the same umoci bundle.

`run_bundle(runtime, bundle, state_root)` runs `<runtime> --root STATE run --bundle BUNDLE ID` and deletes
the container afterwards. Two differences matter to a gate and are handled here, in the open:

- crun discards a hook's stdout and stderr unless the bundle names files for them (annotations
  `run.oci.hooks.stdout` / `run.oci.hooks.stderr`): a crun user sees notary's reason only there (and in the
  decision log). `hook_output_annotations()` gives those annotations; `run_bundle` appends what the hook
  wrote to the result's stderr, where runc puts it itself.
- crun refuses a hybrid cgroup layout whose cgroup2 mount still has controllers ("cgroups in hybrid mode not
  supported, drop all controllers from cgroupv2"), which is what this sandbox has (hugetlb on
  /sys/fs/cgroup/unified). Then crun runs in a private mount namespace without that mount: plain cgroup v1
  for crun, nothing changed for anyone else on the machine.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

from tests.support.integration import missing, require_tool

RUNTIMES = ("runc", "crun")
HOOK_STDERR = "run.oci.hooks.stderr"
UNIFIED = Path("/sys/fs/cgroup/unified")


def hook_output_annotations(runtime: str, directory: Path) -> dict[str, str]:
    """Annotations that make crun keep the hook's stderr (runc shows it in its own error already)."""
    if runtime != "crun":
        return {}
    return {HOOK_STDERR: str(directory / "hook.stderr")}


def _hybrid_cgroup2_with_controllers() -> bool:
    try:
        return os.path.ismount(UNIFIED) and bool((UNIFIED / "cgroup.controllers").read_text().strip())
    except OSError:
        return False


def runtime_argv(runtime: str, state_root: Path, *args: str) -> list[str]:
    binary = require_tool(runtime)
    if os.geteuid() != 0:
        missing(runtime, "needs root here")
    argv = [binary, "--root", str(state_root), *args]
    if runtime == "crun" and _hybrid_cgroup2_with_controllers():
        unshare = require_tool("unshare")
        argv = [unshare, "--mount", "--propagation", "private", "sh", "-c",
                f'umount {UNIFIED} && exec "$0" "$@"', *argv]
    return argv


def run_bundle(runtime: str, bundle: Path, state_root: Path, *,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the bundle to completion; the hook's own stderr (crun: from its annotation file) ends stderr."""
    cid = "notary-" + uuid.uuid4().hex[:12]
    try:
        proc = subprocess.run(runtime_argv(runtime, state_root, "run", "--bundle", str(bundle), cid),
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    finally:
        subprocess.run(runtime_argv(runtime, state_root, "delete", "--force", cid), capture_output=True,
                       check=False)
    hook_err = _hook_stderr_file(bundle)
    if hook_err is not None and hook_err.exists():
        proc.stderr += hook_err.read_text(errors="replace")
    return proc


def _hook_stderr_file(bundle: Path) -> Path | None:
    import json

    try:
        annotations = json.loads((bundle / "config.json").read_text()).get("annotations") or {}
    except (OSError, ValueError):
        return None
    value = annotations.get(HOOK_STDERR)
    return Path(value) if value else None
