"""Review attacks on this session's guarantees: the key index (reads, the writer, the upgrade), revocation
ties, key roles and not_after, and name binding. Real SQLite files edited behind notary's back, real CLI
processes. Each test asserts the secure outcome."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from notary import keys, records
from notary.errors import ProofError
from notary.ledger import open_ledger
from notary.ledger.embedded import EmbeddedLedger, _map
from notary.ledger.trust import TrustStore
from notary.notarize import notarize, revoke
from notary.sources.base import Artifact, Subject
from notary.verify import MAX_TIES, verify_digest
from tests.support.cli import Notary
from tests.support.runtimes import GateWorld

FIXTURE = Path(__file__).parent / "fixtures" / "ledger-v1"
CI = {"system": "local", "jobId": "review"}


def _sql(db: Path, statement: str, *args: object) -> int:
    con = sqlite3.connect(db)
    try:
        changed = con.execute(statement, args).rowcount
        con.commit()
        return changed
    finally:
        con.close()


def _rows(db: Path, query: str, *args: object) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(query, args).fetchall()
    finally:
        con.close()


def _digest(tag: str) -> str:
    return "sha256:" + hashlib.sha256(tag.encode()).hexdigest()


def _open(db: Path, state: Path, *, create: bool = False) -> EmbeddedLedger:
    return EmbeddedLedger.open(db.as_uri(), trust=TrustStore(state), create=create)


# ------------------------------------------------------------------------------ the writer and the key index


def _kint(key: str) -> int:
    return int.from_bytes(_map.key_hash(key), "big")


def _bit(kint: int, d: int) -> int:
    return (kint >> (255 - d)) & 1


def _walk_end(db: Path, key: str) -> tuple[int, bytes | None]:
    """(depth, leaf content) where key's walk through the stored index ends."""
    nodes = {_map.key_node(n): leaf for n, _, leaf in _rows(db, "SELECT node, hash, leaf FROM map_nodes")}
    kint = _kint(key)
    for d in range(257):
        n = (1 << d) | (kint >> (256 - d))
        if n not in nodes:
            return d, None
        if nodes[n] is not None:
            return d, nodes[n]
    raise AssertionError("walk did not end")


def test_key_index_row_planted_below_a_leaf_cannot_corrupt_the_next_write(tmp_path: Path) -> None:
    """Rows planted under a one-key leaf are invisible to reads and to the writer's check of the signed root.
    When an honest write then splits that leaf, the writer assumes the siblings it did not load are empty:
    it must not commit an index whose stored nodes contradict the root it signs."""
    db, state = tmp_path / "l.db", tmp_path / "state"
    with _open(db, state, create=True) as ledger:
        for n in range(6):
            ledger.write({f"k{n}": b"v"})
    # a new key whose walk ends at another key's leaf at depth d, and which shares bit d with it too, so the
    # split leaves at least one level of unloaded siblings between d and the new leaves
    for i in range(100_000):
        key = f"new{i}"
        d, leaf = _walk_end(db, key)
        if leaf is not None and _bit(int.from_bytes(leaf[:32], "big"), d) == _bit(_kint(key), d):
            break
    else:  # pragma: no cover - a one-in-two event per candidate
        pytest.fail("no candidate key")
    sibling = ((1 << (d + 1)) | (_kint(key) >> (255 - d))) ^ 1
    _sql(db, "INSERT INTO map_nodes (node, hash, leaf) VALUES (?, ?, NULL)", _map.node_key(sibling), b"\x55" * 32)
    with _open(db, state) as ledger:
        assert ledger.get("k1") is not None  # reads do not see the planted row
        before = _rows(db, "SELECT count(*) FROM entries")[0][0]
        try:
            ledger.write_batch([{key: b"honest"}])
        except ProofError:
            # refusing is fine, but only if nothing was committed
            assert _rows(db, "SELECT count(*) FROM entries")[0][0] == before
            return
    with _open(db, state) as ledger:  # committed: then the index must be whole
        assert ledger.get(key) is not None and ledger.get(key).value == b"honest"  # type: ignore[union-attr]
        ledger.audit()


