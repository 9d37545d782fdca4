"""`notary key list`: every key that signed records in a ledger, what and when, proven complete.

Real embedded ledgers written by the real `notary` command (and one of 1,000 records written through the
library, as notarize writes them), edited afterwards as an attacker with write access to the file would; and a
real immudb, where completeness comes from the verified mirror and the mirror opted out is refused.

The ledger in most tests: A (Ed25519) notarizes D (tx 1, job ja), B (ECDSA P-256) notarizes D (tx 2), B revokes
D (tx 3), B reinstates it (tx 4), A notarizes E (tx 5), A attests E (tx 6).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from notary import keys, records
from notary.ledger.embedded import EmbeddedLedger, _map
from notary.ledger.trust import TrustStore
from notary.notarize import signer_index_value
from tests.support.cli import Notary, flip_envelope_byte
from tests.support.immudb import ImmudbServer
from tests.support.immudb_fixtures import fresh_database  # noqa: F401 - fixture "url"
from tests.support.local_ledger import sql

PROVENANCE = "https://slsa.dev/provenance/v1"


@pytest.fixture
def notary(tmp_path: Path) -> Notary:
    return Notary(tmp_path)


def _ledger(notary: Notary) -> dict[str, str]:
    a, b = notary.key("a"), notary.key("b", "ecdsa-p256")
    artifact, d = notary.notarize_file(a, b"release 7\n", job_id="ja")
    notary.run("notarize", str(artifact), "--job-id", "jb", "--key", str(b))
    notary.run("revoke", d, "--reason", "CVE-2026-1212", "--key", str(b))
    notary.run("notarize", str(artifact), "--job-id", "jb2", "--key", str(b), "--reinstate", "--reason", "fixed")
    _, e = notary.notarize_file(a, b"release 8\n", name="e.bin", job_id="je")
    predicate = notary.root / "prov.json"
    predicate.write_text(json.dumps({"buildDefinition": {"buildType": "https://example.com/build/v1",
                                                         "externalParameters": {}},
                                     "runDetails": {"builder": {"id": "https://builder.example/ci"}}}))
    notary.run("attest", e, "--predicate-type", PROVENANCE, "--predicate", str(predicate), "--key", str(a),
               "--name", "registry.example.com/team/app")
    show = {k: notary.run("--json", "key", "show", f"{notary.root / k}.key.pub").json["key_id"] for k in "ab"}
    return {"a": show["a"], "b": show["b"], "d": d, "e": e}


def _by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k["key_id"]: k for k in doc["keys"]}


def test_lists_every_signer_by_the_key_show_fingerprint_with_counts_and_proven_times(notary: Notary) -> None:
    ids = _ledger(notary)
    doc = notary.run("--json", "key", "list", "--ledger", notary.ledger_url).json
    assert doc["complete"] and doc["method"] == "key-index" and doc["to_tx"] == 6 and not doc["judged"]
    a, b = _by_id(doc)[ids["a"]], _by_id(doc)[ids["b"]]
    assert [k["key_id"] for k in doc["keys"]] == [ids["a"], ids["b"]]  # by first use
    assert (a["type"], a["notarizations"], a["revocations"], a["reinstatements"], a["attestations"]) == (
        "ed25519", 2, 0, 0, 1)
    assert (b["type"], b["notarizations"], b["revocations"], b["reinstatements"], b["attestations"]) == (
        "ecdsa-p256", 1, 1, 1, 0)
    assert (a["first"]["tx"], a["last"]["tx"], b["first"]["tx"], b["last"]["tx"]) == (1, 6, 2, 4)
    assert a["trusted"] is None and a["roles"] is None and a["not_counted"] is None
    times = {c["tx"]: c["time"] for c in notary.run("--json", "audit", "diff").json["changes"]}
    assert (a["first"]["time"], b["first"]["time"], b["last"]["time"]) == (times[1], times[2], times[4])
    assert a["last"]["time"] == notary.run("--json", "ledger", "info").json["head"]["time"]  # tx 6, the head
    table = notary.run("key", "list").out  # the global NOTARY_LEDGER; a table with the full fingerprints
    assert ids["a"] in table and ids["b"] in table and "proven complete (key-index)" in table
    assert "ecdsa-p256" in table and "TRUST" not in table


def test_attack_record_signed_by_an_untrusted_key_is_shown_untrusted_never_counted_as_trusted(
        notary: Notary) -> None:
    ids = _ledger(notary)
    doc = notary.run("--json", "key", "list", "--key", str(notary.root / "a.key.pub")).json
    a, b = _by_id(doc)[ids["a"]], _by_id(doc)[ids["b"]]
    assert doc["judged"] and a["trusted"] is True and a["not_counted"] == 0 and a["roles"] == ["notarize", "revoke"]
    assert b["trusted"] is False and b["roles"] is None and b["not_counted"] == b["records"] == 3
    assert b["after_not_after"] is None
    table = notary.run("key", "list", "--key", str(notary.root / "a.key.pub")).out
    line = next(x for x in table.splitlines() if x.startswith(ids["b"]))
    assert "NOT trusted" in line


def test_policy_roles_and_not_after_count_the_records_that_count_for_nothing(notary: Notary) -> None:
    ids = _ledger(notary)
    cut = notary.run("--json", "audit", "diff", "--to", "1").json["changes"][0]["time"]  # tx 1's proven time
    unused = notary.key("c")
    (notary.root / "policy.toml").write_text(f"""
