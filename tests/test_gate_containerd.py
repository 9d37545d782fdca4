"""The containerd image verifier, executed exactly as containerd's bindir plugin runs it.

The verifier written by `notary gate install containerd` is run here with containerd's argv (`-name -digest
-stdin-media-type`) and an OCI descriptor on stdin: the cases a real pull cannot easily produce (a descriptor
that disagrees with -digest, a tampered ledger). tests/test_containerd_gate.py runs it inside a real
containerd 2.x.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from notary.sources.base import Subject
from tests.support.runtimes import GateWorld

DIGEST = "sha256:" + "e1" * 32
REVOKED = "sha256:" + "e2" * 32
MEDIA = "application/vnd.oci.descriptor.v1+json"


@pytest.fixture
def world(tmp_path: Path) -> GateWorld:
    w = GateWorld(tmp_path / "world")
    w.notarize(Subject(DIGEST, "registry.example/app:1", "oci-manifest"))
    w.notarize(Subject(REVOKED, "registry.example/app:2", "oci-manifest"))
    w.revoke(REVOKED, "CVE-2026-7777")
    return w


@pytest.fixture
def verifier(world: GateWorld, tmp_path: Path) -> Path:
    bin_dir = tmp_path / "image-verifier" / "bin"
    proc = subprocess.run([sys.executable, "-m", "notary.cli.main", "--config", str(world.config), "gate",
                           "install", "containerd", "--hooks-dir", str(bin_dir)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    path = bin_dir / "notary"
    assert os.access(path, os.X_OK)
    return path


def _descriptor(digest: str) -> str:
    return json.dumps({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 1234})


def _call(argv: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTARY_")}  # as containerd: no notary env
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_notarized_image_pull_is_allowed(verifier: Path, world: GateWorld) -> None:
    proc = _call([str(verifier), "-name", "registry.example/app:1", "-digest", DIGEST, "-stdin-media-type", MEDIA],
                 _descriptor(DIGEST))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("notary allowed registry.example/app:1")
    line = world.decisions()[-1]
    assert line["front_end"] == "containerd-verifier" and line["decision"] == "allow"


def test_revoked_image_pull_is_blocked_with_the_reason_on_stdout(verifier: Path) -> None:
    proc = _call([str(verifier), "-name", "registry.example/app:2", "-digest", REVOKED, "-stdin-media-type", MEDIA],
                 _descriptor(REVOKED))
    assert proc.returncode == 1
    assert "CVE-2026-7777" in proc.stdout


def test_unknown_image_pull_is_blocked(verifier: Path) -> None:
    other = "sha256:" + "e3" * 32
    proc = _call([str(verifier), "-name", "x", "-digest", other, "-stdin-media-type", MEDIA], _descriptor(other))
    assert proc.returncode == 1 and "not notarized" in proc.stdout


def test_descriptor_that_disagrees_with_the_digest_is_refused(verifier: Path, world: GateWorld) -> None:
    proc = _call([str(verifier), "-name", "x", "-digest", DIGEST, "-stdin-media-type", MEDIA], _descriptor(REVOKED))
    assert proc.returncode == 2 and "differs" in proc.stdout
    assert world.decisions()[-1]["decision"] == "refuse"


def test_tampered_ledger_blocks_the_pull_with_exit_3(verifier: Path, world: GateWorld) -> None:
    world.tamper()
    proc = _call([str(verifier), "-name", "x", "-digest", DIGEST, "-stdin-media-type", MEDIA], _descriptor(DIGEST))
    assert proc.returncode == 3 and "integrity" in proc.stdout


def test_cli_subcommand_takes_containerds_arguments(world: GateWorld) -> None:
    proc = _call([sys.executable, "-m", "notary.cli.main", "--config", str(world.config), "gate",
                  "containerd-verifier", "-name", "registry.example/app:1", "-digest", DIGEST,
                  "-stdin-media-type", MEDIA], _descriptor(DIGEST))
    assert proc.returncode == 0, proc.stdout + proc.stderr
