"""Wiring the gate into runtimes: hooks.d files for podman / CRI-O, the containerd verifier wrapper, and a
runc wrapper for dockerd.

A hook runs with only the environment its definition gives it, so the files name the Python interpreter
that has notary installed and pass NOTARY_CONFIG explicitly. Files are written atomically (temp + rename):
a runtime reading hooks.d mid-write must never see half a hook, because a broken hook file is skipped and
containers would start ungated.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from notary.errors import UsageError
from notary.gate.oci_hook import HOOK_CODE

if TYPE_CHECKING:
    from notary.jsonsafe import JsonObject, JsonValue

HOOK_FILE = "notary-gate.json"
DEFAULT_HOOKS_DIR = "/etc/containers/oci/hooks.d"
DEFAULT_CONTAINERD_BIN_DIR = "/opt/containerd/image-verifier/bin"
STAGES = ("prestart", "createRuntime")
TARGETS = ("podman", "cri-o", "containerd", "docker")
DEFAULT_WRAPPER_DIR = "/usr/local/bin"


@dataclass(frozen=True)
class Installed:
    target: str
    path: str
    content: str

    def to_json(self) -> dict[str, object]:
        return {"target": self.target, "path": self.path, "content": self.content}


class HookDefinition(TypedDict):
    """A hooks.d file (containers/common schema 1.0.0); its hook is also what a bundle's config.json lists."""

    version: str
    hook: JsonObject
    when: dict[str, bool]
    stages: list[str]


def hook_definition(config: str, *, stage: str = "prestart", python: str | None = None,
                    ledger: str | None = None, timeout: int = 30, server: str | None = None,
                    delegate_to: str | None = None) -> HookDefinition:
    """containers/common hooks.d schema 1.0.0: run the notary hook for every container at stage.

    server: the socket of a running `notary gate hook-server`; the hook is then curl asking it (fast path, but
    every container is refused while that server is down). Otherwise the Python hook, which asks the hook
    server on delegate_to (default /run/notary/gate.sock) first when one runs there, and decides itself when not.
    """
    if stage not in STAGES:
        raise UsageError(f"unknown hook stage {stage!r}", hint="use prestart or createRuntime")
    env: list[JsonValue] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    hook: JsonObject
    if server:
        from notary.gate.frontends.hook_server import CURL, curl_hook_args

        curl = shutil.which("curl") or CURL
        hook = {"path": curl, "args": [*curl_hook_args(server, curl, timeout=max(timeout - 5, 5))], "env": env,
                "timeout": timeout}
    else:
        python = python or sys.executable
        env.insert(0, f"NOTARY_CONFIG={config}")
        if ledger:
            env.append(f"NOTARY_LEDGER={ledger}")
        if delegate_to:
            env.append(f"NOTARY_GATE_SOCKET={delegate_to}")
        hook = {"path": python, "args": [python, "-c", HOOK_CODE], "env": env, "timeout": timeout}
    return {"version": "1.0.0", "hook": hook, "when": {"always": True}, "stages": [stage]}


def verifier_script(config: str, *, python: str | None = None) -> str:
    python = python or sys.executable
    return ("#!/bin/sh\n"
            "# notary image verifier for containerd's bindir ImageVerifier (written by notary gate install)\n"
            f"NOTARY_CONFIG='{config}' exec '{python}' -m notary.gate.containerd \"$@\"\n")


def runtime_wrapper(config: str, *, python: str | None = None, runc: str | None = None) -> str:
    """A runc wrapper for dockerd's daemon.json "runtimes": on `create` it adds notary's hook to the bundle.

    dockerd has no hooks.d; registering this wrapper as a runtime (and as the default runtime) makes every
    container it creates pass through the same OCI hook as podman and runc. If the hook cannot be added,
    the wrapper exits non-zero and runc never runs (fail closed).
    """
    python = python or sys.executable
    runc = runc or shutil.which("runc") or "/usr/sbin/runc"
    return (
        "#!/bin/sh\n"
        "# notary runtime wrapper for dockerd (written by notary gate install docker): adds notary's OCI hook\n"
        "# to every container created through it, then runs runc.\n"
        f"RUNC='{runc}'\n"
        "bundle=''; create=''; prev=''\n"
        "for arg in \"$@\"; do\n"
        "  if [ \"$arg\" = create ] && [ -z \"$bundle\" ]; then create=1; fi\n"
        "  case \"$prev\" in --bundle|-b) bundle=\"$arg\";; esac\n"
        "  case \"$arg\" in --bundle=*) bundle=\"${arg#--bundle=}\";; esac\n"
        "  prev=\"$arg\"\n"
        "done\n"
        "if [ -n \"$create\" ]; then\n"
        f"  NOTARY_CONFIG='{config}' '{python}' -c '{ADD_HOOK_CODE}' \"${{bundle:-.}}\" || exit 1\n"
        "fi\n"
        "exec \"$RUNC\" \"$@\"\n"
    )


