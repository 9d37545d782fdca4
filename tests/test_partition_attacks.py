"""Attacks on the partitioned ledger (`partitioned:URL1,URL2,...`) over embedded file:// members: every way of
moving, rolling back, duplicating or hiding a member, or of writing around the routing rule, must end in one
error line with the right exit code, never a quieter answer (exit 0 where a revocation or an integrity failure
stands, an absence where there is a record, a traceback).

Tests marked "BUG" assert the correct behaviour and fail on the code as reviewed."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from notary.ledger.partitioned._route import LAYOUT_KEY, partition_of
from tests.support.cli import Notary
from tests.support.cli import last_line as _last
from tests.support.ledgers import EmbeddedPartitions
from tests.support.ledgers import partitioned_url as _url


class Setup(EmbeddedPartitions):
    """Three embedded members initialized as one partitioned ledger, a key, and six notarized files."""

    def __init__(self, root: Path, count: int = 3) -> None:
        super().__init__(root, count)
        self.digests = self.notarize(6, "j1")

    def notarize(self, count: int, job_id: str, notary: Notary | None = None) -> list[str]:
        notary = notary or self.notary
        paths = []
        for n in range(count):
            path = notary.root / f"{job_id}-{n}.bin"
            path.write_bytes(f"artifact {n} of {job_id}\n".encode())
            paths.append(str(path))
        written = notary.run("--json", "notarize", *paths, "--job-id", job_id, "--key", str(self.key)).json
        return [r["subject"]["digest"] for r in written["records"]]

    def in_partition(self, index: int) -> str:
        return next(d for d in self.digests if partition_of(d, len(self.members)) == index)

    def fresh(self, name: str, url: str | None = None) -> Notary:
        user = Notary(self.root / name, ledger_url=url or self.url)
        user.root.mkdir(parents=True)
        return user


@pytest.fixture()
def part(tmp_path: Path) -> Setup:
    setup = Setup(tmp_path)
    assert {partition_of(d, 3) for d in setup.digests} == {0, 1, 2}, "six digests should reach every partition"
    return setup


def _copy_member(path: Path, to: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{path}{suffix}")
        if src.exists():
            shutil.copy2(src, f"{to}{suffix}")


def _restore_member(backup: Path, path: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    _copy_member(backup, path)


# ------------------------------------------------------------------ rollback, deletion, swaps: held


def test_a_member_file_rolled_back_is_an_integrity_error(part: Setup, tmp_path: Path) -> None:
    victim = part.in_partition(1)
    _copy_member(part.paths[1], tmp_path / "p1.backup")
    part.notary.run("revoke", victim, "--key", str(part.key), "--reason", "compromised")
    part.notary.run("verify", victim, "--key", part.pub, expect=1)
    _restore_member(tmp_path / "p1.backup", part.paths[1])
    result = part.notary.run("verify", victim, "--key", part.pub, expect=3)
    assert "rolled back" in _last(result)
    # a job lookup reads every member: the rolled-back one too
    assert part.notary.run("lookup", "--job-id", "j1", expect=3).code == 3


def test_a_member_file_deleted_is_an_integrity_error_for_a_client_that_trusted_it(part: Setup) -> None:
    victim = part.in_partition(2)
    part.notary.run("revoke", victim, "--key", str(part.key), "--reason", "compromised")
    part.paths[2].unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{part.paths[2]}{suffix}").unlink(missing_ok=True)
    result = part.notary.run("verify", victim, "--key", part.pub, expect=3)
    assert "is gone" in _last(result)


def test_a_job_lookup_with_a_member_missing_is_unreachable_not_partial_results(part: Setup) -> None:
    """A fresh client (no pin) cannot tell a deleted file from a missing mount: exit 4, never the other
    members' subjects as the whole answer; notarize likewise writes nothing and creates no member."""
    shutil.move(part.paths[2], part.root / "elsewhere.db")
    fresh = part.fresh("gate")
    result = fresh.run("lookup", "--job-id", "j1", expect=4)
    assert "no ledger at" in _last(result) and not result.out
    fresh.run("notarize", str(part.notary.root / "j1-0.bin"), "--job-id", "j2", "--key", str(part.key), expect=4)
    assert not part.paths[2].exists()


def test_a_member_replaced_by_a_copy_of_another_member_is_an_integrity_error(part: Setup) -> None:
    victim = part.in_partition(2)
    part.notary.run("revoke", victim, "--key", str(part.key), "--reason", "compromised")
    _restore_member(part.paths[1], part.paths[2])
    result = part.notary.run("verify", victim, "--key", part.pub, expect=3)
    assert "was replaced" in _last(result)
    fresh = part.fresh("gate")
    result = fresh.run("verify", victim, "--key", part.pub, expect=3)
    assert "belongs to another partitioned ledger" in _last(result) or "reordered or swapped" in _last(result)