@pytest.mark.parametrize("tamper", [
    # the leaf of k3 moved one level down (same row, child position)
    "move-leaf-down",
    # an interior node given a one-key leaf's content; its stored hash unchanged
    "interior-as-leaf",
    # the root stored under a TEXT node key instead of the integer 1
    "root-key-as-text",
    # the root duplicated under a 33-byte blob key with another hash (the same node number, another type)
    "root-duplicated-as-blob",
    # the head's signed key index root removed
    "null-head-map-root",
    # an unknown storage format
    "format-v3",
])
def test_key_index_storage_tampering_is_exit_3_on_every_read(tmp_path: Path, tamper: str) -> None:
    notary = Notary(tmp_path)
    key = notary.key()
    artifact, digest = notary.notarize_file(key, b"the release\n")
    notary.run("revoke", digest, "--reason", "CVE-2026-0001", "--key", str(key))
    for n in range(4):
        notary.notarize_file(key, b"other %d\n" % n, name=f"o{n}.bin", job_id=f"j{n + 2}")
    notary.run("verify", str(artifact), "--key", f"{key}.pub", expect=1)
    db = notary.ledger_path
    subject = f"subject/{digest}/{keys.key_id(keys.load_public_key(Path(f'{key}.pub')))}"
    depth, leaf = _walk_end(db, subject)
    node = (1 << depth) | (_kint(subject) >> (256 - depth))
    if tamper == "move-leaf-down":
        h = _rows(db, "SELECT hash FROM map_nodes WHERE node = ?", node)[0][0]
        _sql(db, "DELETE FROM map_nodes WHERE node = ?", node)
        _sql(db, "INSERT INTO map_nodes (node, hash, leaf) VALUES (?, ?, ?)", 2 * node, h, leaf)
    elif tamper == "interior-as-leaf":
        assert depth >= 1
        _sql(db, "UPDATE map_nodes SET leaf = ? WHERE node = ?", leaf, node >> 1)
    elif tamper == "root-key-as-text":
        _sql(db, "UPDATE map_nodes SET node = '1' WHERE node = 1")
    elif tamper == "root-duplicated-as-blob":
        _sql(db, "INSERT INTO map_nodes (node, hash, leaf) VALUES (?, ?, NULL)", (1).to_bytes(33, "big"), b"\x11" * 32)
    elif tamper == "null-head-map-root":
        _sql(db, "UPDATE txs SET map_root = NULL WHERE tx = (SELECT max(tx) FROM txs)")
    else:
        _sql(db, "UPDATE meta SET value = 'notary.ledger/v3' WHERE name = 'format'")
    before = notary.trusted_state()
    reads = [("verify", str(artifact), "--key", f"{key}.pub"), ("history", digest),
             ("get", digest, "--key", f"{key}.pub"), ("get", digest, "--key", f"{key}.pub", "--at-tx", "1"),
             ("ledger", "audit")]
    if tamper == "root-duplicated-as-blob":
        reads = reads[-1:]  # reads never fetch a node under the wrong key type; the audit must find it
    for args in reads:
        result = notary.run(*args, expect=None)
        assert result.code == 3, (tamper, args, result.code, result.err)
        assert "Traceback" not in result.err
    assert notary.trusted_state() == before
    # and a write refuses as well, writing nothing
    entries = _rows(db, "SELECT count(*) FROM entries")[0][0] if tamper != "format-v3" else None
    if tamper not in ("root-duplicated-as-blob", "root-key-as-text"):
        result = notary.run("revoke", digest, "--reason", "again", "--key", str(key), expect=None)
        assert result.code == 3, (tamper, result.code, result.err)
        if entries is not None:
            assert _rows(db, "SELECT count(*) FROM entries")[0][0] == entries


# ---------------------------------------------------------------------------------------- reads as of a tx


