"""`notary key`: generate and inspect signing keys, in files, inside a PKCS#11 token or in AWS KMS."""

from __future__ import annotations

from pathlib import Path

import click

from notary import keys
from notary.cli.commands.key_list import list_command as key_list
from notary.cli.common import App, pass_app
from notary.errors import UsageError
from notary.fsio import MAX_KEY, read_regular

_PIN_HELP = "PIN: NOTARY_PKCS11_PIN, NOTARY_PKCS11_PIN_FILE or pin-source=file:PATH in the URI (never an argument)."


@click.group("key")
def key() -> None:
    """Generate and inspect signing keys (Ed25519 by default, ECDSA P-256 on request), in files, a PKCS#11
    token or AWS KMS, and list which keys signed what in a ledger.

    \b
    Examples:
      notary key generate --out ci.key
      notary key show ci.key.pub
      notary key list --policy /etc/notary/notary.toml
    """


@key.command("generate")
@click.option("--out", "out", type=click.Path(dir_okay=False), metavar="PATH",
              help="Private key file (written 0600); the public key goes to PATH.pub (0644). The directory "
                   "must exist. With --pkcs11: the public key file (0644); nothing private is written.")
@click.option("--pkcs11", "uri", metavar="URI",
              help="Create the key pair inside the PKCS#11 token this RFC 7512 URI names (token=, object=, "
                   "?module-path=); the private key never leaves it. " + _PIN_HELP)
@click.option("--kms", "kms_uri", metavar="URI",
              help="Create a P-256 signing key in AWS KMS under the alias this awskms:///alias/NAME URI names; "
                   "the private key never leaves it. Credentials and region: botocore's chain (AWS_PROFILE, "
                   "AWS_ACCESS_KEY_ID..., a CI OIDC role), never an argument.")
@click.option("--type", "kind", type=click.Choice(keys.KEY_TYPES), default=None,
              help="Key algorithm: Ed25519 (the default), or ECDSA P-256 where policy or an HSM requires NIST "
                   "curves. With --pkcs11 the default is Ed25519 where the token offers it, else P-256.")
@click.option("--force", is_flag=True, help="Overwrite existing files (never a key inside a token).")
@pass_app
def generate(app: App, out: str | None, uri: str | None, kms_uri: str | None, kind: str | None,
             force: bool) -> None:
    """Create a signing key pair.

    The private key is encrypted when NOTARY_KEY_PASSPHRASE is set. Give the .pub file to verifiers and
    gates; keep the private key in your CI's secret store (NOTARY_SIGNING_KEY takes its PEM text), or keep
    it in a token (--pkcs11) and give --key the same URI.

    \b
    Examples:
      notary key generate --out ci.key                  # ci.key (0600) and ci.key.pub
      notary key generate --out release.key --type ecdsa-p256
      notary key generate --pkcs11 "pkcs11:token=ci;object=notary" --out ci.key.pub
      notary key generate --kms awskms:///alias/notary-ci --out ci.key.pub
    """
    if uri is not None and kms_uri is not None:
        raise UsageError("--pkcs11 and --kms are two places for one key", hint="give one of them")
    if kms_uri is not None:
        _generate_in_kms(app, kms_uri, out, kind, force)
        return
    if uri is not None:
        _generate_in_token(app, uri, out, kind, force)
        return
    if out is None:
        raise UsageError("key generate needs --out PATH (or --pkcs11 URI)")
    passphrase = app.env.key_passphrase
    kind = kind or "ed25519"
    private = keys.generate_private_key(kind)
    pub_path = keys.write_key_pair(out, private, passphrase.encode() if passphrase else None, force=force)
    kid = keys.key_id(private)
    app.emit(
        {"key_id": kid, "type": kind, "private_key": str(Path(out)), "public_key": str(pub_path),
         "encrypted": bool(passphrase)},
        f"wrote {out} (private, 0600{', encrypted' if passphrase else ''}) and {pub_path}\nkey id: {kid}",
        schema="key-generate",
    )


