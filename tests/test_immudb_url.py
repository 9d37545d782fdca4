"""Input handling of the immudb backend that needs no server: URL, password sources, keys, import hygiene."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from notary.errors import UsageError
from notary.ledger.immudb._conn import parse_url
from notary.ledger.settings import read_password, read_server_key, read_timeout


def test_well_formed_url_is_parsed() -> None:
    t = parse_url("immudb://notary@127.0.0.1:3323/supply_chain")
    assert (t.user, t.host, t.port, t.database) == ("notary", "127.0.0.1", 3323, "supply_chain")
    assert t.url == "immudb://notary@127.0.0.1:3323/supply_chain"
    assert parse_url("immudb://immudb@ledger.example/defaultdb").port == 3322
    assert parse_url("immudb://immudb@[::1]:3322/defaultdb").address == "[::1]:3322"


def test_password_in_url_is_refused_without_echoing_it() -> None:
    for url in ("immudb://immudb:s3cret@127.0.0.1:3322/defaultdb", "immudb://immudb:@127.0.0.1:3322/defaultdb"):
        with pytest.raises(UsageError) as err:
            parse_url(url)
        assert "s3cret" not in str(err.value)
        assert "NOTARY_IMMUDB_PASSWORD" in str(err.value)


@pytest.mark.parametrize(
    "url",
    [
        "immudb://127.0.0.1:3322/defaultdb",  # no user
        "immudb://immudb@127.0.0.1:3322/",  # no database
        "immudb://immudb@127.0.0.1:3322",
        "immudb://immudb@127.0.0.1:3322/Default",  # immudb database names are lower case
        "immudb://immudb@127.0.0.1:3322/a/b",
        "immudb://immudb@127.0.0.1:3322/db?tls=1",
        "immudb://immudb@127.0.0.1:3322/db#x",
        "immudb://immudb@127.0.0.1:99999/db",
        "immudb://immudb@127.0.0.1:0/db",
        "immudb://immudb@/db",
        "immudbs://immudb@127.0.0.1:3322/db",
    ],
)
def test_malformed_url_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError):
        parse_url(url)


def test_password_comes_from_env_or_file_and_nowhere_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="no password for immudb user notary"):
        read_password("notary")
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD_FILE", str(secret))
    assert read_password("notary") == "from-file"
    monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD", "from-env")
    assert read_password("notary") == "from-env"
    monkeypatch.delenv("NOTARY_IMMUDB_PASSWORD")
    monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="cannot read NOTARY_IMMUDB_PASSWORD_FILE"):
        read_password("notary")
    secret.write_text("\n")
    monkeypatch.setenv("NOTARY_IMMUDB_PASSWORD_FILE", str(secret))
    with pytest.raises(UsageError, match="is empty"):
        read_password("notary")


def test_timeout_and_server_key_are_validated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_timeout() == 10.0
    monkeypatch.setenv("NOTARY_IMMUDB_TIMEOUT", "2.5")
    assert read_timeout() == 2.5
    monkeypatch.setenv("NOTARY_IMMUDB_TIMEOUT", "soon")
    with pytest.raises(UsageError):
        read_timeout()
    assert read_server_key() is None
    not_a_key = tmp_path / "key.pem"
    not_a_key.write_text("hello")
    monkeypatch.setenv("NOTARY_IMMUDB_SERVER_KEY", str(not_a_key))
    with pytest.raises(UsageError, match="not a PEM public key"):
        read_server_key()


def test_embedded_ledger_never_imports_grpc_or_immudb(tmp_path: Path) -> None:
    code = (
        "import sys; from notary.ledger import open_ledger\n"
        f"l = open_ledger({(tmp_path / 'l.db').as_uri()!r}, state_dir={str(tmp_path / 's')!r})\n"
        "l.write({'k': b'v'}); l.get('k'); l.close()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'immudb', 'google', 'ecdsa'))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def _chain(n: int) -> tuple[list[bytes], list[bytes]]:
    """Alh values of transactions 1..n and the inner-hash terms that link them (term[k] links k-1 -> k)."""
    import hashlib
    import os
    import struct

    alhs, terms = [os.urandom(32)], [b""]
    for tx in range(2, n + 1):
        terms.append(os.urandom(32))
        alhs.append(hashlib.sha256(struct.pack(">Q", tx) + alhs[-1] + terms[-1]).digest())
    return alhs, terms


def test_linear_advance_proof_binds_the_chain_to_the_new_tree() -> None:
    """The part of immudb's dual proof that immudb-py 1.5.0 skips; notary checks it (offline, synthetic tree)."""
    from notary import merkle
    from notary.ledger.immudb._verify import LinearAdvanceProof, linear_advance_holds

    alhs, terms = _chain(10)
    leaves = [merkle.leaf_hash(a) for a in alhs[:8]]  # the target's binary-linking tree holds txs 1..8
    root = merkle.root(leaves)
    start, end = 3, 7  # source tree held txs 1..3; source tx is 7

    link = [alhs[start]] + [terms[tx - 1] for tx in range(start + 2, end + 1)]
    paths = [merkle.inclusion_proof(leaves, tx - 1) for tx in range(start + 1, end)]
    assert linear_advance_holds(LinearAdvanceProof(link, paths), start, end, alhs[end - 1], root, 8)
    forged = list(link)
    forged[2] = bytes(32)
    assert not linear_advance_holds(LinearAdvanceProof(forged, paths), start, end, alhs[end - 1], root, 8)
