"""One ledger over three real immudb databases (docs/partitions.md): records land where the rule puts them,
lookups by job and artifact work across partitions, and every way of moving a member out of its place is an
integrity error, never a quieter answer."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from notary import records
from notary.ledger.partitioned._layout import layout_value
from notary.ledger.partitioned._route import LAYOUT_KEY, partition_of
from tests.support.cli import Notary, flip_envelope_byte, last_line
from tests.support.immudb import ImmudbServer, fresh_immudb_url, immudb_user
from tests.support.ledgers import partitioned_url as _partitioned


def _ledger_id(notary: Notary, url: str) -> str:
    return str(notary.run("--json", "--ledger", url, "ledger", "info").json["ledger_id"])


def _admin_set(server: ImmudbServer, url: str, key: str, value: bytes) -> None:
    """The server's own admin writes into one database, no notary in the way."""
    admin = server.admin_client()
    try:
        admin.useDatabase(url.rsplit("/", 1)[1].encode())
        admin.set(key.encode(), value)
    finally:
        admin.shutdown()


def _admin_keys(server: ImmudbServer, url: str, prefix: str) -> set[str]:
    admin = server.admin_client()
    try:
        admin.useDatabase(url.rsplit("/", 1)[1].encode())
        return {k.decode() for k in admin.scan(b"", prefix.encode(), False, 1000)}
    finally:
        admin.shutdown()


@pytest.fixture()
def three(immudb_server: ImmudbServer, tmp_path: Path) -> tuple[Notary, list[str], Path]:
    """A partitioned ledger over three fresh databases, set up with `ledger init`; its user and a key."""
    members = [fresh_immudb_url(immudb_server) for _ in range(3)]
    notary = immudb_user(tmp_path / "ci", _partitioned(members))
    notary.run("ledger", "init")
    return notary, members, notary.key()


def _notarize_many(notary: Notary, key: Path, count: int, job_id: str = "j1") -> list[str]:
    paths = []
    for n in range(count):
        path = notary.root / f"part{n}.bin"
        path.write_bytes(f"artifact {n} of {job_id}\n".encode())
        paths.append(str(path))
    written = notary.run("--json", "notarize", *paths, "--job-id", job_id, "--key", str(key)).json
    return [r["subject"]["digest"] for r in written["records"]]


def test_records_land_in_their_partition_and_read_back_across_all_three(
        three: tuple[Notary, list[str], Path], immudb_server: ImmudbServer) -> None:
    notary, members, key = three
    digests = _notarize_many(notary, key, 9)
    homes = {d: partition_of(d, 3) for d in digests}
    assert len(set(homes.values())) == 3, "nine digests should reach every partition"
    for digest, home in homes.items():
        for index, member in enumerate(members):
            held = _admin_keys(immudb_server, member, records.subject_prefix(digest))
            assert bool(held) == (index == home), f"{digest} found in partition {index}, home {home}"
    for digest in digests:
        notary.run("verify", digest, "--key", f"{key}.pub")
    found = notary.run("--json", "lookup", "--job-id", "j1").json
    listed = {s["digest"] for hit in found["results"] for s in hit["subjects"]}
    assert listed == set(digests)
    notary.run("revoke", digests[4], "--key", str(key), "--reason", "compromised build")
    assert "revoked" in last_line(notary.run("verify", digests[4], "--key", f"{key}.pub", expect=1))
    notary.run("verify", digests[5], "--key", f"{key}.pub")
    info = notary.run("--json", "ledger", "info").json
    assert info["backend"] == "partitioned" and len(info["details"]["partitions"]) == 3
    audited = notary.run("--json", "ledger", "audit").json  # every immudb member replayed into its mirror
    assert audited["ok"] and [p["index"] for p in audited["partitions"]] == [0, 1, 2]


def test_a_second_client_trusts_the_layout_it_checked_in_every_member(
        three: tuple[Notary, list[str], Path], tmp_path: Path) -> None:
    notary, members, key = three
    digest = _notarize_many(notary, key, 1)[0]
    gate = immudb_user(tmp_path / "gate", _partitioned(members))
    result = gate.run("verify", digest, "--key", f"{key}.pub")
    assert "trusting partitioned ledger" in result.err


