"""Seeded fuzzing of everything notary reads from outside: OCI layouts (index.json, manifests, configs), docker
archives (manifest.json, plain and gzipped), the policy in notary.toml, and the OCI hook's state and config.json.

The oracle is the CLI contract: every outcome is a result or a NotaryError with exit code 2 (bad input) or 3
(bytes that do not match their digest); any other exception is a bug, and so is a result that cannot be
written as UTF-8 JSON (a record). A sample of the mutants also goes through real `notary` processes: exit code
in {0, 1, 2, 3} and never a traceback. Deterministic (random.Random(SEED)); NOTARY_TEST_FUZZ_SEED and
NOTARY_TEST_FUZZ_ROUNDS (a multiplier) explore further, and a failure names the seed and the mutant's file.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from notary import keys
from notary.config import load_config
from notary.errors import NotaryError
from notary.gate.oci_hook import HOOK_CODE, identify, read_bundle_config, read_state
from notary.gate.policy import load_policy
from notary.sources import SourceOptions, resolve
from notary.sources import identify as identify_subject
from tests.support.runtimes import GateWorld

SEED = int(os.environ.get("NOTARY_TEST_FUZZ_SEED", "20261130"))
ROUNDS = max(1, int(os.environ.get("NOTARY_TEST_FUZZ_ROUNDS", "1")))
OPTIONS = SourceOptions(workers=1)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
INTERESTING: tuple[Any, ...] = (
    0, -1, 2**63, 10**40, 1.5, 1e308, True, None, "", "\ud800", "x" * 5000, [], {}, [[[]]],
    "sha256:" + "0" * 64, "sha512:" + "0" * 128, "../../etc/passwd", "/dev/zero",
)
TOKENS = (b"[" * 70, b"{\"a\":" * 70, b"9" * 5000, b'"\\ud800"', b"NaN", b"1e999999", b'"', b"\\", b"\x00",
          b"\xff", b"\xed\xa0\x80", b",", b"}", b"]", b'"digest":', b"-", b"\n[[", b"'''", b"=", b"[[policy.trust]]")


# ---------------------------------------------------------------- mutation


DEEP = "<<deep>>"  # replaced in the text after json.dumps: a deep document cannot be built as Python values


def _deep_text(rng: random.Random) -> str:
    depth = rng.choice((10, 70, 100_000))
    return "[" * depth + "]" * depth if rng.random() < 0.5 else '{"k":' * depth + "1" + "}" * depth


def _mutate_tree(doc: Any, rng: random.Random) -> Any:
    """Replace, delete or retype one node of a JSON document."""
    if isinstance(doc, dict) and doc and rng.random() < 0.7:
        key = rng.choice(sorted(doc))
        choice = rng.random()
        if choice < 0.2:
            return {k: v for k, v in doc.items() if k != key}
        if choice < 0.6:
            return {**doc, key: _mutate_tree(doc[key], rng)}
        return {**doc, key: rng.choice((*INTERESTING, DEEP))}
    if isinstance(doc, list) and doc and rng.random() < 0.7:
        i = rng.randrange(len(doc))
        return [*doc[:i], _mutate_tree(doc[i], rng), *doc[i + 1:]]
    return rng.choice((*INTERESTING, DEEP))


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(5)
        at = rng.randint(0, len(out))
        if op == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            del out[at:]
        elif op == 2:
            out[at:at] = rng.choice(TOKENS)
        elif op == 3:
            del out[at:at + rng.randint(1, 16)]
        else:
            out[at:at] = out[at:at + rng.randint(1, 64)]
    return bytes(out)


def mutate_json(data: bytes, rng: random.Random) -> bytes:
    """Half the time a structural mutation (still JSON, sometimes with a duplicated key), else raw bytes."""
    if rng.random() < 0.5:
        return mutate_bytes(data, rng)
    text = json.dumps(_mutate_tree(json.loads(data), rng)).replace(f'"{DEEP}"', _deep_text(rng))
    if rng.random() < 0.2 and '":' in text:
        at = text.index('":')
        start = text.rindex('"', 0, at) + 1
        text = text.replace(f'"{text[start:at]}":', f'"{text[start:at]}": 0, "{text[start:at]}":', 1)
    return text.encode()


TOML_VALUES = ("5", "-1", "true", '""', '"0s"', '"99999999999999999999d"', '"/dev/zero"', '"."', "[]", "[1]",
               '["*"]', "{}", "1979-05-27T07:32:00", "1979-05-27", "7" * 5000, "[" * 5000 + "]" * 5000,
               '"\\ud800"', '"""x"""', "inf", "nan")


def mutate_toml(text: str, rng: random.Random) -> bytes:
    """A setting's value replaced by one of another type, a line dropped or repeated; or raw bytes."""
    lines = text.splitlines()
    op = rng.randrange(4)
    at = rng.randrange(len(lines))
    if op == 0 and " = " in lines[at]:
        lines[at] = lines[at].split(" = ", 1)[0] + " = " + rng.choice(TOML_VALUES)
    elif op == 1:
        del lines[at]
    elif op == 2:
        lines.insert(at, lines[rng.randrange(len(lines))])
    else:
        return mutate_bytes(text.encode(), rng)
    return "\n".join(lines).encode()


