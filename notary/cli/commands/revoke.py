"""`notary revoke`: append a revocation; history keeps the notarization it overrides."""

from __future__ import annotations

import click

from notary import keys
from notary.ci import detect
from notary.cli.common import App, pass_app, signing_key_source
from notary.cli.subjects import identify_digests, source_options_flags
from notary.errors import UsageError


@click.command("revoke")
@click.argument("subject")
@click.option("--reason", required=True, metavar="TEXT", help="Why (shown to everyone the gate refuses).")
@click.option("--key", "key_path", metavar="PATH|URI", help="Private key file, pkcs11: or awskms:// URI "
              "(default: NOTARY_SIGNING_KEY or [signing] key).")
@click.option("--job-id", "job_id", metavar="ID", help="CI job recording the revocation (optional).")
@source_options_flags
@pass_app
def revoke(app: App, subject: str, reason: str, key_path: str | None, job_id: str | None, **flags: object) -> None:
    """Revoke SUBJECT (a digest or any SUBJECT form) under your signing key.

    Verifiers that trust this key refuse the subject from now on. Nothing is erased: the notarization
    and the revocation both stay in the ledger's history.

    \b
    Examples:
      notary revoke sha256:4f1c... --reason "CVE-2026-1234" --key ci.key
      notary revoke oci:build/layout:v1 --reason "built from a compromised base" --key ci.key --job-id "$CI_JOB_ID"
    """
    from notary.notarize import revoke as write_revocation

    signer = keys.load_private_key(signing_key_source(key_path, app), env=app.env)
    try:
        ci = detect(app.env.variables, job_id)
    except UsageError:
        ci = {}
    targets = identify_digests(app, subject, dict(flags))
    ledger = app.open_ledger()  # a revocation needs the ledger that holds what it revokes: never a new one
    results = [write_revocation(ledger, digest, signer, reason, ci) for digest, _ in targets]
    app.emit(
        {"revoked": [r.to_json() for r in results], "head": results[-1].receipt.head.to_json() if results else None},
        schema="revoke", human=
        lambda: "\n".join(
            f"revoked {r.records[0].digest} in tx {r.receipt.tx} (signer {r.records[0].signer}): {reason}"
            for r in results
        ))
