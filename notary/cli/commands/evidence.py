"""`notary evidence export` / `verify`: a subject's status, with every proof, checkable without the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from notary import keys
from notary.cli.common import App, pass_app
from notary.cli.subjects import identify_digests, source_options_flags
from notary.errors import InputError
from notary.fsio import atomic_write, read_regular

if TYPE_CHECKING:
    from notary.attest import Requirement


@click.group("evidence")
def evidence() -> None:
    """Carry a subject's proofs away: export them once, check them anywhere, offline (docs/evidence.md).

    \b
    Examples:
      notary evidence export oci:build/layout:v1 --key ci.pub -o app.evidence.json
      notary evidence verify app.evidence.json --key ci.pub --ledger-id file:sha256:...
    """


@evidence.command("export")
@click.argument("subject")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The bundle file to write.")
@click.option("--key", "key_paths", multiple=True, required=True, metavar="PUBLIC_KEY",
              help="A key the bundle is for (repeatable): its records, and its revocations of every tied "
              "identity, go in. Verify with the same keys.")
@click.option("--checkpoint", "checkpoint_files", multiple=True, metavar="FILE",
              help="A checkpoint of this ledger an auditor trusts (repeatable): the bundle then carries the "
              "consistency proof from it, for `evidence verify --checkpoint`.")
@click.option("--require", "required", multiple=True, metavar="URI",
              help="A predicate type the decision requires from a trusted key (repeatable): its attestations, or "
              "the proof that there are none, go in. Verify with the same --require.")
@click.option("--sign-key", metavar="FILE", help="immudb: the operator's Ed25519 key (the one of `ledger checkpoint "
              "--sign-key`) that signs the bundle's checkpoint; an embedded ledger signs with its own key.")
@source_options_flags
@pass_app
def export(app: App, subject: str, output: str, key_paths: tuple[str, ...], checkpoint_files: tuple[str, ...],
           required: tuple[str, ...] = (), sign_key: str | None = None, **flags: object) -> None:
    """Write every record, proof and the signed head `verify SUBJECT --key ...` reads, to check offline.

    SUBJECT is any notary subject form (oci:, oci-archive:, docker-archive:, docker-daemon:, registry://,
    a file or directory path, or a bare sha256: digest); only its identity is computed, no blob is read. Exit 0 whether or not
    the subject is trusted: the bundle proves either answer (its JSON says which).

    \b
    Examples:
      notary evidence export oci:build/layout:v1 --key ci.key.pub -o app.evidence.json
      notary evidence export sha256:4f1c... --key ci.key.pub --checkpoint head.checkpoint -o app.evidence.json
      notary evidence export oci:build/layout:v1 --key ci.key.pub --require https://slsa.dev/provenance/v1 -o app.evidence.json
      notary --ledger immudb://notary@db:3322/notary evidence export sha256:4f1c... --key ci.key.pub \\
          --sign-key checkpoint.key -o app.evidence.json
    """
    from notary.audit import evidence as bundles
    from notary.audit import note as notes
    from notary.audit.bundle_fields import listed, mapping

    trusted = [keys.load_public_key(p) for p in key_paths]
    require = _requirements(required)
    cps = [notes.parse_note(read_regular(f, notes.MAX_NOTE, "checkpoint")) for f in checkpoint_files]
    digests = list(dict.fromkeys(d for d, _ in identify_digests(app, subject, dict(flags))))
    operator = None
    if sign_key:
        from notary.audit.immudb_checkpoints import operator_key

        operator = operator_key(sign_key, app.env)
    bundle = bundles.export(app.open_ledger(), digests, trusted, subject, checkpoint_notes=cps, require=require,
                            sign_key=operator)
    data = bundles.dump(bundle)
    try:
        atomic_write(Path(output), data, 0o644)
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror or exc}") from exc
    # the bundle was built just above; narrowed to the shapes export gives (both backends share them)
    head, ledger = mapping(bundle["head"]), mapping(bundle["ledger"])
    decisions, histories, absent = listed(bundle["decisions"]), mapping(bundle["histories"]), mapping(bundle["absent"])
    allowed = all(mapping(d)["allowed"] for d in decisions)
    app.emit({"path": output, "bytes": len(data), "digests": digests, "head": head,
              "decisions": decisions, "histories": len(histories),
              "absent": len(absent), "ledger_id": ledger["ledger_id"],
              "attestations": bundle["attestations"]},
             f"evidence for {subject} ({'trusted' if allowed else 'NOT trusted'} as of tx {head['tx']}, "
             f"{len(histories)} histories, {len(absent)} absence proofs): {output}\n"
             f"ledger id (give it to the auditor): {ledger['ledger_id']}",
             schema="evidence-export")


def _requirements(required: tuple[str, ...]) -> tuple[Requirement, ...]:
    if not required:
        return ()
    from notary.attest import parse_requirements

    return parse_requirements(list(required), "--require")


@evidence.command("verify")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--key", "key_paths", multiple=True, required=True, metavar="PUBLIC_KEY",
              help="A trusted public key (repeatable).")
@click.option("--ledger-id", metavar="ID", help="The ledger the bundle must come from (file:sha256:... or "
              "immudb:...). Without it or --checkpoint, whichever ledger key the bundle names is believed (a "
              "warning says so).")
@click.option("--log-vkey", metavar="VKEY", help="immudb bundles: the operator's checkpoint key (`notary ledger "
              "checkpoint --sign-key KEY --vkey`), which must have signed the bundle's head; it pins the ledger "
              "as --ledger-id pins an embedded one.")
@click.option("--checkpoint", "checkpoint_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="A checkpoint you trust: the bundle's head must extend it (exit 3 for a split view).")
@click.option("--witness-vkey", "witness_vkeys", multiple=True, metavar="VKEY",
              help="A trusted witness key for --checkpoint (repeatable).")
@click.option("--min-witnesses", type=click.IntRange(min=0), default=0, show_default=True,
              help="How many --witness-vkey witnesses must have cosigned the --checkpoint.")
@click.option("--digest", "digests", multiple=True, metavar="sha256:HEX",
              help="The digest you hold (repeatable): it is decided from the bundle (exit 3 if the bundle does "
              "not cover it), instead of the digests the bundle names for itself.")
@click.option("--require", "required", multiple=True, metavar="URI",
              help="A predicate type a trusted key must have attested (repeatable; the bundle must have been "
              "exported with it).")
@pass_app
def verify(app: App, file: str, key_paths: tuple[str, ...], ledger_id: str | None, checkpoint_file: str | None,
           witness_vkeys: tuple[str, ...], min_witnesses: int, digests: tuple[str, ...],
           required: tuple[str, ...] = (), log_vkey: str | None = None) -> None:
    """Check a bundle with no ledger and no network; it never opens or creates a ledger or trusted state.

    Exit 0 trusted; 1 revoked, not notarized or signed by no trusted key; 3 any altered byte, or a bundle
    that leaves out what the decision reads; 2 a bundle exported for other keys or checkpoints.

    \b
    Examples:
      notary evidence verify app.evidence.json --key ci.key.pub --ledger-id file:sha256:...
      notary evidence verify app.evidence.json --key ci.key.pub --checkpoint head.checkpoint
      notary evidence verify app.evidence.json --key ci.key.pub --log-vkey "$(cat checkpoint.vkey)"
    """
    from notary.audit import evidence as bundles
    from notary.audit import note as notes

    trusted = [keys.load_public_key(p) for p in key_paths]
    replay = bundles.load(read_regular(file, bundles.MAX_BUNDLE, "evidence bundle"), ledger_id, log_vkey)
    immudb = getattr(replay, "pinned", None) is not None
    pinned = bool(getattr(replay, "pinned", False)) if immudb else ledger_id is not None
    anchored = None
    if checkpoint_file:
        note = notes.parse_note(read_regular(checkpoint_file, notes.MAX_NOTE, "checkpoint"))
        anchored = replay.check_checkpoint(note, [notes.parse_vkey(v) for v in witness_vkeys], min_witnesses)
    elif not pinned:
        how = "--log-vkey or --checkpoint (an immudb ledger id names no key)" if immudb else "--ledger-id or --checkpoint"
        click.echo(f"notary: warning: ledger {replay.head.ledger_id} is the bundle's own word; pin it with {how}",
                   err=True)
    decisions = bundles.decide(replay, trusted, digests, _requirements(required))
    allowed = all(d.allowed for d in decisions)
    app.emit({"subject": replay.subject, "allowed": allowed, "ledger_id": replay.head.ledger_id,
              "pinned": pinned or anchored is not None, "checkpoint_size": anchored,
              "head": replay.head.to_json(), "decisions": [d.to_json() for d in decisions]},
             lambda: "\n".join(f"trusted: {d.reason} (ledger tx {replay.head.tx})" for d in decisions if d.allowed),
             schema="evidence-verify")
    if not allowed:
        for d in decisions:
            if not d.allowed:
                click.echo(f"notary: refused: {d.reason}", err=True)
        raise SystemExit(1)