# ---------------------------------------------------------------- valid seeds, built in Python (no tools: fast)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layer_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"hello\n"))
    return buf.getvalue()


LAYER = _layer_tar()
LAYER_GZ = gzip.compress(LAYER, mtime=0)
CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/hello"]},
                     "rootfs": {"type": "layers", "diff_ids": [_sha(LAYER)]}}).encode()


def _manifest(config: bytes) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": OCI_CONFIG, "digest": _sha(config), "size": len(config)},
                       "layers": [{"mediaType": OCI_LAYER, "digest": _sha(LAYER_GZ), "size": len(LAYER_GZ)}]}).encode()


def _index(manifest: bytes) -> bytes:
    return json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": _sha(manifest), "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}).encode()


def write_layout(root: Path, *, config: bytes = CONFIG, manifest: bytes | None = None,
                 index: bytes | None = None) -> Path:
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    manifest = manifest if manifest is not None else _manifest(config)
    for blob in (LAYER_GZ, config, manifest):
        (blobs / _sha(blob)[7:]).write_bytes(blob)
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (root / "index.json").write_bytes(index if index is not None else _index(manifest))
    return root


def write_archive(path: Path, manifest_json: bytes, *, config: bytes = CONFIG, compress: bool = False) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in ((f"{_sha(config)[7:]}.json", config), ("layer/layer.tar", LAYER),
                           ("manifest.json", manifest_json)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(buf.getvalue(), mtime=0) if compress else buf.getvalue())
    return path


def archive_manifest(config: bytes = CONFIG) -> bytes:
    return json.dumps([{"Config": f"{_sha(config)[7:]}.json", "RepoTags": ["fuzz.test/app:1"],
                        "Layers": ["layer/layer.tar"]}]).encode()


POLICY = """[policy]
fail = "closed"
max_age = "30d"
decision_log = "decisions.jsonl"
[[policy.trust]]
images = ["registry.example/*", "*"]
keys = ["ci.pub"]
[[policy.break_glass]]
digest = "sha256:{zeros}"
reason = "INC-1"
expires = "2099-01-01T00:00:00Z"
""".replace("{zeros}", "0" * 64)
STATE = json.dumps({"ociVersion": "1.0.2", "id": "fuzz1", "status": "creating", "pid": 42,
                    "bundle": "BUNDLE", "annotations": {}}).encode()
BUNDLE_CONFIG = json.dumps({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["/hello"]},
                            "annotations": {"dev.notary.image.digest": _sha(b"x"),
                                            "dev.notary.image.name": "registry.example/app:1"}}).encode()


# ---------------------------------------------------------------- the oracle


def check(outcome: Callable[[], Any], where: Path, seed: int) -> Any:
    """Run outcome; a result must be writable as UTF-8 JSON, an error must be a NotaryError with exit 2 or 3."""
    try:
        result = outcome()
    except NotaryError as exc:
        assert exc.exit_code in (2, 3), f"seed {seed}: {where}: exit {exc.exit_code}: {exc.one_line()}"
        exc.one_line().encode("utf-8", "backslashreplace")
        return exc
    except Exception as exc:  # noqa: BLE001 - this is the bug the fuzzer looks for
        pytest.fail(f"seed {seed}: {where}: {type(exc).__name__}: {str(exc)[:300]}", pytrace=False)
    json.dumps(_plain(result), ensure_ascii=False).encode("utf-8")
    return result


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "to_json"):
        data = value.to_json()
        data["artifacts"] = [a.to_json() for a in getattr(value, "artifacts", ())]
        data["extra"] = getattr(value, "extra", {})
        return data
    if hasattr(value, "digests"):  # ImageIdentity
        return {"name": value.name, "digests": list(value.digests), "source": value.source}
    if hasattr(value, "describe"):  # Policy
        return value.describe()
    return value


# ---------------------------------------------------------------- in-process fuzzing


