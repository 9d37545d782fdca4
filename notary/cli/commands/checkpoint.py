"""`notary ledger checkpoint` (the head as a C2SP signed checkpoint, witnessed) and `notary audit checkpoint`
(check one: log signature, K of N witness cosignatures, and consistency with this client's verified head)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from notary.audit import checkpoints
from notary.audit import note as notes
from notary.cli.common import App, pass_app
from notary.errors import InputError, ProofError, UsageError
from notary.fsio import atomic_write, read_regular

if TYPE_CHECKING:
    from notary.audit.immudb_checkpoints import ImmudbLog
    from notary.ledger.base import TreeHead
    from notary.ledger.embedded import EmbeddedLedger


def _log(app: App, what: str) -> EmbeddedLedger | ImmudbLog:
    """The embedded ledger, or the immudb ledger's ImmudbLog: the two kinds of checkpointed log."""
    from notary.ledger.embedded import EmbeddedLedger

    ledger = app.open_ledger()
    if isinstance(ledger, EmbeddedLedger):
        return ledger
    if str(getattr(ledger, "url", "")).startswith("immudb:"):
        from notary.audit.immudb_checkpoints import ImmudbLog

        return ImmudbLog(ledger)
    raise UsageError(f"{what} addresses one ledger: an embedded file or an immudb database (a partitioned "
                     "ledger's members each have their own)")


@click.command("checkpoint")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the checkpoint here (else stdout).")
@click.option("--witness", "witnesses", multiple=True, metavar="URL",
              help="Ask this C2SP witness to cosign (repeatable); its cosignature lines are appended.")
@click.option("--witness-vkey", "witness_vkeys", multiple=True, metavar="VKEY",
              help="Keep only the cosignatures these witness keys verify; with none, well-formed lines are "
                   "appended unchecked.")
@click.option("--vkey", "show_vkey", is_flag=True, help="Print the ledger's checkpoint verifier key and exit.")
@click.option("--sign-key", metavar="FILE", help="immudb: the operator's Ed25519 key that signs the checkpoint "
              "(immudb's own state key is not a signed-note key); an embedded ledger signs with its own key.")
@pass_app
def checkpoint(app: App, output: str | None, witnesses: tuple[str, ...], witness_vkeys: tuple[str, ...],
               show_vkey: bool, sign_key: str | None) -> None:
    """The verified head as a C2SP checkpoint (signed note) that any transparency-log tool reads.

    Origin line: the ledger id; then the tree size, the base64 RFC 6962 root, and (embedded) the key-index root
    as the extension line `notary-key-index <base64>`; signed by the ledger key (Ed25519, key name = origin).
    An immudb ledger's checkpoint is its binary linking tree (leaves: the transactions' Alh), computed from the
    verified mirror and signed by --sign-key. With --witness, each witness checks it consistent with the last
    checkpoint it saw and cosigns it.

    \b
    Examples:
      notary ledger checkpoint --vkey                      # give this to witnesses and auditors
      notary ledger checkpoint --witness http://127.0.0.1:7380 -o head.checkpoint
      notary --ledger immudb://notary@db:3322/notary ledger checkpoint --sign-key checkpoint.key -o head.cp
    """
    from notary.ledger.embedded import EmbeddedLedger

    found = _log(app, "ledger checkpoint")
    sign: Callable[[str], bytes]
    proof_of: Callable[[int, int], list[bytes]]
    current: Callable[[], tuple[TreeHead, notes.Checkpoint]]
    if isinstance(found, EmbeddedLedger):
        if sign_key:
            raise UsageError("an embedded ledger signs its checkpoints with its own key: drop --sign-key")
        ledger = found
        log = checkpoints.log_verifier(ledger.ledger_id, ledger.public_raw)
        sign, proof_of = ledger.sign_checkpoint, ledger.consistency_proof

        def current() -> tuple[TreeHead, notes.Checkpoint]:
            head = ledger.info().head
            return head, checkpoints.checkpoint_of(head)
    else:
        if not sign_key:
            raise UsageError("an immudb checkpoint is signed by an operator's key: pass --sign-key FILE",
                             hint="notary key generate --out checkpoint.key (Ed25519)")
        from notary.audit.immudb_checkpoints import operator_key, verifier

        immudb = found
        operator = operator_key(sign_key, app.env)
        log = verifier(immudb.origin, operator.public_key())
        sign, proof_of = (lambda text: operator.sign(text.encode())), immudb.consistency_proof

        def current() -> tuple[TreeHead, notes.Checkpoint]:
            return immudb.head, immudb.checkpoint()
    if show_vkey:
        app.emit({"vkey": log.vkey(), "origin": log.name}, log.vkey(), schema="ledger-checkpoint-vkey")
        return
    from notary.audit.witness_client import accepted, submit

    trusted = [notes.parse_vkey(v) for v in witness_vkeys]
    head, cp = current()
    note = checkpoints.signed(cp, sign, log)
    for url in witnesses:
        answer = submit(url, note, cp.size, lambda old: proof_of(old, cp.size))
        kept = accepted(note, answer.signatures, trusted)
        if not kept and trusted:
            raise InputError(f"witness {url} answered no cosignature by the --witness-vkey keys")
        if not kept:
            raise ProofError(f"witness {url} answered no signature line new to this checkpoint")
        dropped = answer.malformed + len(answer.signatures) - len(kept)
        if dropped:  # a witness's answer is its word only: what it adds must not poison the checkpoint
            why = "not verified by a --witness-vkey key" if trusted else "malformed, repeated or over limits"
            click.echo(f"notary: witness {url}: dropped {dropped} of its {dropped + len(kept)} signature "
                       f"line(s), {why}", err=True)
        note = notes.Note(note.text, note.signatures + kept)
    data = note.encode()
    if output:
        atomic_write(Path(output), data, 0o644)
    app.emit({"checkpoint": data.decode(), "origin": cp.origin, "tree_size": cp.size, "tx": head.tx,
              "witnesses": [s.name for s in note.signatures[1:]], "path": output},
             "" if output and not app.json else data.decode().rstrip("\n"), schema="ledger-checkpoint")