ADD_HOOK_CODE = "from notary.gate.install import add_hook_main; add_hook_main()"


def add_hook(bundle: str, config: str, *, python: str | None = None, stage: str = "createRuntime") -> None:
    """Put notary's hook first in the bundle's config.json at stage (atomic rewrite; idempotent)."""
    from notary.fsio import read_regular
    from notary.gate.oci_hook import MAX_CONFIG
    from notary.jsonsafe import parse_object

    path = Path(bundle) / "config.json"  # a FIFO here must not hang the runtime's create: regular files only
    spec = parse_object(read_regular(path, MAX_CONFIG, "bundle config", error=UsageError, follow_symlinks=False),
                        f"bundle config {path}", error=UsageError)
    hook = hook_definition(config, stage=stage, python=python)["hook"]
    hooks = spec.setdefault("hooks", {})
    listed = hooks.get(stage) or [] if isinstance(hooks, dict) else None
    if not isinstance(hooks, dict) or not isinstance(listed, list):
        raise UsageError(f"bundle config {path}: hooks.{stage} is not a list of hooks in an object")
    existing = [h for h in listed if h != hook]
    hooks[stage] = [hook, *existing]
    _atomic_write(path, json.dumps(spec), 0o600)


def add_hook_main() -> None:
    """`python -c ADD_HOOK_CODE BUNDLE` from the runtime wrapper, with NOTARY_CONFIG set: an entry point, so
    it reads the environment itself."""
    try:
        from notary.environment import Environment

        config = Environment.of_process().config
        if not config or len(sys.argv) != 2:
            raise UsageError("usage: NOTARY_CONFIG=FILE python -c ... BUNDLE")
        add_hook(sys.argv[1], config)
    except Exception as exc:  # noqa: BLE001 - fail closed: no hook, no container
        sys.stderr.write(f"notary: refused: cannot add the gate hook: {exc}\n")
        sys.exit(1)


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
            python: str | None = None, ledger: str | None = None, dry_run: bool = False,
            server: str | None = None, delegate_to: str | None = None) -> Installed:
    if target not in TARGETS:
        raise UsageError(f"unknown install target {target!r}", hint=f"one of {', '.join(TARGETS)}")
    config_path = Path(config).resolve()
    if not config_path.is_file():
        raise UsageError(f"config {config_path} does not exist", hint="write the [policy] first (docs/gate.md)")
    for value in (str(config_path), python or sys.executable):
        if "'" in value or "\n" in value:
            raise UsageError(f"path {value!r} contains a quote or newline")
    if target == "docker":
        path = Path(directory or DEFAULT_WRAPPER_DIR) / "notary-runc"
        text = runtime_wrapper(str(config_path), python=python)
        mode = 0o755
    elif target == "containerd":
        path = Path(directory or DEFAULT_CONTAINERD_BIN_DIR) / "notary"
        text = verifier_script(str(config_path), python=python)
        mode = 0o755
    else:
        path = Path(directory or DEFAULT_HOOKS_DIR) / HOOK_FILE
        text = json.dumps(hook_definition(str(config_path), stage=stage, python=python, ledger=ledger,
                                          server=server, delegate_to=delegate_to), indent=2) + "\n"
        mode = 0o644
    if not dry_run:
        try:
            _atomic_write(path, text, mode)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror}") from exc
    return Installed(target, str(path), text)


def hook_server_status(socket_path: str, config: str, ledger: str | None) -> str:
    """Whether the Python hook for config will be decided by the hook server on socket_path: "serving" (a
    trusted socket whose server has this config's identity), "other" (a server with another notary.toml,
    ledger or an older version of the file: hooks decide themselves), or "none"."""
    from notary.gate.frontends.hook_server import health
    from notary.gate.hook_main import config_fingerprint, identity, trusted_socket

    if not trusted_socket(socket_path):
        return "none"
    try:
        answer = health(socket_path, "/identity")
        mine = identity(config_fingerprint(config), ledger, None, {})  # the hook's env is only what we write
    except OSError:
        return "none"
    return "serving" if answer["status"] == 200 and answer["body"].strip() == mine else "other"
