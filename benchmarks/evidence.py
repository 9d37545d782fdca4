"""Offline checks an auditor runs: an evidence bundle (goal: under 100 ms of CPU) and a checkpoint with its
witness cosignatures (goal: under 5 ms).

The ledger is real and not small (n signed records, so paths are as deep as a busy CI's), the subject was
notarized, revoked and reinstated by the trusted key, so the bundle holds a history of several versions and
the decision reads every tied key. The baseline of the same run is the same decision online: verify_digest
on the open ledger, every proof checked against the client's trusted state.
"""

from __future__ import annotations

import hashlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from notary import keys, records
from notary.audit import checkpoints, evidence
from notary.audit import note as notes
from notary.ledger.embedded import EmbeddedLedger
from notary.ledger.trust import TrustStore
from notary.notarize import signer_index_value
from notary.verify import verify_digest

_PER_TX = 100


def _cpu_ms(fn: Callable[[], object], runs: int) -> float:
    """Median CPU time of fn in ms (process time: what the auditor's machine spends, not waits)."""
    times = []
    for _ in range(runs):
        started = time.process_time()
        fn()
        times.append(time.process_time() - started)
    return statistics.median(times) * 1000


def _fill(ledger: EmbeddedLedger, signer: keys.PrivateKey, n: int) -> None:
    signer_id = keys.key_id(signer)
    for first in range(0, n, _PER_TX * 50):
        txs = []
        for t in range(first, min(n, first + _PER_TX * 50), _PER_TX):
            kvs: dict[str, bytes] = {}
            for i in range(t, min(n, t + _PER_TX)):
                digest = "sha256:" + hashlib.sha256(str(i).encode()).hexdigest()
                record = records.new_record("notarization", {"digest": digest, "name": f"app-{i}"}, signer)
                kvs[records.subject_key(digest, signer_id)] = records.sign_record(record, signer)
                kvs[records.signer_index_key(digest)] = signer_index_value(signer_id)
            txs.append(kvs)
        ledger.write_batch(txs)


