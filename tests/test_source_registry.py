"""Registry subjects against a real docker-registry on loopback: digests, auth, transport rules, tampering."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from notary.errors import DigestMismatchError, InputError, NotFoundError, SourceUnavailableError, UsageError
from notary.sources import SourceOptions, identify, resolve
from tests.support.images import manifest_of
from tests.support.registry import RegistryServer, free_port

LOCAL = SourceOptions(insecure=True)


def test_anonymous_pull_identity_is_the_pushed_manifest_digest(registry: RegistryServer,
                                                                busybox_layout: Path) -> None:
    pushed = registry.push(busybox_layout, "v1", "anon/busybox:v1")
    [subject] = resolve(f"registry://{registry}/anon/busybox:v1", options=LOCAL)
    assert subject.digest == pushed == manifest_of(busybox_layout, "v1")[0]
    assert subject.name == f"{registry}/anon/busybox:v1"
    assert [a.role for a in subject.artifacts] == ["manifest", "config", "layer"]
    assert identify(f"registry://{registry}/anon/busybox:v1", options=LOCAL)[0].digest == pushed
    by_digest = resolve(f"registry://{registry}/anon/busybox@{pushed}", options=LOCAL)
    assert by_digest[0].digest == pushed


def test_multiarch_tag_gives_index_and_platform_subjects(registry: RegistryServer,
                                                         multiarch_layout: Path) -> None:
    pushed = registry.push(multiarch_layout, "multi", "anon/multi:1")
    subjects = resolve(f"registry://{registry}/anon/multi:1", options=LOCAL)
    assert [s.kind for s in subjects] == ["oci-index", "oci-manifest", "oci-manifest"]
    assert subjects[0].digest == pushed
    assert {s.platform for s in subjects[1:]} == {"linux/amd64", "linux/arm64/v8"}


def test_digest_reference_is_identified_without_network() -> None:
    digest = "sha256:" + "5" * 64
    port = free_port()  # nothing listens here
    [subject] = identify(f"registry://127.0.0.1:{port}/app@{digest}", options=LOCAL)
    assert subject.digest == digest


def test_unknown_digest_reference_is_not_found(registry: RegistryServer, busybox_layout: Path) -> None:
    registry.push(busybox_layout, "v1", "anon/pinned:v1")
    other = "sha256:" + "7" * 64
    with pytest.raises(NotFoundError):
        resolve(f"registry://{registry}/anon/pinned@{other}", options=LOCAL)


def test_blob_corrupted_in_registry_storage_is_refused(registry: RegistryServer, busybox_layout: Path) -> None:
    registry.push(busybox_layout, "v1", "anon/corrupt:v1")
    _digest, manifest = manifest_of(busybox_layout, "v1")
    layer = manifest["layers"][0]["digest"][7:]
    data = registry.workdir / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256" / layer[:2] / layer / "data"
    original = data.read_bytes()
    try:
        data.write_bytes(original[:100] + bytes([original[100] ^ 1]) + original[101:])
        with pytest.raises(DigestMismatchError) as err:
            resolve(f"registry://{registry}/anon/corrupt:v1", options=LOCAL)
        assert err.value.exit_code == 3
    finally:
        data.write_bytes(original)


def test_basic_auth_with_auth_file_and_environment(auth_registry: RegistryServer, busybox_layout: Path,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pushed = auth_registry.push(busybox_layout, "v1", "private/busybox:v1")
    spec = f"registry://{auth_registry}/private/busybox:v1"
    with pytest.raises(UsageError, match="requires a username and password"):
        resolve(spec, options=LOCAL)
    auth_file = auth_registry.write_auth_file(tmp_path / "config.json")
    with_file = SourceOptions(insecure=True, registry_auth_file=str(auth_file))
    assert resolve(spec, options=with_file)[0].digest == pushed
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"username": auth_registry.username, "password": auth_registry.password}))
    assert identify(spec, options=SourceOptions(insecure=True, registry_auth_file=str(plain)))[0].digest == pushed
    monkeypatch.setenv("NOTARY_REGISTRY_USERNAME", str(auth_registry.username))
    monkeypatch.setenv("NOTARY_REGISTRY_PASSWORD", str(auth_registry.password))
    assert resolve(spec, options=LOCAL)[0].digest == pushed
    monkeypatch.setenv("NOTARY_REGISTRY_PASSWORD", "wrong")
    with pytest.raises(UsageError, match="rejected the credentials"):
        resolve(spec, options=LOCAL)


def test_plain_http_to_a_non_loopback_registry_is_refused() -> None:
    with pytest.raises(UsageError, match="loopback"):
        resolve("registry://registry.example.com/app:1", options=LOCAL)
    with pytest.raises(UsageError, match="loopback"):
        identify("registry://10.1.2.3:5000/app@sha256:" + "1" * 64, options=LOCAL)


def test_https_is_the_default(registry: RegistryServer) -> None:
    # the loopback registry speaks plain HTTP only: without --insecure notary insists on TLS and fails
    with pytest.raises(SourceUnavailableError) as err:
        identify(f"registry://{registry}/anon/busybox:v1")
    assert err.value.exit_code == 4


def test_unreachable_registry_is_exit_4() -> None:
    with pytest.raises(SourceUnavailableError, match="unreachable") as err:
        resolve(f"registry://127.0.0.1:{free_port()}/app:1", options=LOCAL)
    assert err.value.exit_code == 4


def test_skopeo_agrees_on_the_manifest_digest(registry: RegistryServer, busybox_layout: Path) -> None:
    registry.push(busybox_layout, "v1", "anon/agree:v1")
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                          f"docker://{registry}/anon/agree:v1"], capture_output=True, check=True).stdout
    digest = "sha256:" + subprocess.run(["sha256sum"], input=raw, capture_output=True,
                                        check=True).stdout.split()[0].decode()
    assert identify(f"registry://{registry}/anon/agree:v1", options=LOCAL)[0].digest == digest


def test_bearer_token_handshake_with_a_real_token_service(token_registry: RegistryServer, busybox_layout: Path,
                                                          tmp_path: Path) -> None:
    pushed = token_registry.push(busybox_layout, "v1", "tokened/busybox:v1")
    spec = f"registry://{token_registry}/tokened/busybox:v1"
    with pytest.raises(UsageError, match="requires credentials"):
        identify(spec, options=LOCAL)
    auth_file = token_registry.write_auth_file(tmp_path / "config.json")
    [subject] = resolve(spec, options=SourceOptions(insecure=True, registry_auth_file=str(auth_file)))
    assert subject.digest == pushed
    assert token_registry.token_server is not None
    assert token_registry.token_server.issued[-1] == ["repository:tokened/busybox:pull"]


def test_preissued_token_from_the_environment(token_registry: RegistryServer, busybox_layout: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pushed = token_registry.push(busybox_layout, "v1", "tokened/env:v1")
    assert token_registry.token_server is not None
    monkeypatch.setenv("NOTARY_REGISTRY_TOKEN", token_registry.token_server.token(["repository:tokened/env:pull"]))
    before = len(token_registry.token_server.issued)
    assert identify(f"registry://{token_registry}/tokened/env:v1", options=LOCAL)[0].digest == pushed
    assert len(token_registry.token_server.issued) == before  # no handshake was needed


def test_plain_http_token_realm_off_loopback_is_refused(busybox_layout: Path) -> None:
    from tests.support.registry import start_registry

    server = start_registry(username="u", password="p", token_auth=True, token_realm="http://203.0.113.9/token")
    try:
        with pytest.raises(InputError, match="plain-HTTP token realm"):
            identify(f"registry://{server}/any/repo:v1", options=LOCAL)
    finally:
        server.stop()


def test_docker_hub_names_use_its_api_host_and_credentials_key(tmp_path: Path) -> None:
    from notary.sources.registry_auth import base_url, load_credentials

    assert base_url("docker.io", SourceOptions()) == "https://registry-1.docker.io"
    auth = tmp_path / "config.json"
    auth.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": "dTpw"}}}))  # u:p
    creds = load_credentials("docker.io", SourceOptions(registry_auth_file=str(auth)))
    assert (creds.username, creds.password) == ("u", "p")


def test_malformed_credentials_file_is_bad_input(tmp_path: Path) -> None:
    auth = tmp_path / "config.json"
    auth.write_text("{not json")
    with pytest.raises(InputError, match="malformed JSON"):
        resolve("registry://127.0.0.1:1/app:1", options=SourceOptions(insecure=True, registry_auth_file=str(auth)))
    with pytest.raises(UsageError, match="does not exist"):
        resolve("registry://127.0.0.1:1/app:1",
                options=SourceOptions(insecure=True, registry_auth_file=str(tmp_path / "absent.json")))