def test_reordered_members_are_an_integrity_error(three: tuple[Notary, list[str], Path], tmp_path: Path) -> None:
    notary, members, key = three
    digest = _notarize_many(notary, key, 1)[0]
    swapped = [members[1], members[0], members[2]]
    for user in (notary, immudb_user(tmp_path / "fresh", _partitioned(swapped))):
        result = user.run("--ledger", _partitioned(swapped), "verify", digest, "--key", f"{key}.pub", expect=3)
        assert "reordered or swapped" in last_line(result)


def test_an_impostor_member_claiming_the_place_of_another_is_an_integrity_error(
        three: tuple[Notary, list[str], Path], immudb_server: ImmudbServer, tmp_path: Path) -> None:
    """A fresh database whose layout record names itself as partition 2 of the same first two members:
    member 0's layout names the real partition 2, so the two layouts differ."""
    notary, members, key = three
    digest = _notarize_many(notary, key, 1)[0]
    impostor = fresh_immudb_url(immudb_server)
    ids = [_ledger_id(notary, m) for m in members[:2]] + [_ledger_id(notary, impostor)]
    _admin_set(immudb_server, impostor, LAYOUT_KEY, layout_value(ids, 2))
    forged = _partitioned([*members[:2], impostor])
    result = immudb_user(tmp_path / "fresh", forged).run("verify", digest, "--key", f"{key}.pub", expect=3)
    assert "another partitioned ledger" in last_line(result)


def test_a_partition_added_to_move_a_revoked_digest_is_an_integrity_error(
        three: tuple[Notary, list[str], Path], immudb_server: ImmudbServer, tmp_path: Path) -> None:
    """Four members would send digests to other partitions, where their revocations are not: the configured
    count must be the count every layout names."""
    notary, members, key = three
    digests = _notarize_many(notary, key, 6)
    moved = next(d for d in digests if partition_of(d, 4) != partition_of(d, 3))
    notary.run("revoke", moved, "--key", str(key), "--reason", "bad")
    extra = fresh_immudb_url(immudb_server)
    ids = [_ledger_id(notary, m) for m in [*members, extra]]
    _admin_set(immudb_server, extra, LAYOUT_KEY, layout_value(ids, 3))
    for user in (notary, immudb_user(tmp_path / "fresh", _partitioned([*members, extra]))):
        result = user.run("--ledger", _partitioned([*members, extra]), "verify", moved, "--key", f"{key}.pub",
                          expect=3)
        assert "a partition was added or removed" in last_line(result)


def test_a_second_layout_written_into_a_member_is_an_integrity_error(
        three: tuple[Notary, list[str], Path], immudb_server: ImmudbServer) -> None:
    notary, members, key = three
    digest = _notarize_many(notary, key, 1)[0]
    home = partition_of(digest, 3)
    ids = [_ledger_id(notary, m) for m in members]
    ids[0], ids[1] = ids[1], ids[0]
    _admin_set(immudb_server, members[home], LAYOUT_KEY, layout_value(ids, home))
    result = notary.run("verify", digest, "--key", f"{key}.pub", expect=3)
    assert "2 versions" in last_line(result)


def test_a_layout_key_in_a_notary_write_is_refused(three: tuple[Notary, list[str], Path]) -> None:
    from notary.errors import InputError
    from notary.ledger.partitioned._route import split

    with pytest.raises(InputError):
        split({LAYOUT_KEY: b"{}"}, 3)


def test_a_transaction_number_on_a_partitioned_ledger_is_refused_with_what_to_ask_instead(
        three: tuple[Notary, list[str], Path]) -> None:
    notary, _, key = three
    digest = _notarize_many(notary, key, 1)[0]
    result = notary.run("get", "--at-tx", "2", digest, expect=2)
    assert "--at-time" in last_line(result) and "member's URL" in last_line(result)


def test_time_travel_by_date_cuts_every_partition_at_that_time(three: tuple[Notary, list[str], Path]) -> None:
    """As of a time, each member is read as of its own last transaction by then: a revocation after it is not
    yet there, a job written after it is not listed, and the subject's history holds only what stood."""
    import time

    from notary.ledger.base import rfc3339

    notary, _, key = three
    before = _notarize_many(notary, key, 6, job_id="early")
    time.sleep(1.1)  # immudb's transaction times have one-second resolution
    cut = rfc3339(datetime.now(timezone.utc))
    time.sleep(1.1)
    notary.run("revoke", before[0], "--key", str(key), "--reason", "later")
    later = _notarize_many(notary, key, 3, job_id="late")
    then = notary.run("--json", "history", before[0], "--at-time", str(cut)).json["subjects"][0]
    assert [v["status"] for v in then["versions"]] == ["notarized"]
    now = notary.run("--json", "history", before[0]).json["subjects"][0]
    assert [v["status"] for v in now["versions"]] == ["notarized", "revoked"]
    early = notary.run("--json", "lookup", "--job-id", "early", "--at-time", str(cut)).json
    assert {s["digest"] for hit in early["results"] for s in hit["subjects"]} == set(before)
    absent = notary.run("--json", "lookup", "--job-id", "late", "--at-time", str(cut), expect=1)
    assert "Traceback" not in absent.err
    notary.run("history", later[0], "--at-time", str(cut), expect=1)


