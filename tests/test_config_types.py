"""notary.toml types are strict: a wrong type is one usage error naming the setting and the file, never a value
coerced into something else (`state_dir = 5` becoming "./5", `insecure = "false"` becoming true)."""

from __future__ import annotations

from pathlib import Path

import pytest

from notary import keys
from notary.config import load_config
from notary.errors import UsageError
from notary.gate.policy import load_policy

TRUST = '[[policy.trust]]\nimages = ["*"]\nkeys = ["ci.pub"]\n'
GLASS = '[[policy.break_glass]]\ndigest = "sha256:' + "ab" * 32 + '"\nreason = "INC-1"\n'


def _write(tmp_path: Path, body: str) -> Path:
    keys.write_key_pair(tmp_path / "ci", keys.generate_private_key())  # ci and ci.pub
    path = tmp_path / "notary.toml"
    path.write_text(body)
    return path


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("state_dir = 5\n", "state_dir must be a non-empty string"),
        ('state_dir = ""\n', "state_dir must be a non-empty string"),
        ("state_dir = true\n", "state_dir must be a non-empty string"),
        ("ledger = 5\n", "ledger must be a non-empty string"),
        ('ledger = "  "\n', "ledger must be a non-empty string"),
        ("gate = 1\n", "[gate] must be a table"),
        ("[gate]\nsocket = 1\n", "unknown setting(s) socket in [gate]"),
        ("signing = \"ci\"\n", "[signing] must be a table"),
        ("[signing]\nkey = 5\n", "signing.key must be a non-empty string"),
        ("[signing]\nkye = \"ci\"\n", "unknown setting(s) kye in [signing]"),
        ('[registry]\ninsecure = "false"\n', "registry.insecure must be true or false"),
        ("[registry]\ninsecure = 0\n", "registry.insecure must be true or false"),
        ("[registry]\nauth_file = [\"a\"]\n", "registry.auth_file must be a non-empty string"),
        ("[docker]\nhost = 2375\n", "docker.host must be a non-empty string"),
        ('policy = "strict"\n', "policy must be a table"),
    ],
)
def test_a_setting_of_the_wrong_type_is_a_usage_error_naming_it(tmp_path: Path, body: str, needle: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(UsageError) as info:
        load_config(str(path))
    assert needle in info.value.one_line() and str(path) in info.value.one_line()
    assert not (tmp_path / "5").exists()


def test_well_typed_settings_load(tmp_path: Path) -> None:
    body = ('ledger = "ledger.db"\nstate_dir = "state"\n[signing]\nkey = "ci"\n[registry]\ninsecure = true\n'
            'auth_file = "auth.json"\n[docker]\nhost = "unix:///run/docker.sock"\n[gate]\n')
    config = load_config(str(_write(tmp_path, body)))
    assert config.state_dir == str(tmp_path / "state")
    assert config.section("registry")["insecure"] is True


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        ("fail = 1", 'fail must be "closed" or "open"'),
        ("fail = true", 'fail must be "closed" or "open"'),
        ("max_age = 30", "max_age must be a string"),
        ('max_age = "30"', "not a duration"),
        ('max_age = "0d"', "max_age cannot be zero"),
        ('max_age = "-1d"', "not a duration"),
        ('max_age = "99999999999999999999999d"', "longer than 100 years"),
        ('max_age = "36526d"', "longer than 100 years"),
        ('check_revocation = "yes"', "check_revocation must be true or false"),
        ("check_revocation = 1", "check_revocation must be true or false"),
        ("decision_log = 5", "decision_log must be a file path"),
        ('decision_log = ""', "decision_log must be a file path"),
        ("trust = 5", "trust must be an array of tables"),
        ("break_glass = [1]", "break_glass must be an array of tables"),
    ],
)
def test_a_policy_field_of_the_wrong_type_is_a_usage_error(tmp_path: Path, setting: str, needle: str) -> None:
    path = _write(tmp_path, f"[policy]\n{setting}\n" + ("" if setting.startswith("trust") else TRUST))
    with pytest.raises(UsageError) as info:
        load_policy(load_config(str(path)))
    assert needle in info.value.one_line() and str(path) in info.value.one_line()


@pytest.mark.parametrize(
    ("rule", "needle"),
    [
        ('[[policy.trust]]\nimages = 5\nkeys = ["ci.pub"]\n', "images must be a non-empty list of strings"),
        ('[[policy.trust]]\nimages = []\nkeys = ["ci.pub"]\n', "images must be a non-empty list of strings"),
        ('[[policy.trust]]\nimages = ["*"]\nkeys = [1]\n', "keys[0] must be a key path or a"),
        ('[[policy.trust]]\nimages = ["*"]\nkeys = ["/dev/zero"]\n', "character device"),
        (TRUST + GLASS + "images = []\n", "images must be a non-empty list of strings"),
        (TRUST + GLASS + "expires = 5\n", "expires must be an RFC 3339 time"),
        (TRUST + GLASS.replace('"INC-1"', "5"), "a reason is required"),
        (TRUST + GLASS.replace('"sha256:', "5 #"), "not a sha256 digest"),
    ],
)
def test_a_trust_or_break_glass_entry_of_the_wrong_type_is_a_usage_error(tmp_path: Path, rule: str,
                                                                           needle: str) -> None:
    path = _write(tmp_path, "[policy]\n" + rule)
    with pytest.raises(UsageError) as info:
        load_policy(load_config(str(path)))
    assert needle in info.value.one_line() and str(path) in info.value.one_line()


@pytest.mark.parametrize("toml", ["a = " + "[" * 100_000 + "]" * 100_000, "a = " + "7" * 5000, "\udcff = 1"])
def test_hostile_toml_is_one_usage_error(tmp_path: Path, toml: str) -> None:
    path = tmp_path / "notary.toml"
    path.write_bytes(toml.encode("utf-8", "surrogateescape"))
    with pytest.raises(UsageError, match="not valid TOML|not UTF-8"):
        load_config(str(path))
