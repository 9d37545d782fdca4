"""Registry credentials as docker and podman find them: config files, credHelpers, credsStore, against the
real registries of tests/support/registry.py (htpasswd and token auth) and real helper executables on PATH.

Each test name says the attack or the fault. Every helper here is a program notary runs
(tests/support/cred_helpers.py); the machine's own ~/.docker, podman auth files and helpers are never seen.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from notary.errors import InputError, NotaryError, SourceUnavailableError, UsageError
from notary.sources import SourceOptions, identify, resolve
from notary.sources.registry_credentials import Credentials, load_credentials
from tests.support.cli import Notary
from tests.support.cred_helpers import HelperBin, isolate_credentials, write_config
from tests.support.registry import RegistryServer

LOCAL = SourceOptions(insecure=True)
SECRET = "s3cr3t-do-not-print-9f2c1e"


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HelperBin:
    return isolate_credentials(tmp_path, monkeypatch)


def _basic(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def _docker_config(tmp_path: Path, doc: dict[str, object]) -> Path:
    return write_config(tmp_path / "home" / ".docker" / "config.json", doc)


def _pushed(server: RegistryServer, layout: Path, repo: str) -> tuple[str, str]:
    """(manifest digest, registry:// spec) of busybox pushed to repo:v1."""
    return server.push(layout, "v1", f"{repo}:v1"), f"registry://{server}/{repo}:v1"


def _running(pid: int) -> bool:
    """A live process (a zombie waiting for a reaper other than notary does not count)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def _one_line_error(exc: NotaryError) -> str:
    text = exc.one_line()
    assert "\n" not in text and "Traceback" not in text
    return text


# ---------------------------------------------------------------- hostile configuration


@pytest.mark.parametrize("doc", [
    {"credsStore": "../../bin/sh"},
    {"credsStore": "/bin/sh"},
    {"credHelpers": {"127.0.0.1:1": "team/../../sh"}},
    {"credHelpers": {"other.example": "-rf"}},
    {"credsStore": "x" * 65},
    {"credsStore": "desk top"},
], ids=["dotdot", "absolute", "helper-slash", "leading-dash", "too-long", "space"])
def test_creds_store_path_traversal_is_refused(helpers: HelperBin, tmp_path: Path, doc: dict[str, object]) -> None:
    marker = tmp_path / "ran"
    helpers.script("sh", f"open({str(marker)!r}, 'w').write('ran')\n")
    config = _docker_config(tmp_path, doc)
    with pytest.raises(InputError, match="is refused: a helper is a bare name") as err:
        load_credentials("127.0.0.1:1", LOCAL)
    assert err.value.exit_code == 2 and str(config) in _one_line_error(err.value)
    assert not marker.exists()


def test_creds_store_path_traversal_is_one_line_exit_2_from_the_cli(helpers: HelperBin, tmp_path: Path) -> None:
    _docker_config(tmp_path, {"credsStore": "../../bin/sh"})
    notary = Notary(tmp_path)
    result = notary.run("notarize", "registry://127.0.0.1:1/app:1", "--insecure", "--job-id", "j",
                        "--key", str(notary.key()), expect=2)
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert "'../../bin/sh'" in result.err


def test_malformed_discovered_config_is_one_line_naming_the_file(helpers: HelperBin, tmp_path: Path) -> None:
    config = _docker_config(tmp_path, {})
    config.write_text('{"auths": ')
    with pytest.raises(InputError, match="malformed JSON") as err:
        load_credentials("127.0.0.1:1", LOCAL)
    assert str(config) in _one_line_error(err.value)
    config.write_text(json.dumps({"credHelpers": ["not", "a", "map"]}))
    with pytest.raises(InputError, match="malformed 'credHelpers'"):
        load_credentials("127.0.0.1:1", LOCAL)


def test_helper_in_current_directory_via_dot_in_path_is_not_run(helpers: HelperBin, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A `.` in PATH must not let a checked-out repository supply the helper (Go's exec.LookPath rule)."""
    marker = tmp_path / "ran"
    helpers.script("local", f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.chdir(helpers.dir)
    monkeypatch.setenv("PATH", ".")
    _docker_config(tmp_path, {"credsStore": "local"})
    with pytest.raises(SourceUnavailableError, match="is not installed"):
        load_credentials("127.0.0.1:1", LOCAL)
    assert not marker.exists()


# ---------------------------------------------------------------- hostile or broken helpers


def test_helper_that_hangs_is_stopped_at_timeout(helpers: HelperBin, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    helpers.script("hang", f"""
        import subprocess
        child = subprocess.Popen(["sleep", "600"])  # a grandchild holding the pipes open must die too
        open({str(pids)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
        time.sleep(600)
        """)
    _docker_config(tmp_path, {"credsStore": "hang"})
    started = time.monotonic()
    with pytest.raises(SourceUnavailableError, match=r"did not answer within 1\.5s; stopped it") as err:
        load_credentials("127.0.0.1:1", SourceOptions(insecure=True, timeout=1.5))
    assert time.monotonic() - started < 8
    assert err.value.exit_code == 4
    helper_pid, child_pid = (int(p) for p in pids.read_text().split())
    deadline = time.monotonic() + 5
    while (_running(helper_pid) or _running(child_pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(helper_pid) and not _running(child_pid)


def test_helper_flooding_stdout_is_bounded(helpers: HelperBin, tmp_path: Path) -> None:
    helpers.script("flood", """
        chunk = '{"Username": "' + "A" * 65536
        while True:
            sys.stdout.write(chunk)
            sys.stdout.flush()
        """)
    _docker_config(tmp_path, {"credsStore": "flood"})
    started = time.monotonic()
    with pytest.raises(InputError, match="printed over 65536 bytes; stopped it") as err:
        load_credentials("127.0.0.1:1", SourceOptions(insecure=True, timeout=60))
    assert time.monotonic() - started < 20  # stopped at the bound, not at the timeout
    assert "AAAA" not in _one_line_error(err.value)


def test_helper_flooding_stderr_is_quoted_as_one_short_line(helpers: HelperBin, tmp_path: Path) -> None:
    helpers.script("noisy", """
        sys.stderr.write("keychain locked: " + "E" * 5_000_000 + "\\nsecond line\\n")
        sys.exit(3)
        """)
    _docker_config(tmp_path, {"credsStore": "noisy"})
    with pytest.raises(SourceUnavailableError, match=r"failed for 127\.0\.0\.1:1 \(exit 3\): keychain locked") as err:
        load_credentials("127.0.0.1:1", LOCAL)
    text = _one_line_error(err.value)
    assert len(text) < 400 and "second line" not in text


def test_missing_helper_executable_is_one_line_exit_4(helpers: HelperBin, tmp_path: Path) -> None:
    config = _docker_config(tmp_path, {"credHelpers": {"127.0.0.1:1": "ecr-login"}})
    with pytest.raises(SourceUnavailableError, match="no docker-credential-ecr-login on PATH") as err:
        load_credentials("127.0.0.1:1", LOCAL)
    assert err.value.exit_code == 4 and str(config) in _one_line_error(err.value)


def test_helper_that_is_not_executable_is_one_line_exit_4(helpers: HelperBin, tmp_path: Path) -> None:
    broken = helpers.script("broken", "")
    broken.write_bytes(b"#!/nonexistent/interpreter\n")
    _docker_config(tmp_path, {"credsStore": "broken"})
    with pytest.raises(SourceUnavailableError, match="cannot run credential helper docker-credential-broken"):
        load_credentials("127.0.0.1:1", LOCAL)


def test_helper_printing_garbage_is_bad_input(helpers: HelperBin, tmp_path: Path) -> None:
    _docker_config(tmp_path, {"credsStore": "garbage"})
    helpers.script("garbage", 'print("[1, 2]")\n')
    with pytest.raises(InputError, match="expected a JSON object"):
        load_credentials("127.0.0.1:1", LOCAL)
    helpers.script("garbage", 'print(json.dumps({"Username": "u", "Secret": 7}))\n')
    with pytest.raises(InputError, match="Username and Secret must be strings"):
        load_credentials("127.0.0.1:1", LOCAL)


def test_helper_secret_never_appears_in_errors(helpers: HelperBin, tmp_path: Path, auth_registry: RegistryServer,
                                               busybox_layout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _digest, spec = _pushed(auth_registry, busybox_layout, "creds/secret")
    host = str(auth_registry)
    _docker_config(tmp_path, {"credHelpers": {host: "leaky"}})
    leaks = {
        "rejected": f'print(json.dumps({{"Username": "notary", "Secret": {SECRET!r}}}))\n',
        "answer then fail": f'print(json.dumps({{"Username": "u", "Secret": {SECRET!r}}})); sys.exit(1)\n',
        "truncated json": f'sys.stdout.write(\'{{"Username": "u", "Secret": "{SECRET}\')\n',
        "duplicate key": f'sys.stdout.write(\'{{"Secret": "{SECRET}", "Secret": "{SECRET}"}}\')\n',
    }
    for what, body in leaks.items():
        helpers.script("leaky", body)
        with pytest.raises(NotaryError) as err:
            resolve(spec, options=LOCAL)
        assert SECRET not in _one_line_error(err.value), what
        assert SECRET not in repr(err.value) and SECRET not in str(err.value.hint), what
    helpers.script("leaky", leaks["rejected"])
    creds = load_credentials(host, LOCAL, "creds/secret")
    assert creds.password == SECRET and SECRET not in repr(creds)
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    cli = Notary(tmp_path).run("notarize", spec, "--insecure", "--job-id", "j", "--key",
                               str(Notary(tmp_path).key()), expect=2)
    assert "rejected the credentials" in cli.err and SECRET not in cli.err + cli.out


def test_not_found_in_keychain_means_anonymous(helpers: HelperBin, tmp_path: Path, registry: RegistryServer,
                                               auth_registry: RegistryServer, busybox_layout: Path) -> None:
    helpers.store("desk", {"other.example": ("u", SECRET)})
    _docker_config(tmp_path, {"credsStore": "desk"})
    assert load_credentials(str(registry), LOCAL) == Credentials()
    pushed, spec = _pushed(registry, busybox_layout, "creds/anon")
    assert identify(spec, options=LOCAL)[0].digest == pushed
    _digest, private = _pushed(auth_registry, busybox_layout, "creds/anon")
    with pytest.raises(UsageError, match="requires a username and password"):
        identify(private, options=LOCAL)
    assert helpers.asked("desk") == [str(registry), str(registry), str(auth_registry)]


# ---------------------------------------------------------------- docker's precedence in one file


def test_cred_helpers_win_over_auths(helpers: HelperBin, tmp_path: Path, auth_registry: RegistryServer,
                                     busybox_layout: Path) -> None:
    pushed, spec = _pushed(auth_registry, busybox_layout, "creds/helpers")
    host, user, password = str(auth_registry), str(auth_registry.username), str(auth_registry.password)
    helpers.store("team", {host: (user, password)})
    helpers.store("desk", {host: ("notary", "wrong")})
    _docker_config(tmp_path, {"auths": {host: _basic(user, "wrong")}, "credHelpers": {host: "team"},
                              "credsStore": "desk"})
    assert resolve(spec, options=LOCAL)[0].digest == pushed
    assert helpers.asked("team") == [host] and helpers.asked("desk") == []


def test_auths_with_credentials_win_over_creds_store(helpers: HelperBin, tmp_path: Path,
                                                     auth_registry: RegistryServer, busybox_layout: Path) -> None:
    pushed, spec = _pushed(auth_registry, busybox_layout, "creds/auths")
    host, user, password = str(auth_registry), str(auth_registry.username), str(auth_registry.password)
    helpers.store("desk", {host: ("notary", "wrong")})
    _docker_config(tmp_path, {"auths": {host: _basic(user, password)}, "credsStore": "desk"})
    assert identify(spec, options=LOCAL)[0].digest == pushed
    assert helpers.asked("desk") == []


def test_creds_store_answers_for_an_empty_auths_entry_with_its_key(helpers: HelperBin, tmp_path: Path,
                                                                   auth_registry: RegistryServer,
                                                                   busybox_layout: Path) -> None:
    """docker login with a credsStore leaves `"auths": {"KEY": {}}`; the store is asked for KEY as written."""
    pushed, spec = _pushed(auth_registry, busybox_layout, "creds/store")
    host = str(auth_registry)
    key = f"https://{host}"
    helpers.store("desk", {key: (str(auth_registry.username), str(auth_registry.password))})
    _docker_config(tmp_path, {"auths": {key: {}}, "credsStore": "desk"})
    assert identify(spec, options=LOCAL)[0].digest == pushed
    assert helpers.asked("desk") == [key]


def test_cred_helper_credentials_pass_the_bearer_token_handshake(helpers: HelperBin, tmp_path: Path,
                                                                 token_registry: RegistryServer,
                                                                 busybox_layout: Path) -> None:
    pushed, spec = _pushed(token_registry, busybox_layout, "creds/tokened")
    host = str(token_registry)
    helpers.store("gcr", {host: (str(token_registry.username), str(token_registry.password))})
    _docker_config(tmp_path, {"credHelpers": {host: "gcr"}})
    assert resolve(spec, options=LOCAL)[0].digest == pushed
    assert token_registry.token_server is not None
    assert token_registry.token_server.issued[-1] == ["repository:creds/tokened:pull"]


def test_identity_token_is_refused_clearly_not_sent_as_a_password(helpers: HelperBin, tmp_path: Path,
                                                                  token_registry: RegistryServer,
                                                                  busybox_layout: Path) -> None:
    """`<token>` means Secret is an OAuth2 refresh token; notary does not do that exchange, so it says so
    instead of presenting the refresh token to the token service or the registry."""
    _digest, spec = _pushed(token_registry, busybox_layout, "creds/identity")
    host = str(token_registry)
    assert token_registry.token_server is not None
    before = len(token_registry.token_server.issued)
    docs: list[dict[str, object]] = [{"credHelpers": {host: "hub"}},
                                     {"auths": {host: {**_basic("notary", ""), "identitytoken": SECRET}}}]
    for doc in docs:
        helpers.store("hub", {host: ("<token>", SECRET)})
        _docker_config(tmp_path, doc)
        with pytest.raises(UsageError, match="identity token .OAuth2 refresh token., which notary cannot use") as err:
            identify(spec, options=LOCAL)
        assert err.value.exit_code == 2 and SECRET not in _one_line_error(err.value)
    assert len(token_registry.token_server.issued) == before


def test_docker_hub_names_ask_helpers_for_the_index_key(helpers: HelperBin, tmp_path: Path) -> None:
    hub = "https://index.docker.io/v1/"
    helpers.store("hub", {hub: ("hubuser", SECRET)})
    _docker_config(tmp_path, {"credHelpers": {hub: "hub"}})
    for name in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        creds = load_credentials(name, SourceOptions(), "library/busybox")
        assert (creds.username, creds.password) == ("hubuser", SECRET)
    _docker_config(tmp_path, {"credsStore": "hub"})
    assert load_credentials("docker.io", SourceOptions()).username == "hubuser"
    assert helpers.asked("hub") == [hub] * 4


def test_podman_namespaced_entry_is_chosen_for_its_repository_only(helpers: HelperBin, tmp_path: Path) -> None:
    write_config(tmp_path / "run" / "containers" / "auth.json", {"auths": {
        "quay.example": _basic("host-wide", "p0"), "quay.example/team": _basic("team", "p1"),
        "quay.example/team/app": _basic("app", "p2")}})
    assert load_credentials("quay.example", SourceOptions(), "team/app").username == "app"
    assert load_credentials("quay.example", SourceOptions(), "team/app/sub").username == "app"
    assert load_credentials("quay.example", SourceOptions(), "team/other").username == "team"
    assert load_credentials("quay.example", SourceOptions(), "teammate/x").username == "host-wide"


# ---------------------------------------------------------------- where the file is found


def test_registry_auth_file_env_is_read(helpers: HelperBin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        auth_registry: RegistryServer, busybox_layout: Path) -> None:
    pushed, spec = _pushed(auth_registry, busybox_layout, "creds/authfile")
    chosen = auth_registry.write_auth_file(tmp_path / "chosen.json")
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(chosen))
    assert identify(spec, options=LOCAL)[0].digest == pushed
    # podman: a REGISTRY_AUTH_FILE is the only file read, even when it has nothing for this registry
    write_config(chosen, {"auths": {}})
    auth_registry.write_auth_file(write_config(tmp_path / "run" / "containers" / "auth.json", {}))
    auth_registry.write_auth_file(_docker_config(tmp_path, {}))
    with pytest.raises(UsageError, match="requires a username and password"):
        identify(spec, options=LOCAL)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "absent.json"))  # absent: no credentials, as podman
    assert load_credentials(str(auth_registry), LOCAL) == Credentials()


def test_podman_auth_json_location(helpers: HelperBin, tmp_path: Path, auth_registry: RegistryServer,
                                   busybox_layout: Path) -> None:
    pushed, spec = _pushed(auth_registry, busybox_layout, "creds/podman")
    host, user, password = str(auth_registry), str(auth_registry.username), str(auth_registry.password)
    runtime = tmp_path / "run" / "containers" / "auth.json"
    config_home = tmp_path / "config" / "containers" / "auth.json"
    docker = tmp_path / "home" / ".docker" / "config.json"
    for path in (runtime, config_home, docker):  # each location alone is found
        write_config(path, {"auths": {host: _basic(user, password)}})
        assert identify(spec, options=LOCAL)[0].digest == pushed, path
        assert load_credentials(host, LOCAL).origin == str(path)
        path.unlink()
    # in that order: the first file holding credentials for the host wins...
    write_config(runtime, {"auths": {host: _basic(user, "wrong")}})
    write_config(config_home, {"auths": {host: _basic(user, password)}})
    write_config(docker, {"auths": {host: _basic(user, password)}})
    with pytest.raises(UsageError, match="rejected the credentials") as err:
        identify(spec, options=LOCAL)
    assert str(runtime) in _one_line_error(err.value)
    # ...and one without any for this host is passed over
    write_config(runtime, {"auths": {"other.example": _basic("x", "y")}})
    assert identify(spec, options=LOCAL)[0].digest == pushed
    assert load_credentials(host, LOCAL).origin == str(config_home)


def test_docker_config_env_moves_the_docker_file(helpers: HelperBin, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = write_config(tmp_path / "elsewhere" / "config.json", {"auths": {"r.example": _basic("moved", "p")}})
    _docker_config(tmp_path, {"auths": {"r.example": _basic("home", "p")}})
    assert load_credentials("r.example", SourceOptions()).username == "home"
    monkeypatch.setenv("DOCKER_CONFIG", str(elsewhere.parent))
    assert load_credentials("r.example", SourceOptions()).username == "moved"


def test_explicit_file_and_notary_env_win_over_discovered_files(helpers: HelperBin, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                auth_registry: RegistryServer,
                                                                busybox_layout: Path) -> None:
    pushed, spec = _pushed(auth_registry, busybox_layout, "creds/explicit")
    helpers.script("broken", 'sys.stderr.write("should never run\\n"); sys.exit(1)\n')
    _docker_config(tmp_path, {"credsStore": "broken"})
    monkeypatch.setenv("NOTARY_REGISTRY_USERNAME", str(auth_registry.username))
    monkeypatch.setenv("NOTARY_REGISTRY_PASSWORD", str(auth_registry.password))
    assert identify(spec, options=LOCAL)[0].digest == pushed
    monkeypatch.setenv("NOTARY_REGISTRY_PASSWORD", "wrong")
    flag = SourceOptions(insecure=True, registry_auth_file=str(auth_registry.write_auth_file(tmp_path / "a.json")))
    assert identify(spec, options=flag)[0].digest == pushed
    assert helpers.asked("broken") == []


# ---------------------------------------------------------------- end to end


def test_cli_notarizes_from_an_auth_registry_with_credentials_only_from_a_cred_helper(
        helpers: HelperBin, tmp_path: Path, auth_registry: RegistryServer, busybox_layout: Path) -> None:
    pushed, spec = _pushed(auth_registry, busybox_layout, "creds/e2e")
    host, password = str(auth_registry), str(auth_registry.password)
    helpers.store("ecr-login", {host: (str(auth_registry.username), password)})
    _docker_config(tmp_path, {"credHelpers": {host: "ecr-login"}})
    notary = Notary(tmp_path)
    key = notary.key()
    done = notary.run("--json", "notarize", spec, "--insecure", "--job-id", "e2e", "--key", str(key))
    assert done.json["records"][0]["subject"]["digest"] == pushed
    assert notary.run("verify", spec, "--insecure", "--key", f"{key}.pub").code == 0
    assert helpers.asked("ecr-login") == [host, host]
    assert password not in done.out + done.err
    assert password.encode() not in notary.ledger_path.read_bytes(), "no credential reaches the ledger"