def _process_cpu_ms(work: Path, bundle: bytes, public: keys.PublicKey, ledger_id: str,
                    runs: int = 11) -> tuple[float, float]:
    """`notary evidence verify` as the auditor runs it (a new process, no ledger, a fresh state dir), median
    CPU of the child; the baseline of the same run is a bare `python -c pass`."""
    (work / "bundle.json").write_bytes(bundle)
    (work / "ci.pub").write_bytes(keys.public_pem(public).encode())
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTARY_")}
    env.update(NOTARY_LEDGER=(work / "none" / "none.db").as_uri(), NOTARY_STATE_DIR=str(work / "fresh-state"))
    argv = [sys.executable, "-m", "notary.cli.main", "evidence", "verify", str(work / "bundle.json"),
            "--key", str(work / "ci.pub"), "--ledger-id", ledger_id]

    def child_ms(cmd: list[str]) -> float:
        times = []
        for _ in range(runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            times.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        return statistics.median(times) * 1000

    return child_ms(argv), child_ms([sys.executable, "-c", "pass"])


def bench(work: Path, n: int = 20_000, runs: int = 51) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    signer = keys.generate_private_key()
    signer_id = keys.key_id(signer)
    target = "sha256:" + hashlib.sha256(b"the audited release").hexdigest()
    with tempfile.TemporaryDirectory(prefix="notary-bench-state-") as state:
        path = work / "evidence.db"
        path.unlink(missing_ok=True)
        ledger = EmbeddedLedger.open(path.resolve().as_uri(), trust=TrustStore(state), create=True)
        _fill(ledger, signer, n)
        start = datetime.now(timezone.utc) - timedelta(seconds=10)
        for i, (kind, reason) in enumerate((("notarization", None), ("revocation", "CVE-2026-1"),
                                            ("reinstatement", "fixed"))):
            record = records.new_record(kind, {"digest": target, "name": "app"}, signer, reason=reason,
                                        issued_at=start + timedelta(seconds=i))
            ledger.write_batch([{records.subject_key(target, signer_id): records.sign_record(record, signer),
                                 records.signer_index_key(target): signer_index_value(signer_id)}])
        public = signer.public_key()
        bundle = evidence.dump(evidence.export(ledger, [target], [public], "app"))
        head = ledger.info().head

        def offline() -> None:
            found = evidence.decide(evidence.load(bundle, head.ledger_id), [public])
            assert found[0].allowed, found[0].reason

        offline_ms = _cpu_ms(offline, runs)
        online_ms = _cpu_ms(lambda: verify_digest(ledger, target, [public]), runs)

        log = checkpoints.log_verifier(ledger.ledger_id, ledger.public_raw)
        note = checkpoints.signed(checkpoints.checkpoint_of(head), ledger.sign_checkpoint, log)
        witnesses = []
        for i in range(3):
            wkey = keys.generate_private_key()
            name = f"witness.bench/w{i}"
            cosig = notes.cosign(note.text, name, wkey, int(time.time()))  # type: ignore[arg-type]
            note = notes.Note(note.text, note.signatures + (cosig,))
            witnesses.append(notes.verifier(name, notes.COSIGNATURE_V1, wkey.public_key()))  # type: ignore[arg-type]
        encoded = note.encode()
        checkpoint_ms = _cpu_ms(lambda: checkpoints.check(notes.parse_note(encoded), log, witnesses, 2), runs * 4)
        ledger.close()
        process_ms, python_ms = _process_cpu_ms(work, bundle, public, head.ledger_id)
    return {
        "records": n, "bundle_bytes": len(bundle), "runs": runs,
        "evidence_verify_cpu_ms": round(offline_ms, 2), "evidence_goal_ms": 100,
        "baseline_online_verify_cpu_ms": round(online_ms, 2),
        "offline_to_online_ratio": round(offline_ms / online_ms, 2) if online_ms else None,
        "evidence_verify_process_cpu_ms": round(process_ms, 1),
        "baseline_python_startup_cpu_ms": round(python_ms, 1),
        "checkpoint_plus_3_cosignatures_cpu_ms": round(checkpoint_ms, 3), "checkpoint_goal_ms": 5,
    }


def bench_immudb(work: Path, url: str, password: str, n: int = 20_000, runs: int = 51) -> dict[str, Any]:
    """The same audit on an immudb ledger: n signed records written in transactions of 100, the subject
    notarized, revoked and reinstated; the bundle is checked against a checkpoint signed by an operator key.
    Also timed: the key index built from the mirror (every key, as `ledger checkpoint` and export build it)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from notary.audit import immudb_evidence
    from notary.ledger import open_immudb
    from notary.ledger.immudb import MirroredLedger, key_index

    work.mkdir(parents=True, exist_ok=True)
    signer = keys.generate_private_key()
    signer_id = keys.key_id(signer)
    operator = Ed25519PrivateKey.generate()
    target = "sha256:" + hashlib.sha256(b"the audited release " + os.urandom(8)).hexdigest()
    with tempfile.TemporaryDirectory(prefix="notary-bench-state-") as state:
        ledger = open_immudb(url, trust=TrustStore(state), password=password, mirror=True)
        try:
            _fill(ledger, signer, n)  # type: ignore[arg-type]
            start = datetime.now(timezone.utc) - timedelta(seconds=10)
            for i, (kind, reason) in enumerate((("notarization", None), ("revocation", "CVE-2026-1"),
                                                ("reinstatement", "fixed"))):
                record = records.new_record(kind, {"digest": target, "name": "app"}, signer, reason=reason,
                                            issued_at=start + timedelta(seconds=i))
                ledger.write({records.subject_key(target, signer_id): records.sign_record(record, signer),
                              records.signer_index_key(target): signer_index_value(signer_id)})
            public = signer.public_key()
            started = time.perf_counter()
            bundle = evidence.dump(immudb_evidence.export(ledger, [target], [public], "app", operator=operator))
            export_s = time.perf_counter() - started
            for i in range(100):  # a day's new records since, then the export again: the index catches up
                digest = "sha256:" + hashlib.sha256(f"later {i}".encode()).hexdigest()
                record = records.new_record("notarization", {"digest": digest, "name": f"later-{i}"}, signer)
                ledger.write({records.subject_key(digest, signer_id): records.sign_record(record, signer)})
            started = time.perf_counter()
            immudb_evidence.export(ledger, [target], [public], "app", operator=operator)
            export_again_s = time.perf_counter() - started
            assert isinstance(ledger, MirroredLedger)
            mirror = ledger.mirror
            started = time.perf_counter()
            index = key_index.build(mirror, mirror.last_tx)  # the whole build, for its rate (export used the store)
            index_s = time.perf_counter() - started
            vkey = notes.verifier(
                ledger.info().head.ledger_id, notes.ED25519, operator.public_key()).vkey()
        finally:
            ledger.close()

        def offline() -> None:
            found = evidence.decide(evidence.load(bundle, log_vkey=vkey), [public])
            assert found[0].allowed, found[0].reason

        offline_ms = _cpu_ms(offline, runs)
    return {
        "records": n, "keys": index.keys, "bundle_bytes": len(bundle), "runs": runs,
        "evidence_verify_cpu_ms": round(offline_ms, 2), "evidence_goal_ms": 100,
        "export_first_s": round(export_s, 2), "export_after_100_new_tx_s": round(export_again_s, 2),
        "key_index_build_s": round(index_s, 2),
        "key_index_keys_per_s": round(index.keys / index_s) if index_s else None,
    }
