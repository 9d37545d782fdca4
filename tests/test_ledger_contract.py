"""The Ledger contract, run against every backend so the embedded ledger and immudb cannot drift apart."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from notary.ledger import open_ledger
from notary.ledger.trust import TrustStore


def _point_in_time_refused(url: str) -> bool:
    """A partitioned ledger has no one transaction order (docs/partitions.md): a read as of a transaction
    number is refused, not answered from a cut that means nothing (as of a time is tested with the others)."""
    if not url.startswith("partitioned:"):
        return False
    from notary.errors import UsageError

    ledger = open_ledger(url)
    receipt = ledger.write({"subject/t": b"notarized"})
    with pytest.raises(UsageError, match="no one transaction order"):
        ledger.get("subject/t", at_tx=receipt.tx)
    return True


def test_written_values_read_back_verified(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    receipt = ledger.write({"subject/a": b"one", "job/local/1": b"idx"})
    assert set(receipt.keys) == {"subject/a", "job/local/1"}
    entry = ledger.get("subject/a")
    assert entry is not None
    assert entry.value == b"one" and entry.revision == 1 and entry.tx == receipt.tx
    assert entry.proof, "every read carries the proof that was checked"
    assert ledger.get("subject/missing") is None


def test_one_write_is_one_transaction(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    receipt = ledger.write({f"k/{i}": bytes([i]) for i in range(20)})
    assert {ledger.get(f"k/{i}").tx for i in range(20)} == {receipt.tx}  # type: ignore[union-attr]


def test_history_keeps_every_version_oldest_first(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    txs = [ledger.write({"subject/h": f"v{i}".encode()}).tx for i in range(3)]
    ledger.write({"other": b"x"})
    versions = ledger.history("subject/h")
    assert [v.value for v in versions] == [b"v0", b"v1", b"v2"]
    assert [v.tx for v in versions] == txs
    assert [v.revision for v in versions] == [1, 2, 3]
    assert ledger.history("never/written") == []


def test_time_travel_by_transaction(ledger_url: str) -> None:
    if _point_in_time_refused(ledger_url):
        return
    ledger = open_ledger(ledger_url)
    first = ledger.write({"subject/t": b"notarized"}).tx
    second = ledger.write({"subject/t": b"revoked"}).tx
    assert ledger.get("subject/t", at_tx=first).value == b"notarized"  # type: ignore[union-attr]
    assert ledger.get("subject/t", at_tx=second).value == b"revoked"  # type: ignore[union-attr]
    assert ledger.get("subject/t").value == b"revoked"  # type: ignore[union-attr]
    if first > 1:
        assert ledger.get("subject/t", at_tx=first - 1) is None


def test_time_travel_by_date(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    before = datetime.now(timezone.utc) - timedelta(days=1)
    first = ledger.write({"subject/d": b"a"}).tx
    time.sleep(1.1)  # transaction times have one-second resolution on some backends
    middle = datetime.now(timezone.utc)
    time.sleep(1.1)
    ledger.write({"subject/d": b"b"})
    assert ledger.tx_at_time(before) is None or ledger.get("subject/d", at_tx=ledger.tx_at_time(before)) is None
    at_middle = ledger.tx_at_time(middle)
    assert at_middle is not None and at_middle >= first
    assert ledger.get("subject/d", at_tx=at_middle).value == b"a"  # type: ignore[union-attr]
    assert ledger.get("subject/d", at_tx=ledger.tx_at_time(datetime.now(timezone.utc))).value == b"b"  # type: ignore[union-attr]


def test_keys_lists_by_prefix(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    ledger.write({"subject/x/1": b"a", "subject/x/2": b"b", "subject/y/1": b"c"})
    ledger.write({"subject/x/1": b"a2"})
    assert ledger.keys("subject/x/") == ["subject/x/1", "subject/x/2"]


def test_trusted_state_moves_forward_and_survives_reopening(ledger_url: str, tmp_path: Path) -> None:
    ledger = open_ledger(ledger_url)
    ledger.write({"a": b"1"})
    size1 = ledger.info().head.tree_size
    ledger.close()
    again = open_ledger(ledger_url)
    again.write({"b": b"2"})
    info = again.info()
    assert info.head.tree_size > size1
    assert info.trusted is not None and info.trusted["tree_size"] == info.head.tree_size


def test_second_client_catches_up_by_consistency_proof(ledger_url: str, tmp_path: Path) -> None:
    writer = open_ledger(ledger_url)
    writer.write({"a": b"1"})
    reader = open_ledger(ledger_url, state_dir=tmp_path / "reader-state")
    assert reader.get("a").value == b"1"  # type: ignore[union-attr]
    assert any("first" in n.lower() for n in reader.notices), "trust on first use is announced"
    trusted_before = reader.info().trusted
    for i in range(5):
        writer.write({f"k{i}": b"v"})
    assert reader.get("k4") is not None
    after = reader.info().trusted
    assert after is not None and trusted_before is not None and after["tree_size"] > trusted_before["tree_size"]


def test_empty_write_is_refused(ledger_url: str) -> None:
    from notary.errors import NotaryError

    ledger = open_ledger(ledger_url)
    with pytest.raises(NotaryError):
        ledger.write({})


def test_trust_store_never_moves_backwards(tmp_path: Path) -> None:
    from notary.errors import RollbackError
    from notary.ledger.trust import TrustedState

    store = TrustStore(tmp_path)
    store.save(TrustedState("L", 10, "aa" * 32, 3))
    with pytest.raises(RollbackError):
        store.save(TrustedState("L", 9, "bb" * 32, 2))
    with pytest.raises(RollbackError):
        store.save(TrustedState("L", 10, "cc" * 32, 3))
    assert store.load("L") == TrustedState("L", 10, "aa" * 32, 3)


def test_corrupt_trust_file_fails_closed(tmp_path: Path) -> None:
    from notary.errors import TrustStoreError

    store = TrustStore(tmp_path)
    store.save(_state())
    store.path_for("L").write_text("{ not json")
    with pytest.raises(TrustStoreError):
        store.load("L")


def _state():  # type: ignore[no-untyped-def]
    from notary.ledger.trust import TrustedState

    return TrustedState("L", 1, "aa" * 32, 1)


def test_reading_as_of_a_transaction_that_did_not_touch_the_key(ledger_url: str) -> None:
    """Time travel means "the version current then", not "the version written in exactly that tx"."""
    if _point_in_time_refused(ledger_url):
        return
    ledger = open_ledger(ledger_url)
    ledger.write({"subject/asof": b"v1"})
    between = ledger.write({"unrelated": b"x"}).tx
    ledger.write({"subject/asof": b"v2"})
    ledger.write({"unrelated": b"y"})
    assert ledger.get("subject/asof", at_tx=between).value == b"v1"  # type: ignore[union-attr]
    assert ledger.get("subject/asof").value == b"v2"  # type: ignore[union-attr]