@click.command("checkpoint")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--witness-vkey", "witness_vkeys", multiple=True, metavar="VKEY", help="A trusted witness key.")
@click.option("--min-witnesses", type=click.IntRange(min=0), default=0, show_default=True,
              help="How many of the --witness-vkey witnesses must have cosigned.")
@click.option("--log-vkey", metavar="VKEY", help="The ledger's key (default: this client's ledger's own).")
@pass_app
def check_checkpoint(app: App, file: str, witness_vkeys: tuple[str, ...], min_witnesses: int,
                     log_vkey: str | None) -> None:
    """Check a checkpoint: signed by the ledger, cosigned by enough witnesses, a prefix of this client's
    verified head, and its key-index root the one the ledger signed at that size. A checkpoint the head does
    not extend, or whose key index differs, is a split view: exit 3.

    \b
    Examples:
      notary audit checkpoint head.checkpoint
      notary audit checkpoint head.checkpoint --witness-vkey "$(cat witness.vkey)" --min-witnesses 1
    """
    from notary.ledger.embedded import EmbeddedLedger

    found = _log(app, "audit checkpoint")
    if log_vkey:
        log = notes.parse_vkey(log_vkey)
    elif isinstance(found, EmbeddedLedger):
        log = checkpoints.log_verifier(found.ledger_id, found.public_raw)
    else:
        raise UsageError("an immudb checkpoint is checked under its operator's key: pass --log-vkey VKEY",
                         hint="notary ledger checkpoint --sign-key KEY --vkey prints it")
    note = notes.parse_note(read_regular(file, notes.MAX_NOTE, "checkpoint"))
    cp, cosigned = checkpoints.check(note, log, [notes.parse_vkey(v) for v in witness_vkeys], min_witnesses)
    embedded = isinstance(found, EmbeddedLedger)
    if isinstance(found, EmbeddedLedger):
        head = found.info().head
        proof = found.consistency_proof(cp.size, head.tree_size) if 0 < cp.size <= head.tree_size else []
        checkpoints.consistent_with(cp, head, proof)
        checkpoints.same_heads(cp, found.head_at_size(cp.size) if cp.size else None)
    else:
        head = found.head
        found.check(cp)
    app.emit({"ok": True, "origin": cp.origin, "tree_size": cp.size, "head": head.to_json(),
              "witnesses": dict(cosigned), "key_index_root": cp.key_index_root.hex() if cp.key_index_root else None},
             f"checkpoint ok: {cp.origin} at size {cp.size}, signed by the {'ledger' if embedded else 'log'} key, "
             f"cosigned by {len(cosigned)} trusted witness(es), a prefix of the verified head (size "
             f"{head.tree_size}), " + ("its key-index root the one the ledger signed at that size" if embedded
                                       else "its root immudb's binary linking tree over those transactions"),
             schema="audit-checkpoint")
