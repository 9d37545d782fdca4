"""`notary sync`: an edge ledger copied to the centre's (a real immudb, or another embedded ledger), verified on
both sides, and resumable: each attack or fault below is named after what it tries (kill -9 mid-sync, a
tampered source, a source rolled back after a sync, a forged cursor at the destination)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from notary import sync as syncing
from notary.ledger import open_ledger
from tests.support.cli import Notary, flip_envelope_byte
from tests.support.immudb_fixtures import fresh_database  # noqa: F401 - the fixture "url"


def _edge(tmp_path: Path, records: int) -> tuple[Notary, Path, list[str]]:
    """An edge device's embedded ledger with `records` notarizations (one transaction each) and a revocation."""
    edge = Notary(tmp_path / "edge")
    edge.root.mkdir(parents=True)
    key = edge.key()
    digests = [edge.notarize_file(key, f"build {i}".encode(), name=f"a{i}.bin", job_id=f"j{i}")[1]
               for i in range(records)]
    edge.run("revoke", digests[0], "--reason", "CVE-2026-1", "--key", str(key))
    return edge, key, digests


def _versions(url: str, state: Path, keys: list[str]) -> dict[str, list[bytes]]:
    ledger = open_ledger(url, state_dir=state, create=False)
    try:
        return {k: [e.value for e in ledger.history(k)] for k in keys}
    finally:
        ledger.close()


def _source_keys(edge: Notary) -> list[str]:
    ledger = open_ledger(edge.ledger_url, state_dir=edge.root / "lister", create=False)
    try:
        return [k for p in ("subject/", "job/", "artifact/", "signers/") for k in ledger.keys(p)]
    finally:
        ledger.close()


def _centre(tmp_path: Path) -> Notary:
    centre = Notary(tmp_path / "centre", auto_create=False)
    centre.root.mkdir(parents=True)
    centre.run("ledger", "init")
    return centre


def _dest_bytes(centre: Notary) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(centre.root.glob("ledger.db*")) if p.is_file()}


def test_records_are_copied_byte_for_byte_and_found_at_the_centre(tmp_path: Path) -> None:
    edge, key, digests = _edge(tmp_path, 3)
    centre = _centre(tmp_path)
    first = edge.run("--json", "sync", "--to", centre.ledger_url).json
    assert (first["synced_tx"], first["behind"], first["transactions_copied"]) == (4, 0, 4)
    # packed: the three notarizations in one destination transaction, the revocation (which writes a key
    # again) in the next: every version of every key still arrives, in order (checked below)
    assert first["transactions_written"] == 2
    again = edge.run("--json", "sync", "--to", centre.ledger_url).json
    assert again["transactions_copied"] == again["transactions_written"] == 0 and again["synced_tx"] == 4
    status = edge.run("--json", "sync", "--to", centre.ledger_url, "--status").json
    assert (status["synced_tx"], status["behind"]) == (4, 0)

    keys = _source_keys(edge)
    assert _versions(centre.ledger_url, tmp_path / "s1", keys) == _versions(edge.ledger_url, tmp_path / "s2", keys)
    pub = f"{key}.pub"
    centre.run("verify", str(edge.root / "a1.bin"), "--key", pub)
    centre.run("verify", str(edge.root / "a0.bin"), "--key", pub, expect=1)  # the revocation came along
    found = centre.run("--json", "lookup", "--job-id", "j2").json
    assert digests[2] in json.dumps(found)


def test_new_records_on_the_edge_are_sent_on_the_next_run_and_status_says_how_far_behind(tmp_path: Path) -> None:
    edge, key, _ = _edge(tmp_path, 2)
    centre = _centre(tmp_path)
    edge.run("sync", "--to", centre.ledger_url)
    edge.notarize_file(key, b"later", name="later.bin", job_id="j9")
    behind = edge.run("--json", "sync", "--to", centre.ledger_url, "--status").json
    assert behind["behind"] == 1
    assert edge.run("--json", "sync", "--to", centre.ledger_url).json["transactions_copied"] == 1
    centre.run("verify", str(edge.root / "later.bin"), "--key", f"{key}.pub")


def _bulk_edge(tmp_path: Path, records: int) -> Notary:
    """An edge ledger with `records` notarizations, one transaction each, written through the library (fast)."""
    from notary import keys
    from notary.notarize import notarize
    from notary.sources.base import Subject

    edge = Notary(tmp_path / "edge")
    edge.root.mkdir(parents=True)
    key = keys.generate_private_key()
    ledger = open_ledger(edge.ledger_url, state_dir=edge.state_dir, create=True)
    try:
        for i in range(records):
            notarize(ledger, [Subject("sha256:" + f"{i:064x}", f"registry.example/app:{i}", "oci-manifest")], key,
                     {"system": "local", "jobId": f"j{i}"})
    finally:
        ledger.close()
    return edge


