"""Auditors' commands: `history`, `get` (time travel, attestations included) and `lookup` (by CI job or artifact)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict, TypeVar

import click

from notary import keys, records
from notary.cli.common import App, pass_app
from notary.cli.subjects import identify_digests, source_options_flags
from notary.errors import AbsentError, UsageError
from notary.ledger.base import Entry, Ledger, rfc3339, written_by
from notary.lookup import SignerSet, absence_proof, job_keys, lookup_artifact, lookup_job, signer_set
from notary.verify import open_entry

_F = TypeVar("_F", bound=Callable[..., object])


class _Version(TypedDict):
    """One record version as `history` and `get` print it (docs/json.md)."""

    tx: int
    time: str | None
    revision: int
    type: str
    status: str
    issued_at: str
    signer: str
    trusted_signer: bool | None
    reason: str | None
    subject: dict[str, object]
    ci: dict[str, object]
    artifacts: list[dict[str, object]]
    proof: dict[str, object]
    issuedAt: str  # deprecated camelCase names of issued_at and trusted_signer, removed in 0.3 (docs/json.md)
    trustedSigner: bool | None


class _Got(_Version):
    """A record version as `get` lists it: the digest and the name it was asked by, then the version."""

    digest: str
    name: str


class _History(TypedDict):
    """What `history` lists of one digest."""

    digest: str
    name: str
    versions: list[_Version]
    absent: list[dict[str, object]]
    attestations: list[_Attestation]
    signer_set: dict[str, object] | None


class _Opened(TypedDict):
    """What `get` and `history` show of one attestation version, opened and proven."""

    tx: int
    time: str | None
    revision: int
    key: str
    predicate_type: str
    signer: str
    trusted_signer: bool | None
    subjects: list[dict[str, str]]
    proof: dict[str, object]


class _Current(_Opened):
    """The attestation current under one attestation key, as `get` lists it (the envelope left out)."""

    digest: str
    name: str


class _Attestation(_Opened):
    """One attestation version as `history` lists it."""

    type: str
    envelope: dict[str, object]


def _signers(app: App, ledger: Ledger, digest: str, key_paths: tuple[str, ...],
             at_tx: int | None = None) -> tuple[list[str], set[str], SignerSet | None]:
    """Signers to show (all who wrote about digest, proven by its signer index, or just --key ones), which of
    them are trusted, and the signer set read (None with --key)."""
    trusted = {keys.key_id(keys.load_public_key(p)) for p in key_paths}
    if trusted:
        return sorted(trusted), trusted, None
    found = signer_set(ledger, digest, at_tx)
    for signer in found.unindexed:
        click.echo(f"notary: signer {signer} of {digest} is not in its signer index (its records predate it): "
                   "they are read and proven, but their complete removal would go unseen", err=True)
    return found.signers, trusted, found


def as_of_options(f: _F) -> _F:
    """--at-tx / --at-time, as every time-travel read takes them."""
    f = click.option("--at-time", "at_time", metavar="RFC3339",
                     help="As of a time, e.g. 2026-03-01T00:00:00Z: the last transaction written by then.")(f)
    return click.option("--at-tx", "at_tx", type=click.IntRange(min=1), metavar="N",
                        help="As of transaction N: what was written up to it, proven complete.")(f)


def _as_of(ledger: Ledger, at_tx: int | None, at_time: str | None) -> int | None:
    """The transaction a read is as of (None: now). A time before the ledger's first transaction is a proven
    answer (the first leaf's hashed time is later): nothing was recorded then, exit 1, not a usage error."""
    if at_tx and at_time:
        raise UsageError("give --at-tx or --at-time, not both")
    if at_tx is not None:
        from notary.ledger.partitioned import refuse_point_in_time

        refuse_point_in_time(ledger)
    if at_time:
        found = ledger.tx_at_time(records.parse_time(at_time))
        if found is None:
            raise AbsentError(f"nothing was recorded by {at_time}: the ledger's first transaction is later",
                              head=ledger.info().head.to_json())
        return found
    if at_tx is not None and at_tx > (now := ledger.info().head.tx):
        raise UsageError(f"the ledger has no transaction {at_tx} yet (head is tx {now})")
    return at_tx


def _version(entry: Entry, digest: str, signer: str, trusted: set[str]) -> _Version:
    record = open_entry(entry, digest, signer)
    trusted_signer = signer in trusted if trusted else None
    return {
        "tx": entry.tx,
        "time": rfc3339(entry.time),
        "revision": entry.revision,
        "type": record.type,
        "status": record.status,
        "issued_at": record.issued_at,
        "signer": record.signer,
        "trusted_signer": trusted_signer,
        "reason": record.reason,
        "subject": dict(record.subject),
        "ci": dict(record.ci),
        "artifacts": [dict(a) for a in record.artifacts],
        "proof": dict(entry.proof),
        "issuedAt": record.issued_at,
        "trustedSigner": trusted_signer,
    }


def _line(v: _Version) -> str:
    trust = {True: " [trusted]", False: " [NOT trusted]", None: ""}[v["trusted_signer"]]
    job = v["ci"].get("jobId")
    extra = f" reason: {v['reason']}" if v["reason"] else (f" job {v['ci'].get('system')}/{job}" if job else "")
    return f"  tx {v['tx']:>6}  {v['issued_at']}  {v['status']:<9} signer {v['signer'][:19]}…{trust}{extra}"


@click.command("history")
@click.argument("subject")
@click.option("--key", "key_paths", multiple=True, metavar="PUBLIC_KEY", help="Only these signers (and mark them trusted).")
@as_of_options
@source_options_flags
@pass_app
def history(app: App, subject: str, key_paths: tuple[str, ...], at_tx: int | None, at_time: str | None,
            **flags: object) -> None:
    """Every record about SUBJECT, oldest first, each proven included in the ledger (proofs in --json).

    With --at-tx or --at-time: the records that stood then. Every history is proven complete, so nothing
    written by then is left out, and the signer set is read as of that point too.

    \b
    Examples:
      notary history oci:build/layout:v1
      notary history sha256:4f1c... --at-time 2026-03-01T00:00:00Z --key ci.key.pub
    """
    ledger = app.open_ledger()
    at_tx = _as_of(ledger, at_tx, at_time)
    out: list[_History] = []
    for digest, name in identify_digests(app, subject, dict(flags)):
        signers, trusted, found = _signers(app, ledger, digest, key_paths, at_tx)
        versions = [
            _version(entry, digest, signer, trusted)
            for signer in signers
            for entry in ledger.history(records.subject_key(digest, signer))
            if written_by(ledger, entry, at_tx)
        ]
        versions.sort(key=lambda v: (v["tx"], v["signer"]))
        attested = _attestations(ledger, digest, signers, trusted, key_paths, at_tx)
        silent = [s for s in signers if not any(v["signer"] == s for v in versions)]
        keys_absent = [records.subject_key(digest, s) for s in silent]
        if found is not None and not found.signers:
            keys_absent.insert(0, records.signer_index_key(digest))
        absent = [p for k in keys_absent if (p := absence_proof(ledger, k, at_tx)) is not None]
        out.append({"digest": digest, "name": name, "versions": versions, "absent": absent,
                    "attestations": attested, "signer_set": found.to_json() if found is not None else None})
    head = ledger.info().head
    if not any(item["versions"] or item["attestations"] for item in out):
        when = f" as of tx {at_tx}" if at_tx else ""
        raise AbsentError(f"the ledger holds no record about {subject}{when}"
                          f"{' by the signer(s) given' if key_paths else ''}",
                          absence=[p for item in out for p in item["absent"]], head=head.to_json())

    def human() -> str:
        lines = []
        for item in out:
            lines.append(f"{item['digest']} ({len(item['versions'])} records, all proofs verified)")
            lines.extend(_line(v) for v in item["versions"])
            lines.extend(_attestation_line(a) for a in item["attestations"])
        lines.append(f"ledger head: size {head.tree_size}, tx {head.tx}")
        return "\n".join(lines)

    app.emit({"subjects": out, "as_of_tx": at_tx, "head": head.to_json()}, human, schema="history")


def _attestations(ledger: Ledger, digest: str, signers: list[str], trusted: set[str], key_paths: tuple[str, ...],
                  at_tx: int | None) -> list[_Attestation]:
    """Each signer's attestations about digest (docs/records.md, "Attestations"), oldest first, each opened,
    signature-checked and proven: the types come from the signer's attestation index (proven complete), the
    public key from --key or from that index (it must hash to the signer's key id)."""
    from notary import attest

    given = {keys.key_id(k): k for k in (keys.load_public_key(p) for p in key_paths)}
    out: list[_Attestation] = []
    for signer in signers:
        for indexed in attest.indexed_types(ledger, digest, signer):
            public = given.get(signer) or indexed.public_key
            if public is None:
                continue
            for att, entry in attest.attestation_history(ledger, digest, public, indexed.predicate_type):
                if not written_by(ledger, entry, at_tx):
                    continue
                out.append({"tx": entry.tx, "time": rfc3339(entry.time), "revision": entry.revision,
                            "key": entry.key, "type": "attestation", "predicate_type": att.predicate_type,
                            "signer": signer, "trusted_signer": signer in trusted if trusted else None,
                            "subjects": [{"name": n, "digest": d} for n, d in att.subjects],
                            "envelope": dict(att.envelope), "proof": dict(entry.proof)})
    out.sort(key=lambda a: (a["tx"], a["signer"], a["predicate_type"]))
    return out


def _attestation_line(a: _Attestation | _Current) -> str:
    trust = {True: " [trusted]", False: " [NOT trusted]", None: ""}[a["trusted_signer"]]
    return f"  tx {a['tx']:>6}  {a['time']}  attested  signer {a['signer'][:19]}…{trust} {a['predicate_type']}"


@click.command("get")
@click.argument("subject")
@as_of_options
@click.option("--key", "key_paths", multiple=True, metavar="PUBLIC_KEY", help="Only these signers (and mark them trusted).")
@source_options_flags
@pass_app
def get(app: App, subject: str, at_tx: int | None, at_time: str | None, key_paths: tuple[str, ...], **flags: object) -> None:
    """SUBJECT's current record per signer, or as it stood at a transaction or time, with proofs, and the
    attestations current then (one per signer and predicate type, each proven and its signature checked).

    Time travel reads the version that was current then, proven included in today's ledger, which is
    proven consistent with what this client trusted before: history cannot have been rewritten since.

    \b
    Examples:
      notary get oci:build/layout:v1
      notary get sha256:4f1c... --at-tx 120            # as it stood at transaction 120
    """
    ledger = app.open_ledger()
    as_of = _as_of(ledger, at_tx, at_time)
    out: list[_Got] = []
    attested: list[_Current] = []
    absent_keys: list[str] = []
    for digest, name in identify_digests(app, subject, dict(flags)):
        signers, trusted, found = _signers(app, ledger, digest, key_paths, as_of)
        if found is not None and not found.signers:
            absent_keys.append(records.signer_index_key(digest))
        for signer in signers:
            entry = ledger.get(records.subject_key(digest, signer), at_tx=as_of)
            if entry is None:
                absent_keys.append(records.subject_key(digest, signer))
            else:
                out.append({"digest": digest, "name": name, **_version(entry, digest, signer, trusted)})
        attested.extend(_current_attestations(ledger, digest, name, signers, trusted, key_paths, as_of))
    if not out and not attested:
        when = f" as of tx {as_of}" if as_of else ""
        raise AbsentError(f"no record about {subject}{when}", absence=[
            p for k in absent_keys if (p := absence_proof(ledger, k, as_of)) is not None],
            head=ledger.info().head.to_json())

    def human() -> str:
        when = f" as of tx {as_of}" if as_of else ""
        return "\n".join([f"{o['digest']}{when}:" + _line(o) for o in out]
                         + [f"{a['digest']}{when}:" + _attestation_line(a) for a in attested])

    app.emit({"as_of_tx": as_of, "records": out, "attestations": attested, "head": ledger.info().head.to_json()},
             schema="get", human=human)


def _current_attestations(ledger: Ledger, digest: str, name: str, signers: list[str], trusted: set[str],
                          key_paths: tuple[str, ...], as_of: int | None) -> list[_Current]:
    """The attestation current (as of) under each attestation key of digest, one per signer and predicate type.

    Read through the same proven path `history` uses (_attestations: the signer's attestation index proven
    complete, each attestation key's history proven complete, every envelope opened and its signature
    checked), then the newest version up to as_of kept: a version the ledger hid or altered is an integrity
    error there, never a shorter list here. The envelope itself is left to `history` and `evidence export`."""
    newest: dict[str, _Attestation] = {}
    for a in _attestations(ledger, digest, signers, trusted, key_paths, as_of):
        if a["key"] not in newest or a["tx"] >= newest[a["key"]]["tx"]:
            newest[a["key"]] = a
    rows: list[_Current] = [{"digest": digest, "name": name, "tx": a["tx"], "time": a["time"], "revision": a["revision"],
                             "key": a["key"], "predicate_type": a["predicate_type"], "signer": a["signer"],
                             "trusted_signer": a["trusted_signer"], "subjects": a["subjects"], "proof": a["proof"]}
                            for a in newest.values()]
    return sorted(rows, key=lambda a: (a["tx"], a["signer"], a["predicate_type"]))


@click.command("lookup")
@click.option("--job-id", "job_id", metavar="ID", help="Notarizations made by this CI job.")
@click.option("--system", metavar="NAME", help="CI system of --job-id (github, gitlab, jenkins, circleci, tekton, local).")
@click.option("--artifact", metavar="DIGEST", help="Subjects containing this blob/file digest.")
@as_of_options
@pass_app
def lookup(app: App, job_id: str | None, system: str | None, artifact: str | None, at_tx: int | None,
           at_time: str | None) -> None:
    """Find evidence by pipeline job id or by asset checksum (then `notary history` a subject for proofs).

    With --at-tx or --at-time: what the job and artifact indexes held then (complete: every index key's
    history is proven complete, and a finder written later is left out).

    \b
    Examples:
      notary lookup --job-id 8812 --system github
      notary lookup --artifact sha256:...              # the subjects containing this blob or file
    """
    if bool(job_id) == bool(artifact):
        raise UsageError("give exactly one of --job-id or --artifact")
    ledger = app.open_ledger()
    as_of = _as_of(ledger, at_tx, at_time)
    hits = (lookup_job(ledger, job_id, system, as_of) if job_id
            else lookup_artifact(ledger, records.check_digest(str(artifact)), as_of))
    if artifact and not hits:
        # a file notarized on its own is a subject, not an artifact of one: its own digest finds it
        holders = [{"key": records.subject_key(str(artifact), signer), "tx": e.tx, "revision": e.revision,
                    "type": "subject", "signer": signer, "subjects": [str(artifact)], "proof": dict(e.proof)}
                   for signer in signer_set(ledger, str(artifact), as_of).signers
                   if (e := ledger.get(records.subject_key(str(artifact), signer), at_tx=as_of)) is not None]
        if holders:
            app.emit({"results": holders, "as_of_tx": as_of, "head": ledger.info().head.to_json()}, lambda: "\n".join(
                f"tx {h['tx']}: {h['key']} ({artifact} is itself a notarized subject)" for h in holders),
                schema="lookup")
            return
    if not hits:
        read = job_keys(ledger, str(job_id), system) if job_id else [records.artifact_key(str(artifact))]
        when = f" as of tx {as_of}" if as_of else ""
        raise AbsentError(f"nothing recorded for {'job ' + str(job_id) if job_id else artifact}{when}",
                          absence=[p for k in read if (p := absence_proof(ledger, k, as_of)) is not None],
                          head=ledger.info().head.to_json())
    # the proven fields last: an index value (anyone's writing) must not restate its own tx or key
    rows = [{**dict(h.value), "key": h.entry.key, "tx": h.entry.tx, "revision": h.entry.revision,
             "proof": dict(h.entry.proof)} for h in hits]

    def human() -> str:
        lines = []
        for row in rows:
            lines.append(f"tx {row['tx']}: {row['key']} (signer {str(row.get('signer'))[:19]}…)")
            subjects = row.get("subjects", [])
            for s in subjects if isinstance(subjects, list) else []:
                lines.append(f"  {s['digest']}  {s.get('kind', '')}  {s.get('name', '')}" if isinstance(s, dict) else f"  {s}")
        return "\n".join(lines)

    app.emit({"results": rows, "as_of_tx": as_of, "head": ledger.info().head.to_json()}, human, schema="lookup")
