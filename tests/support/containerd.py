"""A private containerd 2.x for tests: its own root, state, socket and config, notary as its image verifier.

`Containerd(workdir, verifier_dir, registry)` writes a `version = 3` config.toml that
- keeps everything of its own: `root`, `state`, the gRPC (and ttrpc) socket, the `opt` directory;
- enables `io.containerd.image-verifier.v1.bindir` with `bin_dir` = the directory `notary gate install
  containerd --hooks-dir DIR` wrote (containerd runs every executable in it before a pull);
- disables what a node would have but these tests do not use, and what would touch shared places (CRI and its
  image/runtime plugins, NRI's socket);
and a hosts directory (`certs.d/HOST:PORT/hosts.toml`) for the plain-HTTP loopback registry. It starts
`containerd --config`, waits until `ctr version` answers, and `stop()` removes what is left (tasks,
containers, images) before SIGTERM. `ctr(...)` runs containerd's own client against it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from tests.support.components import component_dir
from tests.support.integration import missing, require_tool
from tests.support.processes import stop_process

NAMESPACE = "notary-test"
DISABLED = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime",
            "io.containerd.nri.v1.nri", "io.containerd.podsandbox.controller.v1.podsandbox"]


def config_toml(root: Path, state: Path, socket: Path, verifier_dir: Path, *, timeout: str = "60s") -> str:
    disabled = ", ".join(f'"{p}"' for p in DISABLED)
    return f"""version = 3
root = "{root}"
state = "{state}"
disabled_plugins = [{disabled}]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"

[plugins."io.containerd.image-verifier.v1.bindir"]
  bin_dir = "{verifier_dir}"
  max_verifiers = 10
  per_verifier_timeout = "{timeout}"
"""


def hosts_toml(registry: str) -> str:
    """containerd's hosts.toml for a plain-HTTP registry on loopback (pull and resolve only)."""
    return (f'server = "http://{registry}"\n\n'
            f'[host."http://{registry}"]\n'
            '  capabilities = ["pull", "resolve"]\n')


class Containerd:
    """One containerd daemon on a private socket (short path under /tmp: unix socket paths are limited)."""

    def __init__(self, workdir: Path, verifier_dir: Path, registry: str) -> None:
        if os.geteuid() != 0:
            missing("containerd", "needs root here")
        require_tool("runc")
        self.bin_dir = component_dir("containerd")
        self.workdir = workdir
        self.run_dir = Path("/tmp") / f"ncd-{uuid.uuid4().hex[:8]}"
        self.run_dir.mkdir()
        self.socket = self.run_dir / "containerd.sock"
        self.root = workdir / "root"
        self.hosts_dir = workdir / "certs.d"
        (self.hosts_dir / registry).mkdir(parents=True)
        (self.hosts_dir / registry / "hosts.toml").write_text(hosts_toml(registry))
        self.config = workdir / "config.toml"
        self.config.write_text(config_toml(self.root, self.run_dir / "state", self.socket, verifier_dir))
        self.log_path = workdir / "containerd.log"
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("NOTARY_")},
                    "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}
        with open(self.log_path, "wb") as log:
            self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [str(self.bin_dir / "containerd"), "--config", str(self.config), "--log-level", "info"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited with {self.proc.returncode}: {self.log_tail()}")
            if self.socket.exists() and self.ctr("version", timeout=10).returncode == 0:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"containerd did not answer within {timeout:.0f}s: {self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def ctr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`ctr --address SOCKET --namespace notary-test ARGS`."""
        return subprocess.run([str(self.bin_dir / "ctr"), "--address", str(self.socket), "--namespace", NAMESPACE,
                               *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)

    def pull(self, ref: str, *extra: str) -> subprocess.CompletedProcess[str]:
        """`ctr image pull --plain-http --hosts-dir DIR REF`: through the transfer service, so verified."""
        return self.ctr("image", "pull", "--plain-http", "--hosts-dir", str(self.hosts_dir), *extra, ref)

    def images(self) -> list[str]:
        return self.ctr("image", "ls", "-q").stdout.split()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for task in self.ctr("task", "ls", "-q").stdout.split():
                self.ctr("task", "kill", "-s", "SIGKILL", task)
                self.ctr("task", "delete", "--force", task)
            for container in self.ctr("container", "ls", "-q").stdout.split():
                self.ctr("container", "delete", container)
        stop_process(self.proc, grace=20)
        self.proc = None
        # a crashed run may leave snapshot mounts behind: never leave mounts under a deleted directory
        for base in (self.root, self.run_dir):
            subprocess.run(["umount", "-R", "--lazy", str(base)], capture_output=True, check=False)
        shutil.rmtree(self.run_dir, ignore_errors=True)
