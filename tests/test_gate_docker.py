"""A real dockerd with `--authorization-plugin` pointing at `notary gate docker-authz`.

`docker run` of a notarized image (loaded with `docker load`, or pulled from the loopback registry) runs; the
refused cases fail with notary's reason and their command never runs. Raw Engine API requests over the
daemon's socket check that every spelling dockerd routes to a gated endpoint (percent-encoded paths,
version prefixes, absolute-form targets, case-variant body keys) is decided, never waved through. The
tampering test runs last: it ruins the module's ledger on purpose.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from notary.sources import resolve
from notary.sources.base import Subject
from tests.support.dockerd import DockerDaemon, start_dockerd
from tests.support.gate_servers import raw_http, raw_request
from tests.support.images import build_busybox_layout, layout_to_docker_archive
from tests.support.registry import registry  # noqa: F401 - fixture
from tests.support.runtimes import AuthzPlugin, GateWorld, image_subject


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> GateWorld:
    w = GateWorld(tmp_path_factory.mktemp("docker") / "world")
    w.ensure_ledger()
    return w


@contextlib.contextmanager
def _docker_gated_by(plugin: AuthzPlugin) -> Iterator[DockerDaemon]:
    """A private dockerd with plugin as its authorization plugin, and the plugin pointed back at it."""
    daemon = start_dockerd([f"--authorization-plugin={plugin.name}"])
    try:
        plugin.point_at(str(daemon))
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def gated(world: GateWorld) -> Iterator[tuple[DockerDaemon, AuthzPlugin]]:
    with AuthzPlugin(world) as plugin, _docker_gated_by(plugin) as daemon:
        yield daemon, plugin


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Docker archives of distinct busybox images (distinct markers, so distinct image ids)."""
    root = tmp_path_factory.mktemp("docker-images")
    out = {}
    for name in ("good", "unsigned", "revoked", "untrusted", "viaoci", "wrapped", "encoded"):
        layout = build_busybox_layout(root / name, tag="v1", marker=f"marker-{name}")
        out[name] = layout_to_docker_archive(layout, "v1", root / f"{name}.tar", name=f"notary.test/{name}:v1")
        out[name + "-layout"] = layout
    return out


def _load(daemon: DockerDaemon, archive: Path) -> None:
    daemon.load(archive)


def _notarize_archive(world: GateWorld, archive: Path, *, trusted: bool = True) -> Subject:
    [subject] = resolve(f"docker-archive:{archive}")
    world.notarize(subject, trusted=trusted)
    return subject


def _created_and_running(daemon: DockerDaemon, world: GateWorld, archive: Path, image: str) -> tuple[Subject, str, str]:
    """image notarized and loaded, and two containers of it: one created (never started), one running sleep 60."""
    subject = _notarize_archive(world, archive)
    _load(daemon, archive)
    created = daemon.docker("create", "--network", "none", image).stdout.strip()
    running = daemon.docker("run", "-d", "--network", "none", image, "/bin/sleep", "60").stdout.strip()
    return subject, created, running