[[policy.trust]]
images = ["registry.example.com/team/*"]
keys = [{{ path = "a.key.pub", roles = ["notarize"], not_after = "{cut}" }},
        {{ path = "b.key.pub", roles = ["revoke"] }}]

[[policy.trust]]
images = ["*"]
keys = ["{unused.name}.pub"]
""")
    doc = notary.run("--json", "key", "list", "--policy", str(notary.root / "policy.toml")).json
    by = _by_id(doc)
    a, b, c = by[ids["a"]], by[ids["b"]], by[keys.key_id(keys.load_public_key(Path(f"{unused}.pub")))]
    assert a["trusted"] and a["roles"] == ["notarize"] and a["not_after"] == {"notarize": cut}
    assert (a["after_not_after"], a["not_counted"]) == (2, 2)  # tx 5 notarization and tx 6 attestation
    assert a["images"] == ["registry.example.com/team/*"]
    assert b["roles"] == ["revoke"] and (b["after_not_after"], b["not_counted"]) == (0, 2)  # it may not notarize
    assert c["trusted"] and c["records"] == 0 and c["first"] is None and c["type"] == "ed25519"
    assert doc["keys"][-1]["key_id"] == c["key_id"]  # a trusted key that never signed: listed last
    table = notary.run("key", "list", "--policy", str(notary.root / "policy.toml")).out
    assert "2 after not_after (count for nothing)" in table and f"notarize until {cut}" in table


def test_key_and_policy_together_or_a_bad_key_are_one_line_usage_errors(notary: Notary) -> None:
    _ledger(notary)
    (notary.root / "p.toml").write_text('[[policy.trust]]\nimages = ["*"]\nkeys = ["a.key.pub"]\n')
    for args in (["--key", "a.key.pub", "--policy", "p.toml"], ["--key", "missing.pub"],
                 ["--policy", "missing.toml"]):
        failed = notary.run("key", "list", *args, expect=2)
        assert len(failed.err.strip().splitlines()) == 1 and "Traceback" not in failed.err, (args, failed.err)


def test_an_empty_ledger_lists_no_key(notary: Notary) -> None:
    notary.run("ledger", "init")
    doc = notary.run("--json", "key", "list").json
    assert doc["keys"] == [] and doc["to_tx"] == 0 and doc["complete"]
    assert "no key has signed" in notary.run("key", "list").out


def _signer_index_node(db: Path, digest: str) -> tuple[object, bytes]:
    """The stored key index leaf node of signers/<digest>: what the signer set's proof is read from."""
    want = _map.key_hash(records.signer_index_key(digest))
    with sqlite3.connect(db) as con:
        (found,) = [(n, bytes(leaf)) for n, _, leaf in con.execute("SELECT node, hash, leaf FROM map_nodes")
                    if leaf is not None and bytes(leaf).startswith(want)]
    return found


def test_attack_key_index_row_deleted_is_an_integrity_error(notary: Notary) -> None:
    ids = _ledger(notary)
    notary.run("key", "list")
    before = notary.trusted_state()
    node, _ = _signer_index_node(notary.ledger_path, ids["d"])
    sql(notary.ledger_path, "DELETE FROM map_nodes WHERE node = ?", node)
    failed = notary.run("--json", "key", "list", expect=3)
    assert json.loads(failed.out)["error"]["kind"] in ("proof", "integrity") and "Traceback" not in failed.err
    assert notary.trusted_state() == before


def test_attack_key_index_row_edited_is_an_integrity_error(notary: Notary) -> None:
    ids = _ledger(notary)
    node, leaf = _signer_index_node(notary.ledger_path, ids["d"])
    sql(notary.ledger_path, "UPDATE map_nodes SET leaf = ? WHERE node = ?", leaf[:-1] + bytes([leaf[-1] ^ 1]), node)
    failed = notary.run("key", "list", expect=3)
    assert "key index" in failed.err and len(failed.err.strip().splitlines()) == 1


def test_attack_signer_set_version_deleted_is_an_integrity_error(notary: Notary) -> None:
    """Deleting B's version of signers/D (to hide that B ever wrote about D) leaves a hole in the log."""
    _ledger(notary)
    sql(notary.ledger_path, "DELETE FROM entries WHERE tx = 2 AND key LIKE 'signers/%'")
    assert "missing" in notary.run("key", "list", expect=3).err