@pytest.mark.parametrize("statement", [
    "UPDATE entries SET tx = 9 WHERE key = 'k' AND revision = 3",  # the answer hidden past at_tx
    "UPDATE entries SET tx = 3 WHERE key = 'k' AND revision = 4",  # a later version pulled before at_tx
    "DELETE FROM entries WHERE key = 'k' AND revision = 3",  # the answer deleted
    "DELETE FROM entries WHERE key = 'k' AND revision = 4",  # the proof of what came next deleted
    "UPDATE entries SET revision = 0 WHERE key = 'k' AND revision = 3",  # the answer renumbered away
    "UPDATE entries SET revision = 30 WHERE key = 'k' AND revision = 3",  # renumbered above the newest
    "UPDATE entries SET tx = 1 WHERE key = 'k' AND revision = 5",  # the newest claimed from tx 1
])
def test_read_as_of_a_tx_cannot_be_steered_to_another_version(tmp_path: Path, statement: str) -> None:
    db, state = tmp_path / "l.db", tmp_path / "state"
    with _open(db, state, create=True) as ledger:
        for i in range(1, 6):
            ledger.write({"k": b"v%d" % i, f"other/{i}": b"x"})
        assert ledger.get("k", at_tx=3).revision == 3  # type: ignore[union-attr]
    _sql(db, statement)
    trust = sorted((p.name, p.read_bytes()) for p in state.glob("*.json"))
    refused = []
    with _open(db, state) as ledger:
        for at in (1, 2, 3, 4):
            try:
                entry = ledger.get("k", at_tx=at)
            except ProofError:
                refused.append(at)
                continue
            # a read that does not touch the edited row may succeed: then it must be the right version
            assert entry is not None and (entry.revision, entry.value) == (at, b"v%d" % at)
    assert refused, "the edit went unnoticed by every read as of a transaction"
    assert sorted((p.name, p.read_bytes()) for p in state.glob("*.json")) == trust


# ------------------------------------------------------------------------------------------------ upgrade


def test_client_that_trusted_v1_refuses_an_upgraded_copy_with_another_log(tmp_path: Path) -> None:
    """Someone with the ledger key truncates a v1 file, upgrades it and writes other records up to a larger
    size: a client that trusted the v1 head must refuse the v2 head (no consistency), not take it."""
    root = tmp_path / "v1"
    shutil.copytree(FIXTURE, root)
    (root / "ledger.db.key").chmod(0o600)
    reader = Notary(root, state_dir=root / "reader-state")
    reader.run("verify", "app.bin", "--key", "ci.key.pub")
    db = root / "ledger.db"
    last_tx, size = _rows(db, "SELECT tx, tree_size FROM txs ORDER BY tx DESC LIMIT 1")[0]
    _sql(db, "DELETE FROM entries WHERE tx = ?", last_tx)
    _sql(db, "DELETE FROM txs WHERE tx = ?", last_tx)
    kept = _rows(db, "SELECT tree_size FROM txs ORDER BY tx DESC LIMIT 1")[0][0]
    for level in range(64):
        _sql(db, "DELETE FROM nodes WHERE (id >> 48) = ? AND (((id & 0xffffffffffff) + 1) << ?) > ?", level, level,
             kept)
    attacker = _open(db, root / "attacker-state")
    try:
        attacker.upgrade()
        for i in range(size - kept + 2):
            attacker.write({f"forged/{i}": b"x"})
    finally:
        attacker.close()
    before = reader.trusted_state()
    for args in (("verify", "tool.bin", "--key", "ci.key.pub"), ("history", TOOL), ("ledger", "info")):
        result = reader.run(*args, expect=None)
        assert result.code == 3, (args, result.code, result.err)
    assert reader.trusted_state() == before


TOOL = "sha256:8419ff13897cbe37259aafcdf99caa54532b826445935be0fcb71456525ebc26"


# -------------------------------------------------------------------------------------- revocation ties


def test_artifact_index_flooded_with_junk_holders_cannot_hide_a_revoked_index(tmp_path: Path) -> None:
    """The artifact index key is shared by every signer. Someone with any key (no trust needed) fills
    artifact/<manifest> with MAX_TIES junk holders first; the trusted index that really holds the manifest is
    then notarized and revoked. The manifest must still be refused for its revoked index."""
    ledger = open_ledger((tmp_path / "l.db").as_uri(), state_dir=tmp_path / "state")
    trusted, junk_key = keys.generate_private_key(), keys.generate_private_key()
    manifest, index = _digest("manifest"), _digest("index")
    try:
        junk = [Subject(_digest(f"junk{i}"), f"junk{i}", "oci-index",
                        artifacts=(Artifact(manifest, 1, "application/vnd.oci.image.manifest.v1+json", "manifest",
                                            "linux/amd64"),))
                for i in range(MAX_TIES)]
        notarize(ledger, junk, junk_key, CI)  # before the real index exists
        real = [Subject(index, "registry.example/app:1", "oci-index", names=("registry.example/app",),
                        artifacts=(Artifact(manifest, 1, "application/vnd.oci.image.manifest.v1+json",
                                            "manifest", "linux/amd64"),)),
                Subject(manifest, "registry.example/app:1", "oci-manifest", platform="linux/amd64",
                        names=("registry.example/app",))]
        notarize(ledger, real, trusted, CI)
        assert verify_digest(ledger, manifest, [trusted.public_key()]).allowed
        revoke(ledger, index, trusted, "CVE-2026-7777")
        decision = verify_digest(ledger, manifest, [trusted.public_key()])
        assert not decision.allowed and decision.status == "revoked", decision.reason
        assert decision.revocation is not None and decision.revocation.relation == "its index"
    finally:
        ledger.close()