def _run(daemon: DockerDaemon, image: str) -> tuple[int, str]:
    proc = daemon.docker("run", "--rm", "--network", "none", image, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_loaded_notarized_image_runs(gated: tuple[DockerDaemon, AuthzPlugin], world: GateWorld,
                                     images: dict[str, Path]) -> None:
    daemon, _ = gated
    subject = _notarize_archive(world, images["good"])
    _load(daemon, images["good"])
    assert daemon.image_id("notary.test/good:v1") in (subject.digest, subject.image_id)
    code, output = _run(daemon, "notary.test/good:v1")
    assert code == 0, output
    assert "marker-good" in output
    lines = world.decisions()[-2:]  # attaching to the created container runs nothing: only the start is checked
    assert [(x["front_end"], x["action"], x["decision"]) for x in lines] == [
        ("docker-authz", "create", "allow"), ("docker-authz", "start", "allow")]


def test_pulled_notarized_image_runs(gated: tuple[DockerDaemon, AuthzPlugin], world: GateWorld,
                                     registry: str, images: dict[str, Path]) -> None:  # noqa: F811
    daemon, _ = gated
    digest = registry.push(images["good-layout"], "v1", "gate/pulled:v1")  # type: ignore[attr-defined]
    world.notarize(Subject(digest, f"{registry}/gate/pulled:v1", "oci-manifest"))
    daemon.docker("pull", f"{registry}/gate/pulled:v1")
    code, output = _run(daemon, f"{registry}/gate/pulled:v1")
    assert code == 0, output
    assert "marker-good" in output
    assert digest in world.decisions()[-1]["digests"]


def test_loaded_image_notarized_by_manifest_digest_is_matched_by_its_image_id(
        gated: tuple[DockerDaemon, AuthzPlugin], world: GateWorld, images: dict[str, Path]) -> None:
    """`docker load` knows no manifest digest; the image id is the config the signed record names."""
    daemon, _ = gated
    subject = image_subject(images["viaoci-layout"], names=("notary.test/viaoci",))
    world.notarize(subject)
    _load(daemon, images["viaoci"])
    assert daemon.image_id("notary.test/viaoci:v1") == subject.image_id
    code, output = _run(daemon, "notary.test/viaoci:v1")
    assert code == 0, output
    assert world.decisions()[-1]["digest"] == subject.digest


def test_never_notarized_image_is_refused_with_notarys_reason(gated: tuple[DockerDaemon, AuthzPlugin],
                                                             images: dict[str, Path]) -> None:
    daemon, plugin = gated
    _load(daemon, images["unsigned"])
    code, output = _run(daemon, "notary.test/unsigned:v1")
    assert code != 0
    assert f"authorization denied by plugin {plugin.name}" in output
    assert "not notarized" in output and "marker-unsigned" not in output


def test_revoked_image_is_refused_and_an_existing_container_cannot_start(
        gated: tuple[DockerDaemon, AuthzPlugin], world: GateWorld, images: dict[str, Path]) -> None:
    daemon, _ = gated
    subject, created, running = _created_and_running(daemon, world, images["revoked"], "notary.test/revoked:v1")
    world.revoke(subject.digest, "CVE-2026-5555")
    exec_ = daemon.docker("exec", running, "/bin/echo", "exec-ran", check=False)
    assert exec_.returncode != 0 and "CVE-2026-5555" in exec_.stderr and "exec-ran" not in exec_.stdout
    assert world.decisions()[-1]["action"] == "exec"
    daemon.docker("rm", "--force", running, check=False)
    code, output = _run(daemon, "notary.test/revoked:v1")
    assert code != 0 and "CVE-2026-5555" in output and "marker-revoked" not in output
    start = daemon.docker("start", "--attach", created, check=False)
    assert start.returncode != 0 and "CVE-2026-5555" in start.stderr
    assert "marker-revoked" not in start.stdout
    assert world.decisions()[-1]["action"] == "start"
    assert daemon.docker("inspect", "--format", "{{.State.Status}}", created).stdout.strip() == "created"
    daemon.docker("rm", "--force", created, check=False)


def test_image_signed_by_an_untrusted_key_is_refused(gated: tuple[DockerDaemon, AuthzPlugin], world: GateWorld,
                                                     images: dict[str, Path]) -> None:
    daemon, _ = gated
    _notarize_archive(world, images["untrusted"], trusted=False)
    _load(daemon, images["untrusted"])
    code, output = _run(daemon, "notary.test/untrusted:v1")
    assert code != 0 and "not notarized by any trusted key" in output


def test_other_api_calls_are_not_gated(gated: tuple[DockerDaemon, AuthzPlugin]) -> None:
    daemon, _ = gated
    assert daemon.docker("images", check=False).returncode == 0
    assert daemon.docker("ps", "-a", check=False).returncode == 0


# ---------------------------------------------------------------- raw Engine API requests, as an attacker sends them


def _api(daemon: DockerDaemon, method: str, target: str, body: object = None, **kw: object) -> tuple[int, str]:
    data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    status, answer = raw_http(str(daemon), raw_request(method, target, data, **kw))  # type: ignore[arg-type]
    return status, answer.decode(errors="replace")


def _containers(daemon: DockerDaemon) -> set[str]:
    return set(daemon.docker("ps", "-aq", "--no-trunc").stdout.split())


@pytest.fixture(scope="module")
def loaded(gated: tuple[DockerDaemon, AuthzPlugin], world: GateWorld, images: dict[str, Path]) -> DockerDaemon:
    """The gated daemon holding notary.test/good:v1 (notarized) and notary.test/unsigned:v1 (never notarized)."""
    daemon, _ = gated
    _notarize_archive(world, images["good"])
    _load(daemon, images["good"])
    _load(daemon, images["unsigned"])
    return daemon


@pytest.mark.parametrize("target", [
    "/v1.41/containers%2Fcreate", "/containers/%63reate", "/v1.41/%63ontainers%2F%63reate", "/v1.41/containers/create",
    "/containers/create", "/v1.41.0/containers/create", "/v99/containers/create", "/v1.41/containers%2fcreate",
    "http://docker/v1.41/containers%2Fcreate", "/v1.41/containers/create?name=enc-attack",
])
def test_percent_encoded_create_is_refused(loaded: DockerDaemon, gated: tuple[DockerDaemon, AuthzPlugin],
                                           world: GateWorld, target: str) -> None:
    """dockerd routes the decoded path: every spelling of containers/create is decided, and refused here."""
    _, plugin = gated
    before, lines = _containers(loaded), len(world.decisions())
    status, answer = _api(loaded, "POST", target, {"Image": "notary.test/unsigned:v1", "Cmd": ["/bin/echo", "ran"]})
    assert status == 403, answer
    assert f"authorization denied by plugin {plugin.name}" in answer and "not notarized" in answer
    assert _containers(loaded) == before
    [line] = world.decisions()[lines:]
    assert (line["action"], line["allowed"], line["image"]) == ("create", False, "notary.test/unsigned:v1")


def test_percent_encoded_create_of_a_notarized_image_is_decided_and_runs(loaded: DockerDaemon,
                                                                        world: GateWorld) -> None:
    """The control for the test above: the encoded path really is a create to dockerd, and it is checked."""
    status, answer = _api(loaded, "POST", "/v1.41/containers%2Fcreate", {"Image": "notary.test/good:v1"})
    assert status == 201, answer
    line = world.decisions()[-1]
    assert (line["action"], line["allowed"]) == ("create", True)
    loaded.docker("rm", "--force", json.loads(answer)["Id"])


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"Image": "notary.test/good:v1", "image": "notary.test/unsigned:v1"}', "name the same field"),
    (b'{"image": "notary.test/unsigned:v1", "Image": "notary.test/good:v1"}', "name the same field"),
    (b'{"Image": "notary.test/good:v1", "IMAGE": "notary.test/unsigned:v1"}', "name the same field"),
    (b'{"Image": "notary.test/good:v1", "Image": "notary.test/unsigned:v1"}', "duplicate key 'Image'"),
    (b'{"Image": "notary.test/good:v1", "Labels": {"a": "1", "a": "2"}}', "duplicate key 'a'"),
    (b'{"iMaGe": "notary.test/unsigned:v1"}', "not notarized"),
    (b'{"Image": "notary.test/good:v1"} {"Image": "notary.test/unsigned:v1"}', "not a single UTF-8 JSON value"),
    (b'{"Image": null}', "names no image"),
])
def test_case_variant_image_key_is_refused(loaded: DockerDaemon, world: GateWorld, body: bytes,
                                           reason: str) -> None:
    """dockerd reads keys case-insensitively and keeps the last: an ambiguous body is refused, never guessed."""
    before, lines = _containers(loaded), len(world.decisions())
    status, answer = _api(loaded, "POST", "/v1.41/containers/create", body)
    assert status == 403 and reason in answer, answer
    assert _containers(loaded) == before
    [line] = world.decisions()[lines:]
    assert (line["action"], line["allowed"]) == ("create", False)


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"Image": "notary.test/good:v1", "Labels": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}", "nested"),
    (b'{"Image": "notary.test/good:v1", "Memory": ' + b"9" * 5000 + b"}", "integer of 5000 digits"),
], ids=["nested-100000-deep", "integer-of-5000-digits"])
def test_deeply_nested_or_huge_integer_create_body_is_refused(loaded: DockerDaemon, world: GateWorld, body: bytes,
                                                              reason: str) -> None:
    """A good image named in a body the plugin's parser would crash on (RecursionError, int conversion):
    refused with one line and logged, never a traceback that dockerd reads as an error (or an allow)."""
    before, lines = _containers(loaded), len(world.decisions())
    status, answer = _api(loaded, "POST", "/v1.41/containers/create", body)
    assert status == 403 and reason in answer, answer
    assert _containers(loaded) == before
    [line] = world.decisions()[lines:]
    assert (line["action"], line["allowed"], line["exit_code"]) == ("create", False, 2)


