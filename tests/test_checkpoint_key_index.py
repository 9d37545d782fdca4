"""`audit checkpoint` checks the key-index line too: a checkpoint whose log root agrees but whose key index does
not is a split view of the index every completeness answer rests on.

The attacker holds the ledger key (an insider, a stolen key file): it can sign any checkpoint text. What it
cannot do is make the ledger's own signed head at that size carry the same forged key-index root.
"""

from __future__ import annotations

import base64
from pathlib import Path

from notary.audit import checkpoints
from notary.audit import note as notes
from notary.ledger.embedded import EmbeddedLedger
from notary.ledger.trust import TrustStore
from tests.support.cli import Notary


def _signed_by_the_ledger_key(user: Notary, tmp_path: Path, size: int | None = None,
                              extensions: tuple[str, ...] | None = None) -> Path:
    ledger = EmbeddedLedger.open(user.ledger_path.as_uri(), trust=TrustStore(tmp_path / "insider-state"))
    try:
        head = ledger.info().head
        cp = checkpoints.checkpoint_of(head)
        if size is not None:
            cp = cp._replace(size=size, root=ledger.tree_root(size))
        if extensions is not None:
            cp = cp._replace(extensions=extensions)
        verifier = checkpoints.log_verifier(ledger.ledger_id, ledger.public_raw)
        out = tmp_path / f"forged-{size}-{len(extensions or ())}.cp"
        out.write_bytes(checkpoints.signed(cp, ledger.sign_checkpoint, verifier).encode())
        return out
    finally:
        ledger.close()


def _ledger(tmp_path: Path) -> Notary:
    user = Notary(tmp_path)
    key = user.key()
    user.notarize_file(key, b"one", job_id="j1")
    user.notarize_file(key, b"two", name="two.bin", job_id="j2")
    return user


def test_honest_checkpoint_names_its_key_index_root(tmp_path: Path) -> None:
    user = _ledger(tmp_path)
    user.run("ledger", "checkpoint", "-o", str(tmp_path / "cp"))
    ok = user.run("audit", "checkpoint", str(tmp_path / "cp"), "--json").json
    assert len(bytes.fromhex(ok["key_index_root"])) == 32


def test_checkpoint_with_a_forged_key_index_root_is_a_split_view(tmp_path: Path) -> None:
    user = _ledger(tmp_path)
    forged = (notes.KEY_INDEX_EXTENSION + base64.b64encode(b"\x07" * 32).decode(),)
    cp = _signed_by_the_ledger_key(user, tmp_path, extensions=forged)
    refused = user.run("audit", "checkpoint", str(cp), expect=3)
    assert "split view of the key index" in refused.err, refused.err


def test_checkpoint_that_drops_its_key_index_line_is_a_split_view(tmp_path: Path) -> None:
    user = _ledger(tmp_path)
    cp = _signed_by_the_ledger_key(user, tmp_path, extensions=())
    refused = user.run("audit", "checkpoint", str(cp), expect=3)
    assert "no key-index root" in refused.err, refused.err


def test_checkpoint_at_a_size_no_transaction_ended_at_is_a_split_view(tmp_path: Path) -> None:
    """The log root at that size is genuine (the consistency proof passes); no head of the ledger ever had it."""
    user = _ledger(tmp_path)
    ledger = EmbeddedLedger.open(user.ledger_path.as_uri(), trust=TrustStore(tmp_path / "probe"))
    try:
        ends = {ledger.head_at_size(n) is not None for n in range(1, ledger.info().head.tree_size + 1)}
        inside = next(n for n in range(1, ledger.info().head.tree_size) if ledger.head_at_size(n) is None)
    finally:
        ledger.close()
    assert ends == {True, False}
    cp = _signed_by_the_ledger_key(user, tmp_path, size=inside)
    refused = user.run("audit", "checkpoint", str(cp), expect=3)
    assert f"no transaction of this ledger ends at size {inside}" in refused.err, refused.err
