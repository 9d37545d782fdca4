"""The embedded ledger's behaviour on real SQLite files: writes, verified reads, time travel, trust on first use."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import struct
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from notary import merkle
from notary.errors import InputError, LedgerUnavailableError
from notary.ledger import open_ledger
from notary.ledger.base import Ledger
from notary.ledger.embedded import EmbeddedLedger
from notary.ledger.embedded._codec import decode_leaf, head_message
from notary.ledger.trust import TrustStore
from tests.support.local_ledger import ledger_path, open_local, trust_bytes


def test_new_ledger_gets_its_own_key_and_pins_trust(tmp_path: Path) -> None:
    ledger = open_local(tmp_path)
    assert isinstance(ledger, Ledger)
    path = ledger_path(tmp_path)
    key = Path(f"{path}.key")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "BEGIN PRIVATE KEY" in key.read_text()
    assert ledger.ledger_id.startswith("file:sha256:")
    assert any("created new ledger" in n for n in ledger.notices)
    assert ledger.info().trusted["tree_size"] == 0  # type: ignore[index]
    ledger.close()


def test_missing_ledger_is_not_created_by_readers(tmp_path: Path) -> None:
    with pytest.raises(LedgerUnavailableError) as info:
        open_local(tmp_path, create=False)
    assert info.value.exit_code == 4
    assert "no ledger at" in str(info.value)
    assert not ledger_path(tmp_path).exists()


def test_open_ledger_dispatches_file_urls(tmp_path: Path) -> None:
    ledger = open_ledger(ledger_path(tmp_path).as_uri(), state_dir=tmp_path / "st", create=True)
    assert isinstance(ledger, EmbeddedLedger)
    ledger.write({"k": b"v"})
    ledger.close()


def test_write_then_get_returns_the_verified_latest_version(tmp_path: Path) -> None:
    ledger = open_local(tmp_path)
    first = ledger.write({"subject/a": b"one", "job/ci/1": b"[a]"})
    second = ledger.write({"subject/a": b"two"})
    assert (first.tx, second.tx) == (1, 2)
    assert first.keys == ("job/ci/1", "subject/a")
    assert second.head.tree_size == 3

    entry = ledger.get("subject/a")
    assert entry is not None
    assert (entry.value, entry.tx, entry.revision) == (b"two", 2, 2)
    assert entry.time == second.time
    assert ledger.get("subject/none") is None
    assert ledger.info().trusted["tree_size"] == 3  # type: ignore[index]


def test_history_lists_every_version_oldest_first(tmp_path: Path) -> None:
    ledger = open_local(tmp_path)
    for i in range(5):
        ledger.write({"k": f"v{i}".encode(), f"other/{i}": b"x"})
    history = ledger.history("k")
    assert [e.value for e in history] == [b"v0", b"v1", b"v2", b"v3", b"v4"]
    assert [e.revision for e in history] == [1, 2, 3, 4, 5]
    assert [e.tx for e in history] == [1, 2, 3, 4, 5]
    assert ledger.history("absent") == []


def test_get_at_tx_reads_the_past_with_proofs_against_the_current_head(tmp_path: Path) -> None:
    ledger = open_local(tmp_path)
    ledger.write({"k": b"v1"})
    ledger.write({"other": b"x"})
    ledger.write({"k": b"v2"})
    assert ledger.get("k", at_tx=1).value == b"v1"  # type: ignore[union-attr]
    assert ledger.get("k", at_tx=2).value == b"v1"  # type: ignore[union-attr]
    old = ledger.get("k", at_tx=3)
    assert old is not None and old.value == b"v2"
    assert ledger.get("other", at_tx=1) is None
    assert old.proof["tree_size"] == 3
    with pytest.raises(InputError, match="no transaction 9"):
        ledger.get("k", at_tx=9)
    with pytest.raises(InputError):
        ledger.get("k", at_tx=0)


def test_tx_at_time_maps_a_date_to_the_last_transaction_before_it(tmp_path: Path) -> None:
    ledger = open_local(tmp_path)
    assert ledger.tx_at_time(datetime.now(timezone.utc)) is None
    receipts = [ledger.write({"k": str(i).encode()}) for i in range(3)]
    t1 = receipts[0].time
    assert t1 is not None
    assert ledger.tx_at_time(t1 - timedelta(seconds=1)) is None
    assert ledger.tx_at_time(t1) == 1
    assert ledger.tx_at_time(receipts[1].time) == 2  # type: ignore[arg-type]
    assert ledger.tx_at_time(datetime.now(timezone.utc) + timedelta(days=1)) == 3
    with pytest.raises(InputError, match="time zone"):
        ledger.tx_at_time(datetime(2026, 1, 1))


def test_keys_lists_distinct_keys_by_prefix(tmp_path: Path) -> None:
    ledger = open_local(tmp_path)
    ledger.write({"job/ci/2": b"x", "job/ci/1": b"x", "subject/s": b"x"})
    ledger.write({"job/ci/1": b"y", "job/gh/9": b"y"})
    assert ledger.keys("job/") == ["job/ci/1", "job/ci/2", "job/gh/9"]
    assert ledger.keys("job/ci/") == ["job/ci/1", "job/ci/2"]
    assert ledger.keys("") == ["job/ci/1", "job/ci/2", "job/gh/9", "subject/s"]
    assert ledger.keys("zzz") == []


@pytest.mark.parametrize(
    "kvs, message",
    [
        ({}, "empty transaction"),
        ({"": b"v"}, "invalid ledger key"),
        ({"tab\tkey": b"v"}, "invalid ledger key"),
        ({"caf\u00e9": b"v"}, "invalid ledger key"),
        ({"k" * 1025: b"v"}, "invalid ledger key"),
        ({"k": "text"}, "must be bytes"),
        ({1: b"v"}, "must be a string"),
        ({1: b"v", "a": b"v"}, "must be a string"),
    ],
)
def test_bad_writes_are_refused_before_touching_the_ledger(tmp_path: Path, kvs: dict, message: str) -> None:
    ledger = open_local(tmp_path)
    ledger.write({"k": b"v"})
    before = trust_bytes(ledger)
    with pytest.raises(InputError, match=message) as info:
        ledger.write(kvs)
    assert info.value.exit_code == 2
    assert ledger.info().head.tree_size == 1
    assert trust_bytes(ledger) == before


def test_write_batch_gives_each_transaction_its_own_number_and_head(tmp_path: Path) -> None:
    ledger = open_local(tmp_path)
    receipts = ledger.write_batch([{"a": b"1"}, {"a": b"2", "b": b"1"}, {"c": b"1"}])
    assert [r.tx for r in receipts] == [1, 2, 3]
    assert [r.head.tree_size for r in receipts] == [1, 3, 4]
    assert ledger.write_batch([]) == []
    assert [e.revision for e in ledger.history("a")] == [1, 2]
    assert ledger.get("a", at_tx=1).value == b"1"  # type: ignore[union-attr]
    info = ledger.info()
    assert (info.entries, info.transactions) == (4, 3)
    assert receipts[-1].head.root == info.head.root


def test_a_second_client_trusts_on_first_use_and_then_follows(tmp_path: Path) -> None:
    writer = open_local(tmp_path)
    writer.write({"k": b"v1"})
    reader = open_local(tmp_path, create=False, state=tmp_path / "other-client")
    assert reader.get("k").value == b"v1"  # type: ignore[union-attr]
    assert any("first use" in n and "size 1" in n for n in reader.notices)
    reader.notices.clear()
    writer.write({"k": b"v2"})
    entry = reader.get("k")
    assert entry is not None and entry.value == b"v2"
    assert entry.proof["consistency"]["from_size"] == 1
    assert entry.proof["consistency"]["to_size"] == 2
    assert reader.notices == []


def test_two_writers_on_one_file_interleave_safely(tmp_path: Path) -> None:
    a = open_local(tmp_path)
    b = open_local(tmp_path, state=tmp_path / "b-state")
    for i in range(10):
        (a if i % 2 else b).write({"shared": str(i).encode()})
    assert [e.value for e in a.history("shared")] == [str(i).encode() for i in range(10)]
    assert b.info().head == a.info().head


def test_proof_json_can_be_checked_with_hashlib_alone(tmp_path: Path) -> None:
    """The worked example of docs/proofs.md, executed."""
    ledger = open_local(tmp_path)
    for i in range(6):
        ledger.write({f"k{i}": b"value %d" % i})
    trusted_before = ledger.info().trusted
    for i in range(6, 11):
        ledger.write({f"k{i}": b"value %d" % i})
    reader = open_local(tmp_path, state=tmp_path / "auditor")
    reader.get("k0")  # trust at size 11 ...
    ledger.write({"k3": b"new"})  # ... then the ledger grows to 12
    proof = reader.get("k3").proof  # type: ignore[union-attr]
    assert trusted_before is not None

    # 1. the leaf: decode the documented layout and recompute its hash
    data = bytes.fromhex(proof["leaf_data"])
    assert data[:14] == b"notary-leaf-v1"
    tx, time_us, revision, klen = struct.unpack(">QqQI", data[14:42])
    key = data[42 : 42 + klen].decode("ascii")
    (vlen,) = struct.unpack(">Q", data[42 + klen : 50 + klen])
    value = data[50 + klen :]
    assert (key, value, revision, tx, vlen) == ("k3", b"new", 2, 12, 3)
    assert decode_leaf(data) == (tx, time_us, key, revision, value)
    leaf = hashlib.sha256(b"\x00" + data).digest()
    assert leaf.hex() == proof["leaf_hash"]

    # 2. the audit path, RFC 9162 2.1.3.2, with nothing but hashlib
    def node(a: bytes, b: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + a + b).digest()

    fn, sn, r = proof["leaf_index"], proof["tree_size"] - 1, leaf
    for p in map(bytes.fromhex, proof["audit_path"]):
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0 and r.hex() == proof["root_hash"]

    # 3. the key index: revision 2 at this leaf is k3's newest version (docs/proofs.md, "The key index")
    ki = proof["key_index"]
    khash = hashlib.sha256(b"k3").digest()
    assert ki["key_hash"] == khash.hex() and ki["leaf"]["key_hash"] == khash.hex()
    index_value = bytes.fromhex(ki["leaf"]["value"])
    assert index_value == struct.pack(">QQ", revision, proof["leaf_index"]) + leaf
    h = hashlib.sha256(b"\x02" + khash + index_value).digest()
    for depth in range(len(ki["siblings"]) - 1, -1, -1):
        sibling = bytes.fromhex(ki["siblings"][depth])
        right = (int.from_bytes(khash, "big") >> (255 - depth)) & 1
        h = hashlib.sha256(b"\x03" + (sibling + h if right else h + sibling)).digest()
    assert h.hex() == proof["key_index_root"]

    # 4. the head signature, with any Ed25519 implementation: it covers the log root and the key index root
    public = load_pem_public_key(proof["ledger_key"].encode())
    message = head_message(proof["tree_size"], bytes.fromhex(proof["root_hash"]), proof["head_tx"],
                           proof["head_time_us"], bytes.fromhex(proof["key_index_root"]))
    assert message == b"notary-head-v2" + struct.pack(
        ">Q32sQq", proof["tree_size"], bytes.fromhex(proof["root_hash"]), proof["head_tx"], proof["head_time_us"]
    ) + bytes.fromhex(proof["key_index_root"])
    public.verify(bytes.fromhex(proof["head_signature"]), message)  # type: ignore[union-attr]
    assert proof["ledger_id"] == "file:sha256:" + hashlib.sha256(
        public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[union-attr]
    ).hexdigest()

    # 5. consistency with what the auditor trusted before
    cons = proof["consistency"]
    assert (cons["from_size"], cons["to_size"]) == (11, 12)
    merkle.verify_consistency(cons["from_size"], cons["to_size"], bytes.fromhex(cons["from_root"]),
                              bytes.fromhex(cons["to_root"]), [bytes.fromhex(p) for p in cons["path"]])


def test_signing_key_missing_means_no_writes_but_reads_still_verify(tmp_path: Path) -> None:
    ledger = open_local(tmp_path)
    ledger.write({"k": b"v"})
    ledger.close()
    os.unlink(f"{ledger_path(tmp_path)}.key")
    again = open_local(tmp_path, create=False)
    assert again.get("k").value == b"v"  # type: ignore[union-attr]
    with pytest.raises(LedgerUnavailableError, match="signing key"):
        again.write({"k": b"w"})


def test_large_values_round_trip(tmp_path: Path) -> None:
    ledger = open_local(tmp_path)
    big = os.urandom(3 * 1024 * 1024)
    ledger.write({"big": big})
    reopened = EmbeddedLedger.open(ledger_path(tmp_path).as_uri(), trust=TrustStore(), create=False)
    assert reopened.get("big").value == big  # type: ignore[union-attr]


def test_full_audit_of_an_intact_ledger_recomputes_the_signed_head(tmp_path: Path) -> None:
    ledger = open_local(tmp_path)
    ledger.write_batch([{"a": b"1", "b": b"1"}, {"a": b"2"}])
    ledger.write({"c": b"1"})
    report = ledger.audit()
    assert (report.entries, report.transactions, report.keys, report.signatures_checked) == (4, 3, 3, 3)
    assert report.head == ledger.info().head
    empty = EmbeddedLedger.open((tmp_path / "empty.db").as_uri(), trust=TrustStore(), create=True)
    assert empty.audit().entries == 0


_WORKER = """
import sys
from notary.ledger.embedded import EmbeddedLedger
from notary.ledger.trust import TrustStore
ledger = EmbeddedLedger.open(sys.argv[1], trust=TrustStore(sys.argv[2]), create=False)
for i in range(25):
    ledger.write({"shared": f"{sys.argv[3]}-{i}".encode()})
    assert ledger.get("shared") is not None
    ledger.history("shared")
