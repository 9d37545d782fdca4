"""Suite-wide fixtures. Area-specific fixtures live in tests/support/<area>.py, registered as plugins below."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# fixture modules (the CI templates' wheel, dockerd, OCI images, immudb, both ledger backends, registries, a gate
# world) available to every test
pytest_plugins = [
    "tests.support.ci_runners",
    "tests.support.dockerd",
    "tests.support.images",
    "tests.support.immudb",
    "tests.support.ledgers",
    "tests.support.registry",
    "tests.support.runtimes",
]


@pytest.fixture(autouse=True)
def _isolated_notary_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own state/data/config dirs, so no test trusts another test's ledger."""
    for name in list(os.environ):
        if name.startswith("NOTARY_") and name != "NOTARY_REQUIRE_INTEGRATION" and not name.startswith(
            "NOTARY_TEST_"
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NOTARY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdgstate"))
    # registry logins are discovered like docker and podman do: no test may borrow the developer's
    # (an empty config, not a missing one: podman refuses a DOCKER_CONFIG without config.json)
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    (docker_config / "config.json").write_text("{}\n")
    monkeypatch.setenv("DOCKER_CONFIG", str(docker_config))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