def test_attack_whole_signer_deleted_from_the_file_is_an_integrity_error(notary: Notary) -> None:
    """Every row B wrote removed: the list must not simply become shorter."""
    ids = _ledger(notary)
    sql(notary.ledger_path, "DELETE FROM entries WHERE tx IN (2, 3, 4)")
    failed = notary.run("key", "list", expect=3)
    assert ids["b"] not in failed.out and "missing" in failed.err


def test_attack_record_edited_is_an_integrity_error_not_a_list(notary: Notary) -> None:
    _ledger(notary)
    assert flip_envelope_byte(notary.ledger_path) > 0
    failed = notary.run("key", "list", expect=3)
    assert failed.out == "" and len(failed.err.strip().splitlines()) == 1


def _thousand(path: Path, state: Path, n: int = 1000) -> dict[str, int]:
    """n notarizations by 5 keys, ten per transaction, written as `notary notarize` writes them."""
    signers = [keys.generate_private_key("ed25519" if i % 2 else "ecdsa-p256") for i in range(5)]
    ledger = EmbeddedLedger.open(path.as_uri(), trust=TrustStore(state), create=True)
    counts: dict[str, int] = {}
    txs = []
    for t in range(0, n, 10):
        kvs: dict[str, bytes] = {}
        for i in range(t, min(n, t + 10)):
            signer = signers[i % 5]
            sid = keys.key_id(signer)
            digest = "sha256:" + hashlib.sha256(str(i).encode()).hexdigest()
            record = records.new_record("notarization", {"digest": digest, "name": f"app-{i}"}, signer,
                                        ci={"system": "local", "jobId": str(i)})
            kvs[records.subject_key(digest, sid)] = records.sign_record(record, signer)
            kvs[records.signer_index_key(digest)] = signer_index_value(sid)
            counts[sid] = counts.get(sid, 0) + 1
        txs.append(kvs)
    ledger.write_batch(txs)
    ledger.close()
    return counts


def test_a_thousand_records_are_all_counted(notary: Notary, tmp_path: Path) -> None:
    counts = _thousand(notary.ledger_path, tmp_path / "writer-state")
    doc = notary.run("--json", "key", "list").json
    assert {k["key_id"]: k["notarizations"] for k in doc["keys"]} == counts and doc["to_tx"] == 100
    assert {k["type"] for k in doc["keys"]} == {"ed25519", "ecdsa-p256"}


@pytest.mark.parametrize("via", ["grpc", "gateway"])
def test_immudb_is_complete_by_the_mirror_and_refused_without_it(url: str, tmp_path: Path, via: str,
                                                                immudb_server: ImmudbServer) -> None:
    user = Notary(tmp_path, ledger_url=url)
    user.env["NOTARY_IMMUDB_PASSWORD"] = immudb_server.password
    if via == "gateway":  # the same ledger over immudb's HTTP gateway, the mirror over it
        user.env["NOTARY_IMMUDB_GATEWAY"] = immudb_server.gateway_url
    a, b = user.key("a"), user.key("b")
    _, d = user.notarize_file(a, b"release 1", job_id="j1")
    user.run("revoke", d, "--reason", "CVE-2026-7", "--key", str(b))
    doc = user.run("--json", "key", "list", "--key", f"{a}.pub").json
    assert doc["method"] == "mirror-replay" and doc["complete"]
    by = _by_id(doc)
    ida, idb = (keys.key_id(keys.load_public_key(Path(f"{k}.pub"))) for k in (a, b))
    assert (by[ida]["notarizations"], by[ida]["trusted"], by[idb]["revocations"], by[idb]["trusted"]) == (
        1, True, 1, False)
    assert by[idb]["first"]["tx"] == by[idb]["last"]["tx"] > by[ida]["first"]["tx"]
    refused = user.run("key", "list", env={"NOTARY_IMMUDB_MIRROR": "0"}, expect=2)
    assert "needs the verified mirror" in refused.err


def test_a_format_v1_ledger_is_listed_complete_by_its_log(tmp_path: Path) -> None:
    """A ledger written by notary 0.1 has no key index: the list is proven by the log range alone."""
    root = tmp_path / "v1"
    shutil.copytree(Path(__file__).parent / "fixtures" / "ledger-v1", root)
    (root / "ledger.db.key").chmod(0o600)
    notary = Notary(root)
    doc = notary.run("--json", "key", "list", "--key", "ci.key.pub").json
    (ci,) = doc["keys"]
    assert doc["method"] == "log-range" and ci["trusted"] and ci["revocations"] == 1 and ci["notarizations"] >= 2
    assert ci["key_id"] == keys.key_id(keys.load_public_key(root / "ci.key.pub"))
