"""A ledger is created on purpose: a mistyped --ledger path must not silently take the records.

Only the default location is created by a first `notarize`; any ledger the user named needs `notary ledger
init` or `notarize --create`. Every other command (revoke, verify, the gate) never creates one.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import Notary


def _user(tmp_path: Path) -> Notary:
    return Notary(tmp_path, auto_create=False)


def test_mistyped_ledger_path_is_exit_4_and_creates_nothing(tmp_path: Path) -> None:
    user = _user(tmp_path)
    key = user.key()
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"release\n")
    typo = tmp_path / "ledgr" / "ledger.db"
    result = user.run("--ledger", typo.as_uri(), "notarize", str(artifact), "--job-id", "1", "--key", str(key),
                      expect=4)
    assert "no ledger at" in result.err and "notary ledger init" in result.err, result.err
    assert len(result.err.strip().splitlines()) <= 2 and "Traceback" not in result.err
    assert not typo.exists() and not typo.parent.exists()
    result = user.run("notarize", str(artifact), "--job-id", "1", "--key", str(key), expect=4)  # NOTARY_LEDGER too
    assert not user.ledger_path.exists()


def test_notarize_create_makes_the_named_ledger(tmp_path: Path) -> None:
    user = _user(tmp_path)
    key = user.key()
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"release\n")
    result = user.run("notarize", "--create", str(artifact), "--job-id", "1", "--key", str(key))
    assert "created new ledger" in result.err and user.ledger_path.is_file()
    again = user.run("notarize", str(artifact), "--job-id", "2", "--key", str(key))
    assert "created" not in again.err


def test_ledger_init_creates_once_and_is_idempotent(tmp_path: Path) -> None:
    user = _user(tmp_path)
    first = user.run("--json", "ledger", "init").json
    assert first["created"] is True and first["schema"] == "notary.ledger-init/v1"
    assert first["ledger_id"].startswith("file:sha256:") and user.ledger_path.is_file()
    second = user.run("ledger", "init")
    assert second.out.startswith("already exists:") and first["ledger_id"] in second.out
    key = user.key()
    user.notarize_file(key, b"after init\n")  # auto_create is off: the ledger init made is used


def test_default_location_is_created_by_the_first_notarize(tmp_path: Path) -> None:
    user = _user(tmp_path)
    key = user.key()
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"zero setup\n")
    env = {"NOTARY_LEDGER": "", "XDG_DATA_HOME": str(tmp_path / "data")}
    user.env.pop("NOTARY_LEDGER")
    user.run("notarize", str(artifact), "--job-id", "1", "--key", str(key), env={"XDG_DATA_HOME": env["XDG_DATA_HOME"]})
    assert (tmp_path / "data" / "notary" / "ledger.db").is_file()


def test_revoke_never_creates_a_ledger(tmp_path: Path) -> None:
    user = _user(tmp_path)
    key = user.key()
    result = user.run("revoke", "sha256:" + "ab" * 32, "--reason", "bad", "--key", str(key), expect=4)
    assert "no ledger at" in result.err and not user.ledger_path.exists()


def test_read_commands_and_the_gate_never_create_a_ledger(tmp_path: Path) -> None:
    user = _user(tmp_path)
    key = user.key()
    digest = "sha256:" + "cd" * 32
    config = tmp_path / "notary.toml"
    config.write_text(f'state_dir = "{tmp_path / "gate-state"}"\n[policy]\n[[policy.trust]]\nimages = ["*"]\n'
                      f'keys = ["{key}.pub"]\n')
    for args in (("verify", digest, "--key", f"{key}.pub"), ("history", digest), ("ledger", "info"),
                 ("--config", str(config), "gate", "check", digest)):
        result = user.run(*args, expect=None)
        assert result.code in (1, 4), (args, result.code, result.err)
        assert not user.ledger_path.exists(), args


def test_ledger_init_on_immudb_is_a_usage_error(tmp_path: Path) -> None:
    user = _user(tmp_path)
    result = user.run("--ledger", "immudb://immudb@127.0.0.1:1/defaultdb", "ledger", "init", expect=2)
    assert "immudb" in result.err


def test_image_notarized_without_a_name_warns_before_a_gate_refuses_it(busybox_layout: Path, tmp_path: Path) -> None:
    """The tour's first step used to bind no name, and the gate then refused the image under every name."""
    user = Notary(tmp_path)
    key = user.key()
    unnamed = user.run("notarize", f"oci:{busybox_layout}:v1", "--job-id", "1", "--key", str(key))
    assert "carries no image name" in unnamed.err and "--name" in unnamed.err, unnamed.err
    named = user.run("--json", "notarize", f"oci:{busybox_layout}:v1", "--name", "registry.example/app",
                     "--job-id", "2", "--key", str(key))
    assert "carries no image name" not in named.err
    assert named.json["records"][0]["subject"]["names"] == ["registry.example/app"]
    files = user.run("notarize", str(key) + ".pub", "--job-id", "3", "--key", str(key))
    assert "carries no image name" not in files.err, "files and directories are not gated by name"