def test_forged_artifact_index_entry_cannot_refuse_an_image_id(tmp_path: Path) -> None:
    """A runtime that knows only the image id X: the gate finds the trusted manifest whose record names X as
    its config through artifact/X. An untrusted writer adds an artifact/X entry naming an unrelated manifest
    that a trusted key revoked (its records never mention X). That entry is a hint with no tie behind it:
    it must not refuse X."""
    world = GateWorld(tmp_path / "world")
    config, real_m, revoked_m = _digest("config"), _digest("real-manifest"), _digest("revoked-manifest")
    world.notarize(Subject(real_m, "registry.example/app:1", "oci-manifest", image_id=config,
                           names=("registry.example/app",),
                           artifacts=(Artifact(config, 1, "application/vnd.oci.image.config.v1+json", "config"),)))
    world.notarize(Subject(revoked_m, "registry.example/other:1", "oci-manifest", names=("registry.example/other",)))
    world.revoke(revoked_m)
    assert world.gate_check(config, "--name", "registry.example/app").returncode == 0
    world.notarize(Subject(revoked_m, "x", "oci-manifest",
                           artifacts=(Artifact(config, 1, "application/vnd.oci.image.config.v1+json", "config"),)),
                   trusted=False)
    result = world.gate_check(config, "--name", "registry.example/app")
    assert result.returncode == 0, result.stderr


def test_forged_artifact_index_entry_cannot_admit_an_image_id(tmp_path: Path) -> None:
    """The other way: artifact/X names a trusted, valid manifest whose record does not name X: X stays refused."""
    world = GateWorld(tmp_path / "world")
    config, good_m = _digest("config"), _digest("good-manifest")
    world.notarize(Subject(good_m, "registry.example/app:2", "oci-manifest", names=("registry.example/app",)))
    world.notarize(Subject(good_m, "x", "oci-manifest",
                           artifacts=(Artifact(config, 1, "application/vnd.oci.image.config.v1+json", "config"),)),
                   trusted=False)
    result = world.gate_check(config, "--name", "registry.example/app")
    assert result.returncode == 1 and "not notarized" in result.stderr, result.stderr


def test_untrusted_revocation_of_a_tied_image_id_does_not_refuse(tmp_path: Path) -> None:
    world = GateWorld(tmp_path / "world")
    manifest, config = _digest("m"), _digest("c")
    world.notarize(Subject(manifest, "registry.example/app:1", "oci-manifest", image_id=config,
                           names=("registry.example/app",)))
    ledger = open_ledger(world.ledger_url, state_dir=world.client_state)
    try:
        revoke(ledger, config, world.untrusted, "not mine to revoke")
    finally:
        ledger.close()
    result = world.gate_check(manifest, "--name", "registry.example/app")
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------- roles and not_after


def _policy(world: GateWorld, keys_toml: str, images: str = '["*"]') -> None:
    world.config.write_text(
        f'ledger = "{world.ledger_url}"\nstate_dir = "{world.gate_state}"\n[policy]\n'
        f'decision_log = "{world.log}"\n[[policy.trust]]\nimages = {images}\nkeys = {keys_toml}\n')