@pytest.mark.slow
def test_kill_9_mid_sync_and_a_second_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    edge = _bulk_edge(tmp_path, 400)
    centre = _centre(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "notary.cli.main", "sync", "--to", centre.ledger_url,
                             "--batch", "1"], env=edge.env, cwd=edge.root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    source = open_ledger(edge.ledger_url, state_dir=tmp_path / "p1", create=False)
    key = syncing.cursor_key(source.info().ledger_id)
    source.close()
    watcher = open_ledger(centre.ledger_url, state_dir=tmp_path / "p2", create=False)
    deadline = time.monotonic() + 60
    try:  # kill as soon as the first few source transactions have landed: mid-sync, mid-batch very likely
        while ((c := watcher.get(key)) is None or json.loads(c.value)["tx"] < 5) and time.monotonic() < deadline:
            time.sleep(0.001)
    finally:
        watcher.close()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = edge.run("--json", "sync", "--to", centre.ledger_url, "--status").json
    assert 0 < status["synced_tx"] < 400, "the kill must land mid-sync for this test to mean anything"
    edge.run("sync", "--to", centre.ledger_url)
    keys = _source_keys(edge)
    assert _versions(centre.ledger_url, tmp_path / "s1", keys) == _versions(edge.ledger_url, tmp_path / "s2", keys)


def test_a_tampered_source_is_exit_3_with_nothing_written(tmp_path: Path) -> None:
    edge, _, _ = _edge(tmp_path, 3)
    centre = _centre(tmp_path)
    before = _dest_bytes(centre)
    assert flip_envelope_byte(edge.ledger_path) >= 1
    result = edge.run("sync", "--to", centre.ledger_url, expect=3)
    lines = [line for line in result.err.strip().splitlines() if "(first use)" not in line]  # the centre's TOFU
    assert "Traceback" not in result.err and len(lines) == 1 and "proof" in lines[0], result.err
    assert _dest_bytes(centre) == before


def test_a_source_rolled_back_after_a_sync_is_an_integrity_error_even_for_a_new_client(tmp_path: Path) -> None:
    edge, key, _ = _edge(tmp_path, 2)
    backup = tmp_path / "backup.db"
    backup.write_bytes(edge.ledger_path.read_bytes())
    edge.notarize_file(key, b"later", name="later.bin", job_id="j9")
    centre = _centre(tmp_path)
    edge.run("sync", "--to", centre.ledger_url)
    edge.ledger_path.write_bytes(backup.read_bytes())  # the device's ledger restored from an older copy
    for wal in edge.root.glob("ledger.db-*"):
        wal.unlink()
    fresh = {"NOTARY_STATE_DIR": str(tmp_path / "another-machine")}  # no trusted state of the source to object
    for args in (("sync", "--to", centre.ledger_url), ("sync", "--to", centre.ledger_url, "--status")):
        result = edge.run(*args, env=fresh, expect=3)
        assert "source" in result.err and "Traceback" not in result.err


def test_a_forged_cursor_at_the_destination_is_an_integrity_error(tmp_path: Path) -> None:
    edge, _, _ = _edge(tmp_path, 2)
    centre = _centre(tmp_path)
    edge.run("sync", "--to", centre.ledger_url)
    source = open_ledger(edge.ledger_url, state_dir=tmp_path / "s", create=False)
    source_id = source.info().ledger_id
    source.close()
    dest = open_ledger(centre.ledger_url, state_dir=tmp_path / "w", create=False)
    try:  # someone with write access to the centre claims the edge's tx 2 had another head
        dest.write({syncing.cursor_key(source_id): syncing.Cursor(source_id, 2, 6, b"\x11" * 32).to_bytes()})
    finally:
        dest.close()
    assert "rewritten" in edge.run("sync", "--to", centre.ledger_url, expect=3).err
    dest = open_ledger(centre.ledger_url, state_dir=tmp_path / "w", create=False)
    try:  # and a cursor that is not one at all
        dest.write({syncing.cursor_key(source_id): b'{"schema":"notary.sync-cursor/v1","tx":"2"}'})
    finally:
        dest.close()
    assert "not a sync cursor" in edge.run("sync", "--to", centre.ledger_url, "--status", expect=3).err