def test_two_members_files_swapped_is_an_integrity_error(part: Setup, tmp_path: Path) -> None:
    victim = part.in_partition(1)
    part.notary.run("revoke", victim, "--key", str(part.key), "--reason", "compromised")
    _copy_member(part.paths[1], tmp_path / "one")
    _restore_member(part.paths[2], part.paths[1])
    _restore_member(tmp_path / "one", part.paths[2])
    assert part.notary.run("verify", victim, "--key", part.pub, expect=3).code == 3
    result = part.fresh("gate").run("verify", victim, "--key", part.pub, expect=3)
    assert "reordered or swapped" in _last(result) or "another partitioned ledger" in _last(result)


# ------------------------------------------------------------------ URL tricks: held


@pytest.mark.parametrize("spelling", ["{d}/x/../p0.db", "{d}/./p0.db", "{d}/alias.db", "FILE://{d}/p0.db",
                                      "file://localhost{d}/p0.db", "{d}/p%30.db"])
def test_one_member_file_at_two_positions_is_an_integrity_error(part: Setup, spelling: str) -> None:
    (part.root / "alias.db").symlink_to(part.paths[0])
    (part.root / "x").mkdir()
    other = spelling.format(d=part.root)
    other = other if "://" in other else "file://" + other
    url = _url([part.members[0], other, part.members[2]])
    for user in (part.notary, part.fresh("gate", url)):
        result = user.run("--ledger", url, "verify", part.in_partition(1), "--key", part.pub, expect=3)
        assert "reordered or swapped" in _last(result)


@pytest.mark.parametrize("shape", ["trailing comma", "empty member", "only one", "nested", "nested upper",
                                   "65 members", "same twice", "empty"])
def test_malformed_partitioned_urls_are_one_usage_error(part: Setup, shape: str) -> None:
    m = part.members
    url = {
        "trailing comma": _url(m) + ",",
        "empty member": _url([m[0], "", m[2]]),
        "only one": _url([m[0]]),
        "nested": _url([m[0], m[1], "partitioned:" + m[2]]),
        "nested upper": _url([m[0], m[1], "PARTITIONED:" + m[2]]),
        "65 members": _url([(part.root / f"q{n}.db").as_uri() for n in range(65)]),
        "same twice": _url([m[0], m[1], m[0]]),
        "empty": "partitioned:",
    }[shape]
    result = part.notary.run("--ledger", url, "verify", part.digests[0], "--key", part.pub, expect=2)
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert "Traceback" not in result.err
    assert not list(part.root.glob("q*.db"))


def test_whitespace_around_members_names_the_same_ledger(part: Setup) -> None:
    url = "partitioned: " + " , ".join(part.members) + " "
    result = part.notary.run("--ledger", url, "verify", part.digests[0], "--key", part.pub)
    assert "trusting partitioned ledger" not in result.err  # the same pin: not a new first use


# ------------------------------------------------------------------ the layout record and its pin: held


def _write_raw(url: str, kvs: dict[str, bytes], state: Path) -> None:
    """A write straight into one embedded member, as anyone holding its signing key can make."""
    from notary.ledger.embedded import EmbeddedLedger
    from notary.ledger.trust import TrustStore

    ledger = EmbeddedLedger.open(url, trust=TrustStore(state), create=True)
    try:
        ledger.write(kvs)
    finally:
        ledger.close()


@pytest.mark.parametrize("value", [b"{not json", b"[]", b"null", b'{"type": "partition"}',
                                   b'{"type":"partition","rule":"digest-prefix-64-mod-v1","layout":[1,2],"index":0}',
                                   b'{"type":"partition","rule":"digest-prefix-64-mod-v1","layout":["a","a"],"index":1}',
                                   b'{"type":"partition","rule":"digest-prefix-64-mod-v1","layout":["a","b"],'
                                   b'"index":"1"}',
                                   b"[" * 5000 + b"]" * 5000,
                                   b'{"type":"partition","rule":"' + b"x" * 100000 + b'","layout":["a","b"],"index":1}'])
