"""`make dist` (scripts/dist.sh): the wheel CI installs by hash is the project's own, named notary-ledger, and
rebuilding the same tree gives the same bytes, so anyone can check a published hash."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

from tests.support.ci_runners import REPO, Wheel


def _metadata(wheel: Path) -> tuple[str, str]:
    with zipfile.ZipFile(wheel) as zf:
        info = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        entry_points = next(n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt"))
        return zf.read(info).decode(), zf.read(entry_points).decode()


def test_wheel_is_named_notary_ledger_and_installs_the_notary_command(notary_wheel: Wheel) -> None:
    metadata, entry_points = _metadata(notary_wheel.path)
    assert "\nName: notary-ledger\n" in metadata, "`notary` on the public index is another project"
    assert "notary = notary.cli.main:main" in entry_points
    assert notary_wheel.path.name.startswith("notary_ledger-")
    with zipfile.ZipFile(notary_wheel.path) as zf:
        assert not [n for n in zf.namelist() if n.startswith("tests/")], "the test suite is not shipped"


def test_dist_prints_the_hash_and_the_pinned_pip_line(notary_wheel: Wheel) -> None:
    recorded = (notary_wheel.path.parent / f"{notary_wheel.path.name}.sha256").read_text().split()
    assert recorded == [notary_wheel.sha256, notary_wheel.path.name]


def test_rebuilding_the_same_tree_gives_the_same_bytes(notary_wheel: Wheel, tmp_path: Path) -> None:
    proc = subprocess.run([str(REPO / "scripts" / "dist.sh"), str(tmp_path)], capture_output=True, text=True,
                          timeout=600, check=True)
    path, sha, pip_line = proc.stdout.strip().splitlines()[-3:]
    assert Path(path).name == notary_wheel.path.name
    assert sha == notary_wheel.sha256, "the build is not reproducible (or the tree changed during the test)"
    assert pip_line.startswith("notary-ledger[immudb] @ ") and pip_line.endswith(f"#sha256={sha}")