def test_bad_usage_is_one_line_exit_2_and_a_missing_destination_is_never_created(tmp_path: Path) -> None:
    edge, _, _ = _edge(tmp_path, 1)
    centre = _centre(tmp_path)
    assert "two different ledgers" in edge.run("sync", "--to", edge.ledger_url, expect=2).err
    edge.run("sync", "--to", centre.ledger_url, "--batch", "0", expect=2)
    missing = edge.run("sync", "--to", (tmp_path / "absent.db").as_uri(), expect=None)
    assert missing.code == 4 and "no ledger" in missing.err and not (tmp_path / "absent.db").exists()


@pytest.mark.integration
def test_sync_to_a_real_immudb_is_complete_resumable_and_found_by_digest_and_job(tmp_path: Path, url: str) -> None:
    edge, key, digests = _edge(tmp_path, 4)
    immudb_env = {"NOTARY_IMMUDB_PASSWORD": "immudb"}
    edge.env.update(immudb_env)
    done = edge.run("--json", "sync", "--to", url, "--batch", "2").json
    assert done["synced_tx"] == 5 and done["transactions_copied"] == 5
    assert done["transactions_written"] == 3  # batches of two source transactions, each packed into one
    assert edge.run("--json", "sync", "--to", url).json["transactions_copied"] == 0
    centre = Notary(tmp_path / "centre", ledger_url=url)
    centre.root.mkdir(parents=True)
    centre.env.update(immudb_env)
    pub = f"{key}.pub"
    centre.run("verify", str(edge.root / "a3.bin"), "--key", pub)
    centre.run("verify", str(edge.root / "a0.bin"), "--key", pub, expect=1)
    assert digests[1] in json.dumps(centre.run("--json", "lookup", "--job-id", "j1").json)
    keys = _source_keys(edge)
    assert _versions(edge.ledger_url, tmp_path / "s2", keys) == _immudb_versions(url, tmp_path / "s3", keys)
    # back the other way: the centre's transactions that came from this edge are not copied back to it
    back = centre.run("--json", "sync", "--from", url, "--to", edge.ledger_url).json
    assert back["transactions_copied"] == 3 and back["entries_copied"] == 0
    assert _versions(edge.ledger_url, tmp_path / "s4", keys) == _immudb_versions(url, tmp_path / "s5", keys)


@pytest.mark.integration
def test_a_revocation_written_at_the_centre_reaches_an_offline_device(tmp_path: Path, url: str) -> None:
    """Centre to device: the device's records went up, a revocation was written at the centre (by the
    release team's key), and the reverse sync brings it down, so the device's own gate refuses the image."""
    edge, key, digests = _edge(tmp_path, 2)
    edge.env["NOTARY_IMMUDB_PASSWORD"] = "immudb"
    edge.run("sync", "--to", url)
    centre = Notary(tmp_path / "centre", ledger_url=url)
    centre.root.mkdir(parents=True)
    centre.env["NOTARY_IMMUDB_PASSWORD"] = "immudb"
    centre.run("revoke", digests[1], "--reason", "CVE-2026-77", "--key", str(key))
    edge.run("verify", str(edge.root / "a1.bin"), "--key", f"{key}.pub")  # not known on the device yet
    down = edge.run("--json", "sync", "--from", url, "--to", edge.ledger_url).json
    assert down["entries_copied"] >= 1 and down["behind"] == 0
    refused = edge.run("verify", str(edge.root / "a1.bin"), "--key", f"{key}.pub", expect=1)
    assert "CVE-2026-77" in refused.out + refused.err
    again = edge.run("--json", "sync", "--from", url, "--to", edge.ledger_url).json
    assert again["transactions_copied"] == 0
    # and up again: the revocation came from the centre, so it is not sent back to it
    up = edge.run("--json", "sync", "--to", url).json
    assert up["entries_copied"] == 0, up

    with_mirror_off = edge.run("sync", "--from", url, "--to", edge.ledger_url,
                               env={"NOTARY_IMMUDB_MIRROR": "0"}, expect=2)
    assert "verified mirror" in with_mirror_off.err


def _immudb_versions(url: str, state: Path, keys: list[str]) -> dict[str, list[bytes]]:
    import os

    os.environ["NOTARY_IMMUDB_PASSWORD"] = "immudb"
    try:
        return _versions(url, state, keys)
    finally:
        del os.environ["NOTARY_IMMUDB_PASSWORD"]
