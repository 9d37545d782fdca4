"""What signing in a PKCS#11 token costs, next to a key file, in the same run (`make bench`; issue 22: at most
5 ms more per record).

Two numbers, because they are paid differently:

- per record: `records.sign_record` of a realistic record (canonical JSON, DSSE PAE, the signature, and for
  the token the check of its answer under the public key), token key minus file key, best of N batches;
- per process: what opening the token adds once (importing python-pkcs11, loading and initialising the
  module, C_Login, finding the key), and whole `notary notarize FILE` processes with either key.

The token is a SoftHSM2 token (Debian's softhsm2) initialised in `work`, so the numbers are SoftHSM's; a
network HSM adds its round trip to each record.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._environ import patched_environ

MODULES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
           "/usr/lib64/pkcs11/libsofthsm2.so")
PIN = "bench-pin-1234"
GOAL_MS = 5.0


def _token(work: Path) -> tuple[dict[str, str], str]:
    """(environment reaching a fresh token 'bench', its module path)."""
    tool = shutil.which("softhsm2-util")
    module = next((m for m in MODULES if os.path.isfile(m)), None)
    if tool is None or module is None:
        raise RuntimeError("softhsm2 is not installed (Debian package softhsm2)")
    (work / "tokens").mkdir(parents=True)
    conf = work / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {work / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {"SOFTHSM2_CONF": str(conf), "NOTARY_PKCS11_PIN": PIN}
    subprocess.run([tool, "--init-token", "--free", "--label", "bench", "--so-pin", "bench-so-1234", "--pin", PIN],
                   env={**os.environ, **env}, check=True, capture_output=True)
    return env, module


def _per_call_ms(fn: Callable[[], object], n: int, batches: int = 5) -> float:
    best = float("inf")
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n)
    return round(best * 1000, 3)


def _process_ms(cmd: list[str], env: dict[str, str], runs: int) -> dict[str, float]:
    times = []
    for i in range(runs):
        start = time.perf_counter()
        subprocess.run([*cmd, "--job-id", f"bench-{time.monotonic_ns()}-{i}"], env=env, check=True,
                       capture_output=True)
        times.append(time.perf_counter() - start)
    return {"best_ms": round(min(times) * 1000, 1), "p50_ms": round(statistics.median(times) * 1000, 1)}


def bench(work: Path, records_n: int = 200, runs: int = 5) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    env, module = _token(work)
    with patched_environ(env):  # SoftHSM reads SOFTHSM2_CONF at C_Initialize, notary the PIN from the environment
        from notary import keys, records
        from notary.signing import pkcs11

        uris = {kind: f"pkcs11:token=bench;object={kind}?module-path={module}" for kind in keys.KEY_TYPES}
        start = time.perf_counter()
        signers: dict[str, keys.SigningKey] = {kind: pkcs11.generate(uri, kind) for kind, uri in uris.items()}
        generate_ms = round((time.perf_counter() - start) * 1000 / len(uris), 1)
        files = {kind: keys.generate_private_key(kind) for kind in keys.KEY_TYPES}
        subject = {"digest": "sha256:" + "ab" * 32, "name": "registry.example/team/app", "kind": "oci-manifest"}
        ci = {"system": "github", "jobId": "8812", "runUrl": "https://ci.example/run/8812", "commit": "f" * 40}
        artifacts = tuple({"digest": "sha256:" + f"{i:02x}" * 32, "size": 1 << 20} for i in range(6))

        def signing(key: keys.SigningKey) -> Callable[[], object]:
            record = records.new_record("notarization", subject, key, artifacts=artifacts, ci=ci)
            return lambda: records.sign_record(record, key)

        out: dict[str, Any] = {"goal_added_ms_per_record": GOAL_MS, "generate_in_token_ms": generate_ms}
        for kind in keys.KEY_TYPES:
            file_ms = _per_call_ms(signing(files[kind]), records_n)
            token_ms = _per_call_ms(signing(signers[kind]), records_n)
            out[kind] = {"file_key_ms_per_record": file_ms, "token_ms_per_record": token_ms,
                         "added_ms_per_record": round(token_ms - file_ms, 3),
                         "within_goal": token_ms - file_ms <= GOAL_MS}
        out["open_in_process_ms"] = _open_ms(env, uris["ed25519"])
        out["notarize_process"] = _processes(work, env, uris["ed25519"], files["ed25519"], runs)
        return out


def _open_ms(env: dict[str, str], uri: str) -> float:
    """Opening the token in a fresh interpreter (import, module load, login, key lookup), best of 5: what
    every notarize or revoke process pays once, whatever number of records it signs."""
    base = "import time; t = time.perf_counter(); from notary import keys; {}print(time.perf_counter() - t)"
    code, base = base.format(f"keys.load_private_key({uri!r}); "), base.format("")
    timings = []
    for script in (code, base):
        best = min(float(subprocess.run([sys.executable, "-c", script], env={**os.environ, **env}, check=True,
                                        capture_output=True, text=True).stdout) for _ in range(5))
        timings.append(best)
    return round((timings[0] - timings[1]) * 1000, 1)


def _processes(work: Path, env: dict[str, str], uri: str, file_key: Any, runs: int) -> dict[str, Any]:
    from notary import keys

    keys.write_key_pair(work / "file.key", file_key, force=True)
    artifact = work / "artifact.bin"
    artifact.write_bytes(os.urandom(4096))
    base_env = {**os.environ, **env, "NOTARY_LEDGER": (work / "ledger.db").as_uri(),
                "NOTARY_STATE_DIR": str(work / "state")}
    cmd = [sys.executable, "-m", "notary.cli.main", "notarize", str(artifact)]
    subprocess.run([*cmd, "--create", "--job-id", "warm", "--key", str(work / "file.key")], env=base_env, check=True,
                   capture_output=True)
    file_p = _process_ms([*cmd, "--key", str(work / "file.key")], base_env, runs)
    token_p = _process_ms([*cmd, "--key", uri], base_env, runs)
    return {"file_key": file_p, "token": token_p, "added_p50_ms": round(token_p["p50_ms"] - file_p["p50_ms"], 1)}
