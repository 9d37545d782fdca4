"""`notary witness`: run a C2SP tlog-witness for notary ledgers (or any log that signs Ed25519 checkpoints)."""

from __future__ import annotations

from pathlib import Path

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from notary import keys
from notary.audit import note as notes
from notary.cli.common import App, pass_app
from notary.errors import InputError


def _witness_key(path: str, app: App) -> Ed25519PrivateKey:
    return keys.load_ed25519_key(path, "witness key", "tlog-cosignature/v1 is Ed25519", app.env)


@click.group("witness")
def witness() -> None:
    """Cosign checkpoints of the logs you follow, after checking each is consistent with the last one seen.

    \b
    Examples:
      notary witness vkey --name witness.example.org/w1 --key witness.key > witness.vkey
      notary witness serve --name witness.example.org/w1 --key witness.key --log "$(notary ledger checkpoint --vkey)"
    """


@witness.command("vkey")
@click.option("--name", required=True, metavar="NAME", help="The witness's name, e.g. witness.example.org/w1.")
@click.option("--key", "key_path", required=True, metavar="FILE", help="The witness's Ed25519 private key.")
@pass_app
def vkey(app: App, name: str, key_path: str) -> None:
    """Print the witness's verifier key (signature type 0x04), for logs and auditors to trust.

    \b
    Examples:
      notary key generate --out witness.key             # an Ed25519 key for the witness
      notary witness vkey --name witness.example.org/w1 --key witness.key > witness.vkey
    """
    found = notes.verifier(name, notes.COSIGNATURE_V1, _witness_key(key_path, app).public_key()).vkey()
    app.emit({"vkey": found, "name": name}, found, schema="witness-vkey")


@witness.command("serve")
@click.option("--name", required=True, metavar="NAME", help="The witness's name, e.g. witness.example.org/w1.")
@click.option("--key", "key_path", required=True, metavar="FILE", help="The witness's Ed25519 private key (0600).")
@click.option("--log", "logs", multiple=True, required=True, metavar="VKEY",
              help="A log to witness, by its checkpoint key (`notary ledger checkpoint --vkey`); repeatable.")
@click.option("--listen", default="127.0.0.1:7380", show_default=True, metavar="HOST:PORT")
@click.option("--state", "state", metavar="DIR", help="Where the latest cosigned checkpoints live "
              "(default: the state directory's witness/).")
@pass_app
def serve(app: App, name: str, key_path: str, logs: tuple[str, ...], listen: str, state: str | None) -> None:
    """Serve POST /add-checkpoint (c2sp.org/tlog-witness) until interrupted.

    A checkpoint is cosigned only when it is signed by the log's key and consistent with the last one this
    witness cosigned for that log (409 with its size when the old size is stale, 422 when inconsistent: a
    split view, never cosigned). The latest checkpoint per log is persisted atomically before answering.

    \b
    Examples:
      notary witness serve --name witness.example.org/w1 --key witness.key --log "$(cat ledger.vkey)"
      notary witness serve --name witness.example.org/w1 --key witness.key --log "$(cat ledger.vkey)" --listen 0.0.0.0:7380
    """
    from notary.audit.witness import Witness
    from notary.audit.witness_http import WitnessServer

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--listen {listen!r} is not HOST:PORT")
    from notary.ledger.trust import TrustStore

    directory = Path(state) if state else TrustStore(app.state_dir, env=app.env).directory / "witness"
    w = Witness(name, _witness_key(key_path, app), [notes.parse_vkey(v) for v in logs], directory)
    server = WitnessServer((host.strip("[]"), int(port)), w)
    app.info(f"notary witness {name} on http://{listen}/add-checkpoint ({len(logs)} log(s)); vkey {w.vkey}")
    try:
        server.serve_forever()
    finally:
        server.server_close()