def test_create_body_the_plugin_cannot_read_is_refused(loaded: DockerDaemon, world: GateWorld) -> None:
    """dockerd forwards no body of 1 MiB or more: the plugin cannot tell the image, so no. A chunked body is
    forwarded (dockerd reads it up to 1 MiB), and decided like any other."""
    before = _containers(loaded)
    big = {"Image": "notary.test/good:v1", "Labels": {"pad": "x" * (1 << 20)}}
    status, answer = _api(loaded, "POST", "/v1.41/containers/create", big)
    assert status == 403 and "no request body" in answer, answer
    assert world.decisions()[-1]["action"] == "create"
    body = json.dumps({"Image": "notary.test/unsigned:v1"}).encode()
    request = (b"POST /v1.41/containers%2Fcreate HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n"
               b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    status, text = raw_http(str(loaded), request)
    assert status == 403 and b"not notarized" in text, text
    assert _containers(loaded) == before


def test_percent_encoded_start_exec_restart_of_a_revoked_image_are_refused(
        gated: tuple[DockerDaemon, AuthzPlugin], world: GateWorld, images: dict[str, Path]) -> None:
    """Every endpoint that runs a container's code again re-checks its image, however the path is spelled."""
    daemon, _ = gated
    subject, created, running = _created_and_running(daemon, world, images["encoded"], "notary.test/encoded:v1")
    assert daemon.docker("exec", running, "/bin/echo", "before").stdout.strip() == "before"
    assert [x["action"] for x in world.decisions()[-2:]] == ["exec", "exec-start"]
    status, answer = _api(daemon, "POST", f"/v1.41/containers/{running}/exec",
                          {"Cmd": ["/bin/sh", "-c", "echo ran > /tmp/exec-ran"], "AttachStdout": True})
    assert status == 201, answer
    exec_id = json.loads(answer)["Id"]
    world.revoke(subject.digest, "CVE-2026-7777")
    daemon.docker("pause", running)  # never gated: freezing, stopping and removing must always work
    attempts = [
        ("POST", f"/v1.41/containers/{created}%2Fstart", {}, "start"),
        ("POST", f"/containers/{created[:12]}%2Fstart", None, "start"),
        ("POST", f"/v1.41/containers/{created}%2Frestart", None, "restart"),
        ("POST", f"/v1.41/containers/{running}%2Funpause", None, "unpause"),
        ("POST", f"/v1.41/containers/{running}%2Fexec", {"Cmd": ["/bin/echo", "exec-ran"]}, "exec"),
        ("POST", f"/v1.41/exec/{exec_id}%2Fstart", {"Detach": True}, "exec-start"),
        ("POST", f"/v1.41/containers/{running}%2Fupdate", {"RestartPolicy": {"Name": "always"}}, "update"),
        ("POST", f"/v1.41/containers/{running}%2Fattach?stream=1&stdout=1", None, "attach"),
        ("GET", f"/v1.41/containers/{running}%2Fattach/ws?stream=1", None, "attach"),
    ]
    for method, target, body, action in attempts:
        lines = len(world.decisions())
        status, answer = _api(daemon, method, target, body)
        assert status == 403 and "CVE-2026-7777" in answer, (target, status, answer)
        [line] = world.decisions()[lines:]
        assert (line["action"], line["allowed"]) == (action, False), target
    state = daemon.docker("inspect", "--format", "{{.State.Status}} {{.HostConfig.RestartPolicy.Name}}", created,
                          running).stdout.split("\n")
    assert state[:2] == ["created no", "paused no"]
    status, answer = _api(daemon, "GET", f"/v1.41/exec/{exec_id}/json")
    assert status == 200 and json.loads(answer)["Running"] is False and json.loads(answer)["Pid"] == 0
    daemon.docker("rm", "--force", running, created)


def test_concurrent_creates_are_all_answered_with_few_workers(world: GateWorld, images: dict[str, Path]) -> None:
    """The plugin asks the Docker API while deciding, and dockerd asks the plugin about those calls: with 4
    workers only 3 gated calls are decided at once, the 4th worker answers the nested calls (no deadlock);
    gated calls beyond are refused as busy at once, with a reason and a log line."""
    _notarize_archive(world, images["good"])
    with AuthzPlugin(world, "--workers", "4", "--queue", "64") as plugin, _docker_gated_by(plugin) as daemon:
        _load(daemon, images["good"])
        lines = len(world.decisions())
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(lambda _: _api(daemon, "POST", "/v1.41/containers/create",
                                                   {"Image": "notary.test/good:v1"}), range(16)))
        created = [json.loads(answer)["Id"] for status, answer in results if status == 201]
        busy = [answer for status, answer in results if status == 403]
        assert len(created) + len(busy) == 16, results
        assert created and all("busy" in answer for answer in busy), results
        decided = world.decisions()[lines:]
        assert sum(x["allowed"] for x in decided) == len(created) and len(decided) == 16


