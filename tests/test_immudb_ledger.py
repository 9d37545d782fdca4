"""ImmudbLedger against a real immudb (the session server, one fresh database per test)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from notary.errors import ProofError
from notary.ledger import open_immudb
from notary.ledger.trust import TrustStore
from tests.support.immudb import ImmudbServer, fresh_immudb_url, write_signing_key


@pytest.fixture
def url(immudb_server: ImmudbServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("NOTARY_IMMUDB_SERVER_KEY", str(immudb_server.public_key))
    return fresh_immudb_url(immudb_server)


def _subject_key(payload: bytes) -> str:
    return f"subject/sha256:{hashlib.sha256(payload).hexdigest()}/sha256:{hashlib.sha256(b'signer').hexdigest()}"


def test_reads_carry_the_immudb_proof_that_was_checked(url: str, immudb_server: ImmudbServer) -> None:
    ledger = open_immudb(url, trust=TrustStore())
    receipt = ledger.write({"subject/a": b"one", "job/ci/1": b"[]"})
    entry = ledger.get("subject/a")
    assert entry is not None and entry.tx == receipt.tx and entry.time == receipt.time
    proof = entry.proof
    assert proof["format"] == "immudb"
    assert proof["server_uuid"] == ledger.server_uuid and proof["database"] == url.rsplit("/", 1)[1]
    assert proof["tx"] == receipt.tx and proof["state"]["tx"] >= receipt.tx
    assert proof["checked"] == ["entry-inclusion", "dual-proof", "state-signature"]
    assert proof["state"]["signature"] and proof["state"]["signature_checked"] is True
    assert len(bytes.fromhex(proof["tx_alh"])) == 32
    json.dumps(proof)  # what `notary get --json` prints must be JSON


def test_multi_key_notarization_is_one_verified_transaction(url: str) -> None:
    ledger = open_immudb(url, trust=TrustStore())
    kvs = {f"artifact/sha256:{i:064x}": f"v{i}".encode() for i in range(7)}
    receipt = ledger.write(kvs)
    assert receipt.head.tx == receipt.tx and set(receipt.keys) == set(kvs)
    for key, value in kvs.items():
        entry = ledger.get(key)
        assert entry is not None and (entry.tx, entry.value) == (receipt.tx, value)


def test_history_versions_are_each_reverified(url: str) -> None:
    ledger = open_immudb(url, trust=TrustStore())
    key = _subject_key(b"image")
    txs = [ledger.write({key: s}).tx for s in (b"notarized", b"revoked")]
    versions = ledger.history(key)
    assert [(v.tx, v.value, v.revision) for v in versions] == [(txs[0], b"notarized", 1), (txs[1], b"revoked", 2)]
    assert all(v.proof["checked"][:2] == ["entry-inclusion", "dual-proof"] for v in versions)


def test_time_and_tx_travel_use_proven_transaction_times(url: str) -> None:
    ledger = open_immudb(url, trust=TrustStore())
    first = ledger.write({"k": b"1"})
    assert first.time is not None
    assert ledger.tx_at_time(first.time - timedelta(seconds=5)) is None
    assert ledger.tx_at_time(first.time) == first.tx
    assert ledger.tx_at_time(datetime.now(timezone.utc) + timedelta(days=1)) == ledger.info().head.tx
    assert ledger.get("k", at_tx=first.tx - 1 if first.tx > 1 else 0) is None


def test_reading_a_transaction_the_ledger_does_not_have_is_bad_input(url: str) -> None:
    from notary.errors import InputError

    ledger = open_immudb(url, trust=TrustStore())
    ledger.write({"k": b"1"})
    with pytest.raises(InputError, match="no transaction 999"):
        ledger.get("k", at_tx=999)


def test_trusted_state_is_notarys_own_json_and_moves_forward(url: str, tmp_path: Path) -> None:
    store = TrustStore(tmp_path / "trust")
    ledger = open_immudb(url, trust=store)
    assert any("first use" in n for n in ledger.notices)
    ledger.write({"a": b"1"})
    ledger.write({"a": b"2"})
    saved = json.loads(store.path_for(ledger.ledger_id).read_text())
    assert saved["format"] == "notary.trusted-state/v1" and saved["tx"] == 2 and saved["tree_size"] == 2
    assert saved["ledger_id"] == f"immudb:{ledger.server_uuid}/{url.rsplit('/', 1)[1]}"
    assert saved["ledger_key"].startswith("-----BEGIN PUBLIC KEY-----")
    again = open_immudb(url, trust=store)
    assert again.notices == [] and again.get("a").value == b"2"  # type: ignore[union-attr]
    assert not list(Path.home().glob(".immudbroot*")), "immudb-py's pickle state store is never used"


def test_states_signed_by_another_key_are_refused(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, other_public = write_signing_key(tmp_path)
    monkeypatch.setenv("NOTARY_IMMUDB_SERVER_KEY", str(other_public))
    store = TrustStore(tmp_path / "trust")
    with pytest.raises(ProofError, match="not signed by the pinned server key"):
        open_immudb(url, trust=store)
    assert not store.directory.exists() or not list(store.directory.iterdir()), "nothing trusted after a failure"


def test_pinned_server_key_stays_in_force_without_the_env(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TrustStore(tmp_path / "trust")
    open_immudb(url, trust=store).write({"a": b"1"})
    _, other_public = write_signing_key(tmp_path)
    monkeypatch.setenv("NOTARY_IMMUDB_SERVER_KEY", str(other_public))
    from notary.errors import RollbackError

    with pytest.raises(RollbackError, match="differs from the server key pinned"):
        open_immudb(url, trust=store)
    monkeypatch.delenv("NOTARY_IMMUDB_SERVER_KEY")
    ledger = open_immudb(url, trust=store)
    assert ledger.get("a").proof["checked"][-1] == "state-signature"  # type: ignore[union-attr]


def test_immuclient_reads_back_exactly_what_notary_wrote(url: str, immudb_server: ImmudbServer, tmp_path: Path) -> None:
    envelope = json.dumps(
        {"payloadType": "application/vnd.notary.record+json", "payload": "eyJ0eXBlIjoibm90YXJpemF0aW9uIn0=",
         "signatures": [{"keyid": "sha256:ab", "sig": "c2ln"}], "note": "caf\u00e9 \u2713"},
        ensure_ascii=False, separators=(",", ":"),
    ).encode()
    key = _subject_key(b"an image manifest")
    ledger = open_immudb(url, trust=TrustStore())
    receipt = ledger.write({key: envelope, "job/github/42": b"[]"})
    database = url.rsplit("/", 1)[1]
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    shown = immudb_server.immuclient("safeget", key, cwd=auditor, database=database).stdout.decode()
    assert "verified: true" in shown and f"tx:       {receipt.tx}" in shown, shown
    raw = immudb_server.immuclient("safeget", key, "--value-only", cwd=auditor, database=database)
    assert raw.stdout == envelope + b"\n"  # immuclient adds one newline after the value


def test_auditor_checks_the_state_signature_with_openssl(url: str, immudb_server: ImmudbServer, tmp_path: Path) -> None:
    import shutil
    import struct
    import subprocess

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not on PATH")
    ledger = open_immudb(url, trust=TrustStore())
    ledger.write({"subject/s": b"x"})
    state = ledger.get("subject/s").proof["state"]  # type: ignore[union-attr]
    database = url.rsplit("/", 1)[1].encode()
    message = struct.pack(">I", len(database)) + database + struct.pack(">Q", state["tx"]) + bytes.fromhex(state["hash"])
    (tmp_path / "state.bin").write_bytes(message)
    (tmp_path / "state.sig").write_bytes(bytes.fromhex(state["signature"]))
    cmd = [openssl, "dgst", "-sha256", "-verify", str(immudb_server.public_key), "-signature", str(tmp_path / "state.sig"),
           str(tmp_path / "state.bin")]
    assert subprocess.run(cmd, capture_output=True, check=False).returncode == 0
    (tmp_path / "state.bin").write_bytes(message[:-1] + bytes([message[-1] ^ 1]))
    assert subprocess.run(cmd, capture_output=True, check=False).returncode != 0


def test_consistency_proofs_hold_across_many_transactions(url: str, tmp_path: Path) -> None:
    """Dual proofs over long distances (binary-linking tree plus linear part) between widely spaced states."""
    reader_store = TrustStore(tmp_path / "reader")
    reader = open_immudb(url, trust=TrustStore())
    first = reader.write({"subject/long": b"v0", "job/ci/0": b"[]"}).tx
    pinned = open_immudb(url, trust=reader_store)
    assert pinned.get("subject/long").tx == first  # type: ignore[union-attr]
    writer = open_immudb(url, trust=TrustStore(tmp_path / "writer"))
    receipts = writer.write_batch([{f"noise/{i}": b"x"} for i in range(150)])
    last = writer.write({"subject/long": b"v1", "job/ci/1": b"[]"}).tx
    assert [r.tx for r in receipts] == list(range(first + 1, first + 151))
    assert pinned.get("subject/long").value == b"v1"  # proof from tx `first` to `last`  # type: ignore[union-attr]
    assert pinned.get("noise/3", at_tx=first + 10).value == b"x"  # type: ignore[union-attr]
    assert pinned.info().head.tx == last
    assert [v.tx for v in pinned.history("subject/long")] == [first, last]
    assert pinned.tx_at_time(datetime.now(timezone.utc)) == last


def test_reading_as_of_a_transaction_that_did_not_touch_the_key(url: str) -> None:
    """immudb's own atTx means "written in that tx"; notary's at_tx means "as of": the version then current."""
    ledger = open_immudb(url, trust=TrustStore())
    notarized = ledger.write({"subject/asof": b"notarized"}).tx
    unrelated = [ledger.write({f"other/{i}": b"x"}).tx for i in range(3)]
    revoked = ledger.write({"subject/asof": b"revoked"}).tx
    later = ledger.write({"other/last": b"x"}).tx
    assert ledger.get("subject/asof", at_tx=unrelated[1]).tx == notarized  # type: ignore[union-attr]
    assert ledger.get("subject/asof", at_tx=unrelated[2]).value == b"notarized"  # type: ignore[union-attr]
    assert ledger.get("subject/asof", at_tx=later).value == b"revoked"  # type: ignore[union-attr]
    assert ledger.get("subject/asof", at_tx=revoked).tx == revoked  # type: ignore[union-attr]
    assert [ledger.get("subject/asof", at_tx=t).revision for t in (notarized, unrelated[0], revoked, later)] == [  # type: ignore[union-attr]
        1, 1, 2, 2
    ]
    assert ledger.get("subject/asof", at_tx=notarized - 1) is None if notarized > 1 else True
