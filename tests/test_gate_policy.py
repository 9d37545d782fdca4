"""The gate's policy file: strict validation, first-match trust rules, break-glass scope and expiry."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from notary import keys
from notary.config import load_config
from notary.errors import UsageError
from notary.gate.policy import load_policy, normalize_name, parse_duration

DIGEST = "sha256:" + "ab" * 32


def _keypair(path: Path) -> keys.PublicKey:
    key = keys.generate_private_key()
    keys.write_key_pair(path, key)
    return key.public_key()


def _config(tmp_path: Path, body: str) -> Path:
    (tmp_path / "keys").mkdir(exist_ok=True)
    for name in ("prod", "ci"):
        if not (tmp_path / "keys" / f"{name}.key").exists():
            _keypair(tmp_path / "keys" / f"{name}.key")
    path = tmp_path / "notary.toml"
    path.write_text(body)
    return path


GOOD = """
[policy]
fail = "closed"
max_age = "30d"
decision_log = "log/decisions.jsonl"

[[policy.trust]]
images = ["registry.example/prod/*"]
keys = ["keys/prod.key.pub"]

[[policy.trust]]
images = ["*"]
keys = ["keys/ci.key.pub", "keys/prod.key.pub"]

[[policy.break_glass]]
digest = "DIGEST"
reason = "INC-42: hotfix approved by on-call"
expires = "2099-01-01T00:00:00Z"
""".replace("DIGEST", DIGEST)


def test_a_valid_policy_loads_with_paths_relative_to_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _config(tmp_path, GOOD)
    monkeypatch.chdir("/")
    policy = load_policy(load_config(str(path)))
    assert not policy.fail_open
    assert policy.max_age == timedelta(days=30)
    assert policy.decision_log == str(tmp_path / "log" / "decisions.jsonl")
    prod = keys.key_id(keys.load_public_key(tmp_path / "keys" / "prod.key.pub"))
    ci = keys.key_id(keys.load_public_key(tmp_path / "keys" / "ci.key.pub"))
    assert [k.key_id for k in policy.keys_for("registry.example/prod/api:1.0")] == [prod]
    assert sorted(k.key_id for k in policy.keys_for("busybox")) == sorted([ci, prod])
    assert policy.describe()["check_revocation"] is True


def test_first_matching_rule_wins_so_a_catch_all_key_cannot_sign_prod_images(tmp_path: Path) -> None:
    policy = load_policy(load_config(str(_config(tmp_path, GOOD))))
    ci = keys.key_id(keys.load_public_key(tmp_path / "keys" / "ci.key.pub"))
    assert ci not in {k.key_id for k in policy.keys_for("registry://registry.example/prod/api@" + DIGEST)}


def test_an_unnamed_image_only_matches_a_catch_all_rule(tmp_path: Path) -> None:
    body = GOOD.replace('images = ["*"]', 'images = ["docker.io/*"]')
    policy = load_policy(load_config(str(_config(tmp_path, body))))
    assert policy.rule_for(None) is None
    assert policy.rule_for("busybox") is not None


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("busybox", "docker.io/library/busybox"),
        ("busybox:1.36", "docker.io/library/busybox"),
        ("team/app@" + DIGEST, "docker.io/team/app"),
        ("127.0.0.1:5000/repo/x:tag", "127.0.0.1:5000/repo/x"),
        ("localhost/tmp/gx/lay:latest", "localhost/tmp/gx/lay"),
        ("registry://Registry.Example/a/b:1", "registry.example/a/b"),
    ],
)
def test_image_names_are_normalized_like_a_runtime_does(ref: str, name: str) -> None:
    assert normalize_name(ref) == name


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (GOOD.replace('fail = "closed"', 'fail = "sometimes"'), "fail must be"),
        (GOOD.replace('fail = "closed"', "check_revocation = false"), "cannot be turned off"),
        (GOOD.replace('fail = "closed"', 'fial = "open"'), "unknown setting"),
        (GOOD.replace('max_age = "30d"', 'max_age = "a month"'), "not a duration"),
        (GOOD.replace('"registry.example/prod/*"', '"registry.example/prod/app:1.0"'), "tag or digest"),
        (GOOD.replace('"registry.example/prod/*"', '"Registry Example/*"'), "bad image glob"),
        (GOOD.replace('"registry.example/prod/*"', '"registry.example/prod/*\\n"'), "bad image glob"),
        (GOOD.replace(DIGEST, DIGEST + "\\n"), "not a sha256 digest"),
        (GOOD.replace("keys/prod.key.pub", "keys/missing.pub"), "does not exist"),
        (GOOD.replace("keys/ci.key.pub", "keys/ci.key"), "private key"),
        (GOOD.replace('reason = "INC-42: hotfix approved by on-call"', ""), "reason is required"),
        (GOOD.replace('expires = "2099-01-01T00:00:00Z"', 'expires = "tomorrow"'), "RFC 3339"),
        (GOOD.replace(DIGEST, "sha256:1234"), "not a sha256 digest"),
        ("[policy]\nfail = \"closed\"\n", "no [[policy.trust]] rules"),
    ],
)
def test_a_bad_policy_is_a_usage_error_naming_the_problem(tmp_path: Path, body: str, needle: str) -> None:
    with pytest.raises(UsageError) as info:
        load_policy(load_config(str(_config(tmp_path, body))))
    assert needle in info.value.one_line()
    assert info.value.exit_code == 2


def test_a_config_without_policy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notary.toml"
    path.write_text('ledger = "ledger.db"\n')
    with pytest.raises(UsageError, match="no \\[policy\\]"):
        load_policy(load_config(str(path)))


def test_break_glass_applies_only_to_its_digest_until_it_expires(tmp_path: Path) -> None:
    body = GOOD.replace('expires = "2099-01-01T00:00:00Z"', 'expires = 2030-01-01T00:00:00Z\nimages = ["docker.io/*"]')
    policy = load_policy(load_config(str(_config(tmp_path, body))))
    before = datetime(2029, 12, 31, tzinfo=timezone.utc)
    after = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert policy.break_glass_for([DIGEST], "busybox", before) is not None
    assert policy.break_glass_for([DIGEST], "busybox", after) is None
    assert policy.break_glass_for(["sha256:" + "cd" * 32], "busybox", before) is None
    assert policy.break_glass_for([DIGEST], "registry.example/prod/api", before) is None


def test_durations() -> None:
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(weeks=2)
    with pytest.raises(UsageError):
        parse_duration("0d")


def test_the_documented_example_policy_loads(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "docs" / "policy-example.toml"
    (tmp_path / "keys").mkdir()
    for name in ("release", "ci"):
        _keypair(tmp_path / "keys" / name)  # writes keys/NAME and keys/NAME.pub
    target = tmp_path / "notary.toml"
    target.write_text(example.read_text())
    policy = load_policy(load_config(str(target)))
    assert [r.images for r in policy.trust][0] == ("registry.example/prod/*",)
    assert policy.rule_for("busybox") is not None and policy.rule_for("quay.io/x/y") is None
    assert policy.break_glass and policy.break_glass[0].images == ("registry.example/prod/payments",)


def test_every_policy_setting_is_documented_wherever_policy_is_documented() -> None:
    """An operator reading docs/gate.md or the "full commented example" must meet every setting the gate
    reads, with its default (require_name_match was missing from both, issue 23)."""
    from notary.gate.policy import POLICY_KEYS

    docs = Path(__file__).resolve().parent.parent / "docs"
    gate_md = (docs / "gate.md").read_text()
    example = (docs / "policy-example.toml").read_text()
    for setting in sorted(POLICY_KEYS):
        assert f"`{setting}" in gate_md or f"policy.{setting}" in gate_md, f"docs/gate.md lacks {setting}"
        assert f"{setting} =" in example or f"[[policy.{setting}]]" in example or f"[policy.{setting}]" in example, \
            f"policy-example.toml lacks {setting}"
    assert "`require_name_match = true` (the default)" in gate_md
    assert "--name" in example and "default: true" in example