def test_seeded_fuzz_of_sources_policy_and_hook_inputs(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    keys.write_key_pair(tmp_path / "ci", keys.generate_private_key())
    for i in range(60 * ROUNDS):
        seed = rng.randrange(1 << 32)
        case = random.Random(seed)
        root = tmp_path / f"layout-{i}"
        target = i % 4
        if target == 0:  # index.json
            write_layout(root, index=mutate_json(_index(_manifest(CONFIG)), case))
        elif target == 1:  # a manifest whose bytes match its digest, so it is parsed
            write_layout(root, manifest=mutate_json(_manifest(CONFIG), case))
        elif target == 2:  # a config, rehashed, so the manifest and index still name it
            write_layout(root, config=mutate_json(CONFIG, case))
        else:  # raw bytes of any of the three, not rehashed: digest mismatches
            write_layout(root)
            victim = case.choice([*(root / "blobs" / "sha256").iterdir(), root / "index.json"])
            victim.write_bytes(mutate_bytes(victim.read_bytes(), case))
        spec = f"oci:{root}:v1" if case.random() < 0.7 else f"oci:{root}"
        check(lambda spec=spec: resolve(spec, options=OPTIONS), root, seed)
        check(lambda spec=spec: identify_subject(spec, options=OPTIONS), root, seed)

    for i in range(40 * ROUNDS):
        seed = rng.randrange(1 << 32)
        case = random.Random(seed)
        config = mutate_json(CONFIG, case) if i % 3 == 0 else CONFIG
        manifest_json = mutate_json(archive_manifest(config), case) if i % 3 else archive_manifest(config)
        archive = write_archive(tmp_path / f"image-{i}.tar", manifest_json, config=config, compress=i % 2 == 1)
        if i % 4 == 1:  # a damaged compressed stream: truncated, flipped, spliced
            archive.write_bytes(mutate_bytes(archive.read_bytes(), case))
        check(lambda a=archive: resolve(f"docker-archive:{a}", options=OPTIONS), archive, seed)

    for i in range(60 * ROUNDS):
        seed = rng.randrange(1 << 32)
        path = tmp_path / f"notary-{i}.toml"
        path.write_bytes(mutate_toml(POLICY, random.Random(seed)))
        check(lambda p=path: load_policy(load_config(str(p))), path, seed)

    storage = tmp_path / "empty-storage"
    storage.mkdir()
    for i in range(60 * ROUNDS):
        seed = rng.randrange(1 << 32)
        case = random.Random(seed)
        bundle = tmp_path / f"bundle-{i}"
        bundle.mkdir()
        state = STATE.replace(b"BUNDLE", str(bundle).encode())
        state = mutate_json(state, case) if i % 2 else state
        (bundle / "config.json").write_bytes(mutate_json(BUNDLE_CONFIG, case) if i % 2 == 0 or i % 3 == 0
                                             else BUNDLE_CONFIG)

        def hook_input(state: bytes = state, bundle: Path = bundle) -> Any:
            parsed = read_state(io.BytesIO(state))
            config = read_bundle_config(str(parsed.get("bundle") or bundle))
            return identify(parsed, config, storage_root=str(storage))

        check(hook_input, bundle, seed)


# ---------------------------------------------------------------- a sample through real processes


def test_seeded_fuzz_sample_through_the_cli_never_shows_a_traceback(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    world = GateWorld(tmp_path / "world")
    world.ensure_ledger()
    key = tmp_path / "ci.key"
    keys.write_key_pair(key, keys.generate_private_key())
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTARY_")}
    env.update(NOTARY_LEDGER=(tmp_path / "ledger.db").as_uri(), NOTARY_STATE_DIR=str(tmp_path / "state"))
    cli = [sys.executable, "-m", "notary.cli.main"]
    runs: list[tuple[list[str], dict[str, str], bytes | None]] = []
    for i in range(3):
        layout = write_layout(tmp_path / f"layout-{i}", index=mutate_json(_index(_manifest(CONFIG)), rng))
        runs.append(([*cli, "notarize", f"oci:{layout}:v1", "--job-id", "fuzz", "--key", str(key)], env, None))
    archive = write_archive(tmp_path / "image.tar.gz", archive_manifest(), compress=True)
    archive.write_bytes(mutate_bytes(archive.read_bytes(), rng))
    runs.append(([*cli, "notarize", f"docker-archive:{archive}", "--job-id", "fuzz", "--key", str(key)], env, None))
    for i in range(2):
        bundle = tmp_path / f"bundle-{i}"
        bundle.mkdir()
        (bundle / "config.json").write_bytes(mutate_json(BUNDLE_CONFIG, rng))
        state = STATE.replace(b"BUNDLE", str(bundle).encode())
        runs.append(([sys.executable, "-c", HOOK_CODE], world.env(), mutate_json(state, rng) if i else state))
    head, policy = world.config.read_bytes().split(b"[policy]", 1)  # the ledger and state_dir lines stay intact
    world.config.write_bytes(head + mutate_toml("[policy]" + policy.decode(), rng))
    runs.append(([*cli, "gate", "check", "sha256:" + "a" * 64, "--name", "registry.example/app"], world.env(), None))

    procs = [(argv, stdin, subprocess.Popen(argv, env=run_env, cwd=tmp_path, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE))
             for argv, run_env, stdin in runs]
    for argv, stdin, proc in procs:
        _out, err = proc.communicate(stdin, timeout=60)
        text = err.decode("utf-8", "replace")
        assert proc.returncode in (0, 1, 2, 3), f"seed {SEED + 1}: {argv[-4:]} exited {proc.returncode}: {text}"
        assert "Traceback" not in text and "internal error" not in text, f"seed {SEED + 1}: {argv[-4:]}: {text}"