def test_key_listed_twice_keeps_not_after_on_its_notarize_role(tmp_path: Path) -> None:
    """A key retired as a notarizer (not_after in the past) but kept as a revoker in the same rule: its new
    notarizations must not count. Merging the two entries must not drop the notarize role's end."""
    world = GateWorld(tmp_path / "world")
    _policy(world, '[{ path = "trusted.key.pub", roles = ["revoke"] }, '
                   '{ path = "trusted.key.pub", roles = ["notarize"], not_after = "2020-01-01T00:00:00Z" }]')
    digest = _digest("after-retirement")
    world.notarize(Subject(digest, "registry.example/app:1", "oci-manifest", names=("registry.example/app",)))
    result = world.gate_check(digest, "--name", "registry.example/app")
    assert result.returncode == 1, (result.returncode, result.stderr)


def test_revoke_only_key_cannot_lift_its_revocation_by_reinstating(tmp_path: Path) -> None:
    """A reinstatement is an admission: a key without the notarize role cannot make a digest run again."""
    world = GateWorld(tmp_path / "world")
    _policy(world, '["untrusted.key.pub", { path = "trusted.key.pub", roles = ["revoke"] }]')
    digest = _digest("reinstated-by-revoker")
    subject = Subject(digest, "registry.example/app:1", "oci-manifest", names=("registry.example/app",))
    world.notarize(subject, trusted=False)
    assert world.gate_check(digest, "--name", "registry.example/app").returncode == 0
    world.revoke(digest)
    assert world.gate_check(digest, "--name", "registry.example/app").returncode == 1
    ledger = open_ledger(world.ledger_url, state_dir=world.client_state)
    try:
        notarize(ledger, [subject], world.trusted, CI, reinstate="the revoker changed its mind")
    finally:
        ledger.close()
    result = world.gate_check(digest, "--name", "registry.example/app")
    assert result.returncode == 1 and "revoked" in result.stderr, result.stderr


def test_not_after_counts_the_transaction_at_that_instant_and_nothing_later(tmp_path: Path) -> None:
    from notary.status import TrustedKey, decide
    from notary.verify import signer_history

    ledger = open_ledger((tmp_path / "l.db").as_uri(), state_dir=tmp_path / "state")
    signer = keys.generate_private_key()
    digest = _digest("edge")
    try:
        notarize(ledger, [Subject(digest, "app", "file")], signer, CI)
        history = signer_history(ledger, digest, keys.key_id(signer))
        [(_, entry)] = history
        assert entry.time is not None
        at = TrustedKey.of(signer.public_key(), not_after=entry.time)
        assert decide(at, history).status == "notarized"
        before = TrustedKey.of(signer.public_key(), not_after=entry.time - timedelta(microseconds=1))
        assert decide(before, history).status == "absent"
        # a record that claims an old issuedAt but sits in a later transaction: the transaction time decides
        old = records.new_record("revocation", {"digest": digest}, signer, reason="late",
                                 issued_at=datetime(2020, 1, 1, tzinfo=timezone.utc))
        ledger.write({records.subject_key(digest, keys.key_id(signer)): records.sign_record(old, signer)})
        history = signer_history(ledger, digest, keys.key_id(signer))
        assert decide(at, history).status == "notarized"
    finally:
        ledger.close()


# ------------------------------------------------------------------------------------------ name binding


@pytest.mark.parametrize("spelling", ["docker.io/busybox", "index.docker.io/library/busybox"])
def test_docker_hub_spellings_cannot_escape_the_library_rule(tmp_path: Path, spelling: str) -> None:
    """`docker.io/busybox` and `index.docker.io/library/busybox` are `docker.io/library/busybox` to every
    runtime. A key trusted only for the catch-all must not get to admit it under another spelling, past the
    narrower first rule (first match wins)."""
    world = GateWorld(tmp_path / "world")
    world.config.write_text(
        f'ledger = "{world.ledger_url}"\nstate_dir = "{world.gate_state}"\n[policy]\n'
        f'decision_log = "{world.log}"\n'
        '[[policy.trust]]\nimages = ["docker.io/library/*"]\nkeys = ["trusted.key.pub"]\n'
        '[[policy.trust]]\nimages = ["*"]\nkeys = ["untrusted.key.pub"]\n')
    digest = _digest("busybox")
    world.notarize(Subject(digest, f"{spelling}:1", "oci-manifest", names=(spelling,)), trusted=False)
    assert world.gate_check(f"busybox@{digest}").returncode == 1  # the canonical spelling: refused
    result = world.gate_check(f"{spelling}@{digest}")
    assert result.returncode == 1, (result.returncode, result.stderr)