def test_a_member_whose_layout_record_is_malformed_is_one_integrity_error(tmp_path: Path, value: bytes) -> None:
    """Member 0 holds a good layout naming both members; member 1 (written by someone holding its key) holds
    only a malformed one: a fresh client's first use is one integrity error naming partition 1."""
    from notary.ledger.embedded import EmbeddedLedger
    from notary.ledger.partitioned._layout import layout_value
    from notary.ledger.trust import TrustStore

    members = [(tmp_path / f"p{n}.db").as_uri() for n in range(2)]
    ids = []
    for m in members:
        ledger = EmbeddedLedger.open(m, trust=TrustStore(tmp_path / "writer"), create=True)
        ids.append(ledger.ledger_id)
        ledger.close()
    _write_raw(members[0], {LAYOUT_KEY: layout_value(ids, 0)}, tmp_path / "writer")
    _write_raw(members[1], {LAYOUT_KEY: value}, tmp_path / "writer")
    gate = Notary(tmp_path / "gate", ledger_url=_url(members))
    gate.root.mkdir()
    result = gate.run("lookup", "--job-id", "j1", expect=3)
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) <= 3, result.err
    assert "partition 1" in _last(result)


def test_a_tampered_layout_pin_is_an_integrity_error(part: Setup) -> None:
    pins = [p for p in part.notary.state_dir.glob("ledger-*.json")
            if json.loads(p.read_text())["ledger_id"].startswith("partitioned-layout:")]
    assert len(pins) == 1
    data = json.loads(pins[0].read_text())
    data["root_hash"] = "00" * 32
    pins[0].write_text(json.dumps(data))
    result = part.notary.run("verify", part.digests[0], "--key", part.pub, expect=3)
    assert "this client trusts" in _last(result)


def test_a_deleted_layout_pin_checks_every_member_again(part: Setup, tmp_path: Path) -> None:
    """Deleting the pin only brings back first use, where every member is checked: an impostor member set up
    meanwhile is still caught."""
    pin = next(p for p in part.notary.state_dir.glob("ledger-*.json")
               if json.loads(p.read_text())["ledger_id"].startswith("partitioned-layout:"))
    pin.unlink()
    other = Setup(tmp_path / "other")
    url = _url([part.members[0], part.members[1], other.members[2]])
    result = part.notary.run("--ledger", url, "verify", part.in_partition(2), "--key", part.pub, expect=3)
    assert "reordered or swapped" in _last(result) or "another partitioned ledger" in _last(result)


def test_a_layout_key_in_a_partitioned_write_is_refused_before_any_member_is_written(part: Setup) -> None:
    from notary.errors import InputError
    from notary.ledger import open_ledger

    ledger = open_ledger(part.url, state_dir=part.notary.state_dir, create=False)
    try:
        before = [p.stat().st_size for p in part.paths]
        with pytest.raises(InputError):
            ledger.write({"subject/" + part.digests[0] + "/x": b"{}", LAYOUT_KEY: b"{}"})
        assert [p.stat().st_size for p in part.paths] == before
    finally:
        ledger.close()


# ------------------------------------------------------------------ writes with one member down: held


def test_notarize_with_one_member_unwritable_is_exit_4_naming_what_was_written(part: Setup) -> None:
    shutil.move(f"{part.paths[2]}.key", part.root / "away.key")
    result = part.notary.run("notarize", *[str(part.notary.root / f"j1-{n}.bin") for n in range(6)],
                             "--job-id", "j2", "--key", str(part.key), expect=4)
    line = _last(result)
    assert "p2.db.key is missing" in line and "already written" in line and "run it again" in line
    shutil.move(part.root / "away.key", f"{part.paths[2]}.key")
    part.notary.run("notarize", *[str(part.notary.root / f"j1-{n}.bin") for n in range(6)],
                    "--job-id", "j2", "--key", str(part.key))
    found = part.notary.run("--json", "lookup", "--job-id", "j2").json
    assert {s["digest"] for hit in found["results"] for s in hit["subjects"]} == set(part.digests)


# ------------------------------------------------------------------ BUGs (fail on the reviewed code)


