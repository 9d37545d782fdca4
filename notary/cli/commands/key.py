"""`notary key`: generate and inspect signing keys."""

from __future__ import annotations

import os
from pathlib import Path

import click

from notary import keys
from notary.cli.common import App, pass_app
from notary.fsio import MAX_KEY, read_regular


@click.group("key")
def key() -> None:
    """Generate and inspect signing keys (Ed25519 by default, ECDSA P-256 on request)."""


@key.command("generate")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), metavar="PATH",
              help="Private key file (written 0600); the public key goes to PATH.pub (0644). The directory "
                   "must exist.")
@click.option("--type", "kind", type=click.Choice(keys.KEY_TYPES), default="ed25519", show_default=True,
              help="Key algorithm: Ed25519, or ECDSA P-256 where policy or an HSM requires NIST curves.")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@pass_app
def generate(app: App, out: str, kind: str, force: bool) -> None:
    """Create a signing key pair.

    The private key is encrypted when NOTARY_KEY_PASSPHRASE is set. Give the .pub file to verifiers and
    gates; keep the private key in your CI's secret store (NOTARY_SIGNING_KEY takes its PEM text).
    """
    passphrase = os.environ.get("NOTARY_KEY_PASSPHRASE")
    private = keys.generate_private_key(kind)
    pub_path = keys.write_key_pair(out, private, passphrase.encode() if passphrase else None, force=force)
    kid = keys.key_id(private)
    app.emit(
        {"key_id": kid, "type": kind, "private_key": str(Path(out)), "public_key": str(pub_path),
         "encrypted": bool(passphrase)},
        f"wrote {out} (private, 0600{', encrypted' if passphrase else ''}) and {pub_path}\nkey id: {kid}",
        schema="key-generate",
    )


@key.command("show")
@click.argument("path", type=click.Path(dir_okay=False))
@pass_app
def show(app: App, path: str) -> None:
    """Print the key id and public key of a private or public key file."""
    # bounded, regular files only: a "key" that is a FIFO or /dev/zero is one clear line, not a hang
    data = read_regular(path, MAX_KEY, "key file")
    public = keys.load_private_key(data).public_key() if b"PRIVATE KEY" in data else keys.load_public_key(data)
    kid = keys.key_id(public)
    pem = keys.public_pem(public)
    app.emit({"key_id": kid, "type": keys.key_type(public), "public_key": pem}, f"key id: {kid}\n{pem.rstrip()}",
             schema="key-show")
