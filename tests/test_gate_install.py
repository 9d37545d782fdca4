"""`notary gate install`: the files runtimes read must be complete, point at this policy, and fail closed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.burst import state, write_bundle
from notary.errors import UsageError
from notary.gate.install import add_hook, install
from notary.sources.base import Subject
from tests.support.runtimes import GateWorld, HookServer

GOOD = "sha256:" + "e7" * 32


@pytest.fixture
def world(tmp_path: Path) -> GateWorld:
    return GateWorld(tmp_path / "world")


def _notary(world: GateWorld, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "notary.cli.main", "--config", str(world.config), *args],
                          capture_output=True, text=True, check=False, env=world.env())


@pytest.mark.parametrize("target", ["podman", "cri-o"])
def test_hooks_d_file_runs_the_hook_with_this_policy(world: GateWorld, tmp_path: Path, target: str) -> None:
    result = _notary(world, "gate", "install", target, "--hooks-dir", str(tmp_path / "hooks.d"),
                     "--stage", "createRuntime")
    assert result.returncode == 0, result.stderr
    spec = json.loads((tmp_path / "hooks.d" / "notary-gate.json").read_text())
    assert spec["version"] == "1.0.0" and spec["stages"] == ["createRuntime"] and spec["when"] == {"always": True}
    assert spec["hook"]["path"] == sys.executable and spec["hook"]["args"][0] == sys.executable
    assert f"NOTARY_CONFIG={world.config}" in spec["hook"]["env"]


def test_install_says_no_hook_server_answers(world: GateWorld, tmp_path: Path) -> None:
    missing = tmp_path / "run" / "gate.sock"
    result = _notary(world, "--ledger", "immudb://notary@127.0.0.1:3322/defaultdb", "gate", "install", "podman",
                     "--hooks-dir", str(tmp_path / "h"), "--delegate-to", str(missing), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"no hook server answers on {missing}" in result.stderr and "250 ms" in result.stderr
    assert "[immudb] gateway" in result.stderr  # the way to a fast hook that decides by itself


def test_install_with_the_immudb_gateway_does_not_suggest_it(world: GateWorld, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "notary.cli.main", "--config", str(world.config), "--ledger",
         "immudb://notary@127.0.0.1:3322/defaultdb", "gate", "install", "podman", "--hooks-dir", str(tmp_path / "h"),
         "--delegate-to", str(tmp_path / "none.sock"), "--dry-run"],
        capture_output=True, text=True, check=False,
        env={**world.env(), "NOTARY_IMMUDB_GATEWAY": "http://127.0.0.1:8080"})
    assert result.returncode == 0, result.stderr
    assert "about 80 ms" in result.stderr and "[immudb] gateway" not in result.stderr


def test_install_uses_the_running_hook_server(world: GateWorld, tmp_path: Path) -> None:
    """The hook install writes, while a hook server with this notary.toml runs, is decided by that server."""
    world.ensure_ledger()
    world.notarize(Subject(GOOD, "registry.example/app", "oci-manifest"))
    with HookServer(world) as server:
        result = _notary(world, "gate", "install", "podman", "--hooks-dir", str(tmp_path / "h"),
                         "--delegate-to", str(server.socket))
        assert result.returncode == 0, result.stderr
        assert f"the hook server on {server.socket} serves this notary.toml" in result.stderr
        hook = json.loads((tmp_path / "h" / "notary-gate.json").read_text())["hook"]
        assert f"NOTARY_GATE_SOCKET={server.socket}" in hook["env"]
        env = dict(item.split("=", 1) for item in hook["env"])
        proc = subprocess.run(hook["args"], input=state("installed", write_bundle(tmp_path / "b", GOOD, "registry.example/app:1")),
                              env=env, capture_output=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        line = world.decisions()[-1]
        assert (line["container"], line["front_end"], line.get("delegated")) == ("installed", "oci-hook-server", True)
        world.config.write_text(world.config.read_text() + "\n")  # an edited policy file: no longer the server's
        again = _notary(world, "gate", "install", "podman", "--hooks-dir", str(tmp_path / "h"),
                        "--delegate-to", str(server.socket), "--dry-run")
        assert "runs another notary.toml" in again.stderr


def test_dry_run_writes_nothing(world: GateWorld, tmp_path: Path) -> None:
    result = _notary(world, "gate", "install", "podman", "--hooks-dir", str(tmp_path / "h"), "--dry-run")
    assert result.returncode == 0 and '"stages"' in result.stdout
    assert not (tmp_path / "h").exists()


def test_install_refuses_a_policy_that_does_not_load(world: GateWorld, tmp_path: Path) -> None:
    world.config.write_text(world.config.read_text().replace('fail = "closed"', 'fail = "maybe"'))
    result = _notary(world, "gate", "install", "podman", "--hooks-dir", str(tmp_path / "h"))
    assert result.returncode == 2 and "fail must be" in result.stderr
    assert not (tmp_path / "h").exists()


def test_install_refuses_a_config_path_with_a_quote(tmp_path: Path) -> None:
    odd = tmp_path / "it's"
    odd.mkdir()
    (odd / "notary.toml").write_text("")
    with pytest.raises(UsageError, match="quote"):
        install("containerd", config=str(odd / "notary.toml"), directory=str(tmp_path / "bin"))


def test_docker_wrapper_adds_the_hook_once(world: GateWorld, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "hooks": {"createRuntime": [
        {"path": "/bin/true"}]}}))
    add_hook(str(bundle), str(world.config))
    add_hook(str(bundle), str(world.config))
    hooks = json.loads((bundle / "config.json").read_text())["hooks"]["createRuntime"]
    assert len(hooks) == 2 and hooks[1] == {"path": "/bin/true"}
    assert f"NOTARY_CONFIG={world.config}" in hooks[0]["env"]


def test_docker_wrapper_fails_closed_when_the_bundle_is_unreadable(world: GateWorld, tmp_path: Path) -> None:
    done = install("docker", config=str(world.config), directory=str(tmp_path / "bin"))
    assert os.access(done.path, os.X_OK)
    ran = tmp_path / "runc-ran"
    fake_runc = tmp_path / "fake-runc"
    fake_runc.write_text(f"#!/bin/sh\ntouch '{ran}'\n")
    fake_runc.chmod(0o755)
    script = Path(done.path).read_text().replace("RUNC='", f"RUNC='{fake_runc}' #'", 1)
    Path(done.path).write_text(script)
    proc = subprocess.run([done.path, "create", "--bundle", str(tmp_path / "missing"), "cid"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "cannot add the gate hook" in proc.stderr
    assert not ran.exists()
    proc = subprocess.run([done.path, "state", "cid"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and ran.exists()  # other runtime calls pass straight through