def test_init_refuses_a_member_that_already_holds_records_and_writes_nothing(
        immudb_server: ImmudbServer, tmp_path: Path) -> None:
    used, empty = fresh_immudb_url(immudb_server), fresh_immudb_url(immudb_server)
    alone = immudb_user(tmp_path / "alone", used)
    alone.notarize_file(alone.key(), b"before partitioning\n")
    result = immudb_user(tmp_path / "ci", _partitioned([used, empty])).run("ledger", "init", expect=2)
    assert "already holds records" in last_line(result)
    assert not _admin_keys(immudb_server, empty, "")


def test_a_member_never_initialized_is_a_usage_error_naming_init(
        immudb_server: ImmudbServer, tmp_path: Path) -> None:
    members = [fresh_immudb_url(immudb_server) for _ in range(2)]
    result = immudb_user(tmp_path / "ci", _partitioned(members)).run("lookup", "--job-id", "j1", expect=2)
    assert "ledger init" in result.err


def test_embedded_members_partition_the_same_way(tmp_path: Path) -> None:
    """The rule does not care what a member is: three embedded files, no server."""
    members = [(tmp_path / f"p{n}.db").as_uri() for n in range(3)]
    notary = Notary(tmp_path / "ci", ledger_url=_partitioned(members))
    notary.root.mkdir()
    notary.run("ledger", "init")
    key = notary.key()
    digests = _notarize_many(notary, key, 6, job_id="edge")
    for digest in digests:
        notary.run("verify", digest, "--key", f"{key}.pub")
    found = notary.run("--json", "lookup", "--job-id", "edge").json
    assert {s["digest"] for hit in found["results"] for s in hit["subjects"]} == set(digests)
    listed = notary.run("--json", "key", "list").json
    assert listed["keys"][0]["notarizations"] == 6
    audited = notary.run("--json", "ledger", "audit").json
    assert audited["ok"] and len(audited["partitions"]) == 3 and audited["entries"] >= 6 * 2


def test_an_envelope_byte_flipped_in_one_member_fails_the_whole_ledgers_audit(tmp_path: Path) -> None:
    members = [tmp_path / f"p{n}.db" for n in range(3)]
    notary = Notary(tmp_path / "ci", ledger_url=_partitioned([m.as_uri() for m in members]))
    notary.root.mkdir()
    notary.run("ledger", "init")
    key = notary.key()
    digests = _notarize_many(notary, key, 6)
    home = members[partition_of(digests[0], 3)]
    assert flip_envelope_byte(home) >= 1
    assert "does not match" in last_line(notary.run("ledger", "audit", expect=3))


def test_an_embedded_ledger_synced_into_three_partitions_is_found_by_digest_and_job(
        immudb_server: ImmudbServer, tmp_path: Path) -> None:
    """Partitioning an existing ledger: sync it into an empty partitioned one; again, and nothing is copied."""
    device = Notary(tmp_path / "device")
    device.root.mkdir()
    key = device.key()
    digests = _notarize_many(device, key, 6, job_id="edge-7")
    members = [fresh_immudb_url(immudb_server) for _ in range(3)]
    centre = immudb_user(tmp_path / "centre", _partitioned(members))
    centre.run("ledger", "init")
    centre.run("sync", "--from", device.ledger_url, "--to", centre.ledger_url)
    for digest in digests:
        centre.run("verify", digest, "--key", f"{key}.pub")
        assert _admin_keys(immudb_server, members[partition_of(digest, 3)], records.subject_prefix(digest))
    found = centre.run("--json", "lookup", "--job-id", "edge-7").json
    assert {s["digest"] for hit in found["results"] for s in hit["subjects"]} == set(digests)
    again = centre.run("--json", "sync", "--from", device.ledger_url, "--to", centre.ledger_url).json
    assert again["entries_copied"] == 0 and again["behind"] == 0, again