def test_a_sync_interrupted_by_one_member_still_delivers_the_revocation_on_the_rerun(tmp_path: Path) -> None:
    """BUG. The sync cursor (`sync/...`, an unrouted key) lives in partition 0, which write_batch writes first:
    when a later member's part fails, the cursor has already moved past records that member never got, and the
    next sync says "already in sync". An edge revocation then never reaches the centre: exit 0 trusted there."""
    centre = Setup(tmp_path / "centre")
    edge_url = (tmp_path / "edge.db").as_uri()
    edge = Notary(tmp_path / "edge", ledger_url=edge_url)
    edge.root.mkdir()
    shutil.copy(centre.key, edge.root / "ci.key")
    key = edge.root / "ci.key"
    paths = []
    for n in range(8):
        path = edge.root / f"e{n}.bin"
        path.write_bytes(f"edge artifact {n}\n".encode())
        paths.append(str(path))
    written = edge.run("--json", "notarize", "--create", *paths, "--job-id", "edge", "--key", str(key)).json
    digests = [r["subject"]["digest"] for r in written["records"]]
    centre.notary.run("sync", "--from", edge_url, "--to", centre.url)
    victim = next(d for d in digests if partition_of(d, 3) == 1)
    centre.notary.run("verify", victim, "--key", centre.pub)

    edge.run("revoke", victim, "--key", str(key), "--reason", "compromised at the edge")
    shutil.move(f"{centre.paths[1]}.key", tmp_path / "away.key")  # partition 1 cannot be written for a while
    centre.notary.run("sync", "--from", edge_url, "--to", centre.url, expect=4)
    shutil.move(tmp_path / "away.key", f"{centre.paths[1]}.key")
    centre.notary.run("sync", "--from", edge_url, "--to", centre.url)

    edge.run("verify", victim, "--key", centre.pub, expect=1)
    result = centre.notary.run("verify", victim, "--key", centre.pub, expect=None)
    assert result.code == 1, f"the centre says exit {result.code} for a digest the edge revoked: {result.err}"


def test_a_revocation_written_through_a_member_url_is_not_silently_lost(part: Setup) -> None:
    """BUG. `--ledger <member URL>` (what the point-in-time error tells users to pass) writes into a member as
    if it were a ledger of its own: a revocation of a digest whose home is another partition lands where the
    partitioned ledger never reads it, and both commands exit 0. A member holding partition/layout should
    refuse writes of keys the rule does not give it (or all writes not made through the partitioned URL)."""
    victim = part.in_partition(1)
    member0 = part.members[0]
    wrote = part.notary.run("--ledger", member0, "revoke", victim, "--key", str(part.key), "--reason", "bad",
                            expect=None)
    verdict = part.notary.run("verify", victim, "--key", part.pub, expect=None)
    assert wrote.code != 0 or verdict.code == 1, (
        f"revoke through member 0 exited {wrote.code}, and the partitioned ledger still says exit "
        f"{verdict.code} (trusted) for {victim}")


def test_lookup_as_of_a_tx_on_a_partitioned_ledger_is_a_usage_error(part: Setup) -> None:
    """BUG. Every other point-in-time read of a partitioned ledger is a usage error (each member has its own
    transaction numbers). `lookup --at-tx N` and `history --at-tx N` instead check N against the composite head
    (the members' tx summed) and then filter each member's versions by their own tx: a job written last is
    shown "as of tx 3", exit 0."""
    for n in range(4):  # move partition 0's transaction counter well ahead of the others
        part.notarize(1, f"p0-{n}")
    late = next(d for d in part.digests if partition_of(d, 3) == 1)
    src = next(p for p in part.notary.root.glob("j1-*.bin")
               if "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() == late)
    part.notary.run("notarize", str(src), "--job-id", "written-last", "--key", str(part.key))
    info = part.notary.run("--json", "ledger", "info").json
    member_txs = [p["head"]["tx"] for p in info["details"]["partitions"]]
    at = member_txs[1]  # partition 1's tx of the last write: far below the composite head
    assert at < info["head"]["tx"]
    for args in (("lookup", "--job-id", "written-last", "--at-tx", str(at)),
                 ("history", late, "--at-tx", str(at))):
        result = part.notary.run(*args, expect=None)
        assert result.code == 2 and "no one transaction order" in _last(result), (
            f"notary {' '.join(args)} exited {result.code}:\n{result.out}")


def test_an_init_interrupted_by_one_member_can_be_completed(tmp_path: Path) -> None:
    """BUG (availability). `ledger init` writes the layout member after member; when member 1 cannot be written,
    member 0 keeps its layout and every later `ledger init` refuses: "partition 0 already belongs to a
    partitioned ledger". Init should check every member is writable first, or accept a member already holding
    exactly the layout being written and write only the missing ones."""
    members = [(tmp_path / f"p{n}.db").as_uri() for n in range(2)]
    user = Notary(tmp_path / "ci", ledger_url=_url(members))
    user.root.mkdir()
    for m in members:
        user.run("--ledger", m, "ledger", "init")
    shutil.move(tmp_path / "p1.db.key", tmp_path / "away.key")
    user.run("ledger", "init", expect=4)
    shutil.move(tmp_path / "away.key", tmp_path / "p1.db.key")
    result = user.run("ledger", "init", expect=None)
    assert result.code == 0, _last(result)