def _generate_in_token(app: App, uri: str, out: str | None, kind: str | None, force: bool) -> None:
    from notary.signing import pkcs11

    if not uri.startswith("pkcs11:"):
        raise UsageError("--pkcs11 takes a pkcs11: URI", hint="e.g. pkcs11:token=ci;object=notary?module-path=...")
    if out is not None:  # before the token is touched: a key made for nothing is worse than one line now
        keys.check_targets((Path(out),), force)
    signer = pkcs11.generate(uri, kind, env=app.env)
    public = signer.public_key()
    pub_path = keys.write_public_key(out, public, force=force) if out is not None else None
    kid = keys.key_id(public)
    where = f"; wrote {pub_path}" if pub_path else ""
    app.emit(
        {"key_id": kid, "type": signer.kind, "private_key": uri, "public_key": str(pub_path) if pub_path else None,
         "encrypted": False, "public_key_pem": keys.public_pem(public), "pkcs11": signer.attributes()},
        lambda: f"created {signer.kind} key {signer.uri.describe} (not extractable){where}\nkey id: {kid}"
                + ("" if pub_path else "\n" + keys.public_pem(public).rstrip()),
        schema="key-generate",
    )


def _generate_in_kms(app: App, uri: str, out: str | None, kind: str | None, force: bool) -> None:
    from notary.signing import awskms

    if kind not in (None, "ecdsa-p256"):
        raise UsageError("AWS KMS keys notary signs with are ECDSA P-256", hint="drop --type or pass ecdsa-p256")
    if out is not None:
        keys.check_targets((Path(out),), force)
    signer = awskms.generate(uri, env=app.env)
    public = signer.public_key()
    pub_path = keys.write_public_key(out, public, force=force) if out is not None else None
    kid = keys.key_id(public)
    where = f"; wrote {pub_path}" if pub_path else ""
    app.emit(
        {"key_id": kid, "type": signer.kind, "private_key": signer.uri.describe,
         "public_key": str(pub_path) if pub_path else None, "encrypted": False,
         "public_key_pem": keys.public_pem(public), "kms": signer.attributes()},
        lambda: f"created {signer.kind} key {signer.arn} as {signer.uri.key}{where}\nkey id: {kid}"
                + ("" if pub_path else "\n" + keys.public_pem(public).rstrip()),
        schema="key-generate",
    )


@key.command("show")
@click.argument("source", metavar="PATH|URI")
@click.option("--out", "out", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the public key PEM to FILE (0644): what verifiers and gates are given.")
@click.option("--force", is_flag=True, help="Overwrite FILE.")
@pass_app
def show(app: App, source: str, out: str | None, force: bool) -> None:
    """Print the key id and public key of a private or public key file, or of a key in a token or AWS KMS.

    A pkcs11: URI logs into the token (PIN from NOTARY_PKCS11_PIN, NOTARY_PKCS11_PIN_FILE or pin-source),
    finds the key as notarize would and reads its public key object; --json also shows whether the private
    key could be extracted (it cannot, for keys notary created). An awskms:// URI reads the key's public key
    and ARN from AWS KMS, as notarize would.

    \b
    Examples:
      notary key show ci.key
      notary key show "pkcs11:token=ci;object=notary" --out ci.key.pub
      notary key show awskms:///alias/notary-ci --out ci.key.pub
    """
    from notary import signing

    token: dict[str, object] | None = None
    if signing.is_service_key(source):
        signer = signing.open_signer(source, app.env)
        public = signer.public_key()
        token = signer.attributes()
    else:
        # bounded, regular files only: a "key" that is a FIFO or /dev/zero is one clear line, not a hang
        data = read_regular(source, MAX_KEY, "key file")
        public = (keys.load_key_file(data, env=app.env).public_key() if b"PRIVATE KEY" in data
                  else keys.load_public_key(data))
    kid = keys.key_id(public)
    pem = keys.public_pem(public)
    written = keys.write_public_key(out, public, force=force) if out is not None else None
    data_out: dict[str, object] = {"key_id": kid, "type": keys.key_type(public), "public_key": pem}
    if written is not None:
        data_out["public_key_file"] = str(written)
    if token is not None:
        data_out["kms" if source.startswith("awskms://") else "pkcs11"] = token
    app.emit(data_out, f"key id: {kid}\n{pem.rstrip()}" + (f"\nwrote {written}" if written else ""),
             schema="key-show")


key.add_command(key_list)  # `notary key list`: which keys signed what, when (notary.keyuse)