# ---------------------------------------------------------------- the runtime wrapper (daemon.json "runtimes")


@pytest.fixture(scope="module")
def wrapped(world: GateWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerDaemon]:
    """A second dockerd whose default runtime is the wrapper `notary gate install docker` writes."""
    bin_dir = tmp_path_factory.mktemp("wrapper-bin")
    proc = subprocess.run([sys.executable, "-m", "notary.cli.main", "--config", str(world.config), "gate",
                           "install", "docker", "--hooks-dir", str(bin_dir)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    daemon = start_dockerd(["--add-runtime", f"notary={bin_dir / 'notary-runc'}", "--default-runtime", "notary"])
    try:
        yield daemon
    finally:
        daemon.stop()


def test_runtime_wrapper_runs_a_notarized_image(wrapped: DockerDaemon, world: GateWorld,
                                                images: dict[str, Path]) -> None:
    subject = image_subject(images["wrapped-layout"], names=("notary.test/wrapped",))
    world.notarize(subject)
    wrapped.load(images["wrapped"])
    proc = wrapped.docker("run", "--rm", "--network", "none", "notary.test/wrapped:v1", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "marker-wrapped" in proc.stdout
    line = world.decisions()[-1]
    assert line["front_end"] == "oci-hook" and line["identified_by"] == "docker"
    assert line["image"] == "notary.test/wrapped:v1" and line["digest"] == subject.digest


def test_runtime_wrapper_refuses_a_never_notarized_image(wrapped: DockerDaemon, images: dict[str, Path]) -> None:
    wrapped.load(images["unsigned"])
    proc = wrapped.docker("run", "--rm", "--network", "none", "notary.test/unsigned:v1", check=False)
    assert proc.returncode != 0
    assert "notary: refused" in proc.stderr and "not notarized" in proc.stderr
    assert "marker-unsigned" not in proc.stdout


def test_zz_tampered_ledger_refuses_even_the_notarized_image(gated: tuple[DockerDaemon, AuthzPlugin],
                                                            world: GateWorld) -> None:
    daemon, _ = gated
    world.tamper()
    code, output = _run(daemon, "notary.test/good:v1")
    assert code != 0 and "integrity failure" in output and "marker-good" not in output


