"""Real CI runners for the template tests, and what their jobs install: the project's own wheel, by hash.

- `runner_bin(NAME)`: the pinned runner or validator (act, gitlab-ci-local, tekton-validate, npm-groovy-lint)
  that its script under scripts/ provides (`make test` builds them first, `make ci-runners`). The scripts are asked with
  NOTARY_NO_BUILD=1, so a test never starts a build; a missing runner skips locally and fails in CI
  (tests.support.integration).
- `notary_wheel` (session): the wheel scripts/dist.sh builds from this work tree, with its sha256, exactly as a
  release step would publish it.
- `wheelhouse` (session): that wheel's dependencies as wheels, so each job's `pip install` of the wheel (by
  hash) runs offline and fast (PIP_NO_INDEX + PIP_FIND_LINKS in `job_pip_env`).
- `new_key_pair(dir, name)`: a real key pair from `notary key generate`, PEM texts for CI variables.
- `auditor(tmp_path, ledger)`: a client of a job's ledger with trust of its own, as a later audit would be.

The fixtures are registered suite-wide (tests/conftest.py), so the template tests only name them.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import Notary
from tests.support.components import script_dir
from tests.support.integration import missing

REPO = Path(__file__).resolve().parents[2]
# tool -> (script and its arguments, executable in the directory the script prints)
RUNNERS: dict[str, tuple[tuple[str, ...], str]] = {
    "act": (("act-build.sh",), "act"),
    "gitlab-ci-local": (("gitlab-ci-local-install.sh",), "gitlab-ci-local"),
    "tekton-validate": (("tekton-validate-build.sh",), "tekton-validate"),
    "c2sp-peer": (("c2sp-peer-build.sh",), "c2sp-peer"),  # with litewitness and witnessctl beside it
    "npm-groovy-lint": (("npm-tool-install.sh", "npm-groovy-lint"), "npm-groovy-lint"),
}
_found: dict[str, Path] = {}


def runner_bin(name: str) -> Path:
    """Path of the pinned runner executable, or skip/fail (CI) saying how to get it."""
    if name not in _found:
        (script, *args), exe = RUNNERS[name]
        _found[name] = script_dir(name, script, *args, need=(exe,), timeout=900) / exe
    return _found[name]


@dataclass(frozen=True)
class Wheel:
    path: Path
    sha256: str

    @property
    def url(self) -> str:
        return self.path.as_uri()


@pytest.fixture(scope="session")
def notary_wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    """The wheel `make dist` builds (scripts/dist.sh), built once per session from this work tree."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([str(REPO / "scripts" / "dist.sh"), str(out)], capture_output=True, text=True,
                          timeout=600, check=False)
    if proc.returncode != 0:
        pytest.fail(f"scripts/dist.sh failed: {proc.stderr[-2000:]}", pytrace=False)
    path_line, sha_line = proc.stdout.strip().splitlines()[-3:-1]
    wheel = Wheel(Path(path_line), sha_line)
    assert hashlib.sha256(wheel.path.read_bytes()).hexdigest() == wheel.sha256, "dist.sh printed a wrong hash"
    return wheel


@pytest.fixture(scope="session")
def wheelhouse(notary_wheel: Wheel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Binary wheels of everything `notary-ledger[immudb]` needs, fetched once (pip's cache makes reruns local)."""
    house = tmp_path_factory.mktemp("wheelhouse")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
         "--dest", str(house), f"notary-ledger[immudb] @ {notary_wheel.url}"],
        capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        missing("python package index", f"pip download of the wheel's dependencies failed: {proc.stderr[-500:]}")
    for wheel in house.glob("notary_ledger-*.whl"):
        wheel.unlink()  # the job must install the wheel it is given by URL and hash, never one found here
    return house


def job_pip_env(house: Path) -> dict[str, str]:
    """Environment for a CI job's pip: dependencies from the wheelhouse only, no index."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(house), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path

    @property
    def private_pem(self) -> str:
        return self.private.read_text()

    @property
    def public_pem(self) -> str:
        return self.public.read_text()


def new_key_pair(directory: Path, name: str) -> KeyPair:
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / f"{name}.key"
    subprocess.run([sys.executable, "-m", "notary.cli.main", "key", "generate", "--out", str(private)],
                   check=True, capture_output=True, timeout=60)
    return KeyPair(private, Path(f"{private}.pub"))


def auditor(tmp_path: Path, ledger: Path | str) -> Notary:
    """A client of the job's ledger (a file or a URL) with trust of its own, as a later audit would be."""
    (tmp_path / "auditor").mkdir(exist_ok=True)
    return Notary(tmp_path / "auditor", ledger_url=ledger if isinstance(ledger, str) else ledger.as_uri())


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """A runner's environment: PATH and locale from here, HOME private to the test, no NOTARY_* or CI
    variables leaking in from the machine (the runner sets the CI ones itself)."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "GOCACHE", "GOPATH")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    home.mkdir(parents=True, exist_ok=True)
    env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
                "XDG_STATE_HOME": str(home / ".state"), "XDG_DATA_HOME": str(home / ".data")})
    env.update(extra)
    return env


def git_repo(path: Path, remote: str | None = None) -> Path:
    """Make path a git repository with one commit (runners read the commit sha and the remote)."""
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True, timeout=60)

    git("init", "-q", "-b", "main")
    git("config", "user.email", "ci@example.invalid")
    git("config", "user.name", "ci")
    if remote:
        git("remote", "add", "origin", remote)
    git("add", "-A")
    git("commit", "-q", "-m", "build")
    return path
