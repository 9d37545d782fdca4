"""The shipped systemd units (packaging/systemd): valid to systemd, and their command lines really serve.

`systemd-analyze verify` checks each unit (settings, ExecStart executable, dependencies) with the install path
/opt/notary/venv/bin/notary pointed at this venv's notary; then each unit's own ExecStart (and the
ExecStartPost readiness check) is run as written, with only its paths moved into the test's directory, and
must serve: a misspelt option in a unit fails here, not on a user's node.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.support.integration import require_tool
from tests.support.processes import stop_process
from tests.support.registry import free_port
from tests.support.runtimes import GateWorld, self_signed_cert

UNITS = Path(__file__).resolve().parents[1] / "packaging" / "systemd"
INSTALLED = "/opt/notary/venv/bin/notary"
NOTARY = str(Path(sys.executable).parent / "notary")
UNIT_NAMES = ("notary-gate-hook-server.service", "notary-docker-authz.service", "notary-gate-webhook.service",
              "notary-monitor.service", "notary-sync.service")
TIMERS = ("notary-sync.timer",)


def unit_settings(name: str) -> dict[str, list[str]]:
    """Key -> values of a unit file (repeated keys kept in order); enough for the keys these tests read."""
    settings: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    analyze = require_tool("systemd-analyze")
    return subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60,
                          cwd=unit.parent, check=False)


def localized(name: str, directory: Path, text: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text((text if text is not None else (UNITS / name).read_text()).replace(INSTALLED, NOTARY))
    return path


def test_every_service_has_a_unit() -> None:
    assert sorted(p.name for p in UNITS.glob("*.service")) == sorted(UNIT_NAMES)
    assert sorted(p.name for p in UNITS.glob("*.timer")) == sorted(TIMERS)


@pytest.mark.parametrize("name", UNIT_NAMES + TIMERS)
def test_unit_passes_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    proc = verify(localized(name, tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert name not in proc.stdout + proc.stderr, proc.stdout + proc.stderr  # not even a warning about it


def test_verify_catches_a_misspelt_setting(tmp_path: Path) -> None:
    """The check above can fail: a unit whose ExecStart key is misspelt is refused."""
    name = UNIT_NAMES[0]
    broken = (UNITS / name).read_text().replace("\nExecStart=", "\nExecStrat=")
    proc = verify(localized(name, tmp_path, broken))
    assert proc.returncode != 0 and "ExecStrat" in proc.stderr


def test_gate_services_are_ordered_before_the_runtimes_they_gate() -> None:
    """A runtime that starts first would run containers with nobody to ask (the hook then refuses them all)."""
    hook = unit_settings("notary-gate-hook-server.service")
    assert {"containerd.service", "crio.service", "docker.service"} <= set(" ".join(hook["Before"]).split())
    authz = unit_settings("notary-docker-authz.service")
    assert "docker.service" in authz["Before"] and "docker.service" in authz["RequiredBy"]
    for name in UNIT_NAMES:
        settings = unit_settings(name)
        assert settings.get("Restart") == ["always"] or settings["Type"] == ["oneshot"]  # a timer runs the oneshots
        state = [e for e in settings.get("Environment", []) if e.startswith("NOTARY_STATE_DIR=")]
        assert state and state[0].split("=", 1)[1].startswith("/var/lib/"), f"{name}: no persistent state dir"


# ---------------------------------------------------------------- the ExecStart lines, run


def run_exec_start(name: str, world: GateWorld, replace: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    """Start the unit's ExecStart with its Environment=, paths rewritten by replace; returns (process, log)."""
    settings = unit_settings(name)
    line = settings["ExecStart"][0].replace(INSTALLED, NOTARY)
    for old, new in replace.items():
        line = line.replace(old, new)
    env = world.env()
    for item in settings.get("Environment", []):
        key, value = item.split("=", 1)
        env[key] = value.replace("/var/lib", str(world.root / "var-lib"))
    log = world.root / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(shlex.split(line), env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def exec_start_post(name: str, replace: dict[str, str]) -> int:
    """The unit's readiness check (ExecStartPost), rewritten like ExecStart; its exit code."""
    line = unit_settings(name)["ExecStartPost"][0]
    for old, new in replace.items():
        line = line.replace(old, new)
    return subprocess.run(shlex.split(line), timeout=30, check=False).returncode


def test_hook_server_unit_command_serves_its_socket(world: GateWorld) -> None:
    sock_dir = Path("/tmp") / f"nus-{uuid.uuid4().hex[:8]}"
    sock_dir.mkdir()
    replace = {"/etc/notary/notary.toml": str(world.config), "/run/notary/gate.sock": str(sock_dir / "gate.sock")}
    proc, log = run_exec_start("notary-gate-hook-server.service", world, replace)
    try:
        assert exec_start_post("notary-gate-hook-server.service", replace) == 0, log.read_text()
        assert proc.poll() is None
        assert (sock_dir / "gate.sock").stat().st_mode & 0o077 == 0  # 0600: only root may ask
    finally:
        stop_process(proc)
        for leftover in sock_dir.iterdir():
            leftover.unlink()
        sock_dir.rmdir()


def test_docker_authz_unit_command_serves_its_plugin_socket(world: GateWorld) -> None:
    if os.geteuid() != 0:
        pytest.skip("listens under /run/docker/plugins: needs root")
    name = f"notary-unit-{uuid.uuid4().hex[:8]}"  # not the unit's own `notary`: never clash with a real plugin
    replace = {"/etc/notary/notary.toml": str(world.config), "--name notary ": f"--name {name} ",
               "/run/docker/plugins/notary.sock": f"/run/docker/plugins/{name}.sock"}
    proc, log = run_exec_start("notary-docker-authz.service", world, replace)
    try:
        assert exec_start_post("notary-docker-authz.service", replace) == 0, log.read_text()
        resp = subprocess.run(["curl", "-sS", "--unix-socket", f"/run/docker/plugins/{name}.sock", "-X", "POST",
                               "http://plugin/Plugin.Activate"], capture_output=True, text=True, timeout=30)
        assert '"authz"' in resp.stdout.lower(), resp.stdout + resp.stderr
    finally:
        stop_process(proc)
        Path(f"/run/docker/plugins/{name}.sock").unlink(missing_ok=True)


def test_webhook_unit_command_serves_tls_with_its_credentials(world: GateWorld) -> None:
    credentials = world.root / "credentials"
    self_signed_cert(credentials)
    port = free_port()
    replace = {"/etc/notary/notary.toml": str(world.config), "${CREDENTIALS_DIRECTORY}": str(credentials),
               "--host 0.0.0.0": "--host 127.0.0.1", "--port 8443": f"--port {port}"}
    proc, log = run_exec_start("notary-gate-webhook.service", world, replace)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                resp = requests.get(f"https://127.0.0.1:{port}/healthz", verify=str(credentials / "tls.crt"),
                                    timeout=2)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert resp.status_code == 200 and resp.text == "ok\n"
    finally:
        stop_process(proc)


def test_monitor_unit_command_follows_the_ledger(world: GateWorld) -> None:
    """The monitor's ExecStart, run as written: it checks the ledger the config names and reports the head."""
    replace = {"/etc/notary/notary.toml": str(world.config),
               "/var/lib/notary-monitor/state": str(world.root / "monitor-state")}
    proc, log = run_exec_start("notary-monitor.service", world, replace)
    try:
        deadline = time.monotonic() + 30
        while '"event":"head"' not in log.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert '"event":"head"' in log.read_text() and proc.poll() is None, log.read_text()
    finally:
        stop_process(proc)


def test_sync_unit_command_copies_the_ledger_to_the_configured_centre(world: GateWorld, tmp_path: Path) -> None:
    """The sync oneshot's ExecStart, run as written (its timer's job): it copies the configured ledger to
    [sync] to, and a second run finds nothing to send."""
    from notary.ledger import open_ledger
    from notary.sources.base import Subject

    world.notarize(Subject("sha256:" + "5a" * 32, "registry.example/app:1", "oci-manifest"))
    centre = tmp_path / "centre.db"
    open_ledger(centre.as_uri(), state_dir=tmp_path / "init", create=True).close()
    world.config.write_text(world.config.read_text().replace("[policy]", f'[sync]\nto = "{centre.as_uri()}"\n\n[policy]', 1))
    replace = {"/etc/notary/notary.toml": str(world.config)}
    for expected in ("copied source transactions 1..1", "already in sync at source tx 1"):
        proc, log = run_exec_start("notary-sync.service", world, replace)
        assert proc.wait(timeout=60) == 0, log.read_text()
        assert expected in log.read_text(), log.read_text()
    assert unit_settings("notary-sync.service")["SuccessExitStatus"] == ["4"]
    assert unit_settings("notary-sync.timer")["OnUnitInactiveSec"] == ["5min"]