"""


def test_concurrent_processes_sharing_one_trust_store_never_trip_over_each_other(tmp_path: Path) -> None:
    import subprocess
    import sys

    with open_local(tmp_path) as ledger:
        ledger.write({"shared": b"start"})
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    args = [ledger_path(tmp_path).as_uri(), os.environ["NOTARY_STATE_DIR"]]
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, *args, name], env=env, stderr=subprocess.PIPE,
                              text=True) for name in ("a", "b", "c")]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    with open_local(tmp_path, create=False) as ledger:
        history = ledger.history("shared")
        assert len(history) == 76
        assert ledger.audit().entries == 76
        assert ledger.info().trusted["tree_size"] == 76  # type: ignore[index]


def test_reading_a_ledger_never_loads_the_writer(tmp_path: Path) -> None:
    """The gate's hook path only reads: the writer (and the upgrader's use of it) stays off its start-up."""
    url, state = (tmp_path / "l.db").as_uri(), str(tmp_path / "s")
    with contextlib.closing(open_ledger(url, state_dir=state)) as ledger:
        ledger.write({"k": b"v"})
    code = (
        "import sys; from notary.ledger import open_ledger\n"
        f"l = open_ledger({url!r}, state_dir={state!r})\n"
        "assert l.get('k').value == b'v'; l.history('k'); l.info(); l.close()\n"
        "assert 'notary.ledger.embedded._writer' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
