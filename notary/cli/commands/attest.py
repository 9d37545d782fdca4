"""`notary attest`: an in-toto attestation about a subject, signed and stored in the ledger beside its records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import click

from notary import keys
from notary.cli.common import App, pass_app, signing_key_source
from notary.cli.subjects import source_options, source_options_flags

if TYPE_CHECKING:
    from notary.sources.base import Subject


@click.command("attest")
@click.argument("subject")
@click.option("--predicate-type", "predicate_type", required=True, metavar="URI",
              help="The predicate's type, an https URI, e.g. https://slsa.dev/provenance/v1, "
              "https://spdx.dev/Document, https://cyclonedx.org/bom.")
@click.option("--predicate", "predicate_path", required=True, metavar="FILE",
              help="The predicate: one JSON object (at most 1 MiB; an SPDX or CycloneDX SBOM 16 MiB).")
@click.option("--key", "key_path", metavar="PATH|URI", help="Private key file, or the pkcs11: or awskms:// URI of a key in a "
              "token or AWS KMS (docs/keys.md). Default: NOTARY_SIGNING_KEY (PEM text or URI) or [signing] key in notary.toml.")
@click.option("--name", "names", multiple=True, metavar="IMAGE",
              help="The image name the statement's subject carries (default: the name SUBJECT carries).")
@source_options_flags
@pass_app
def attest(app: App, subject: str, predicate_type: str, predicate_path: str, key_path: str | None,
           names: tuple[str, ...], **source_flags: object) -> None:
    """Sign an in-toto Statement v1 about SUBJECT's digests and store it in the ledger, in a DSSE envelope.

    SUBJECT takes every form notarize takes (and a bare sha256: digest). The statement's subject lists the
    image's digests (a multi-arch index: the index and each platform manifest), each with the image's name,
    never a local path; its predicate is the file as given. It is stored under each digest, per signer and
    predicate type (docs/records.md, "Attestations"), proven like every record, and a policy can require it
    (docs/gate.md, "Required attestations"). An attestation never makes a digest trusted: notarization and
    revocation decide that first.

    A predicate that is not one bounded JSON object (no duplicate keys, at most 64 deep) is exit 2, and
    nothing is written.

    \b
    Examples:
      notary attest oci:build/layout:v1 --predicate-type https://slsa.dev/provenance/v1 --predicate prov.json --key ci.key
      notary attest registry://registry.example.com/team/app:1.4 --predicate-type https://spdx.dev/Document --predicate sbom.spdx.json --key ci.key
      notary attest sha256:4f1c... --predicate-type https://in-toto.io/attestation/test-result/v0.1 --predicate tests.json --name registry.example.com/team/app
    """
    from notary import attest as attestations
    from notary.names import check_name

    ptype = attestations.check_type(predicate_type)
    sbom = ptype in attestations.SBOM_TYPES
    limit = attestations.MAX_SBOM if sbom else attestations.MAX_PREDICATE
    predicate = attestations.load_predicate(predicate_path, limit=limit,
                                            what="SBOM file" if sbom else "predicate file")
    if sbom and attestations.sbom_type(predicate) != ptype:
        raise attestations.PredicateError(f"{predicate_path} is an {attestations.sbom_type(predicate)} document, "
                                          f"not {ptype}")
    bound = tuple(check_name(n) for n in names)
    signer = keys.load_private_key(signing_key_source(key_path, app), env=app.env)
    pairs = subject_pairs(app, subject, dict(source_flags), bound)
    ledger = app.open_ledger()  # an attestation belongs beside the records it speaks of: never a new ledger
    written = attestations.attest(ledger, pairs, signer, ptype, predicate)

    def human() -> str:
        lines = [f"attested {ptype} for {len(pairs)} subject(s) in tx {written.receipt.tx} (signer {written.signer})"]
        lines += [f"  {digest}  {name}" for name, digest in pairs]
        return "\n".join(lines)

    app.emit(written.to_json(), human, schema="attest")


def subject_pairs(app: App, spec: str, flags: Mapping[str, object], names: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(name, digest) of each subject spec names, resolved as notarize resolves it (every blob hashed against
    its digest); a bare digest as is. The name is the image's (--name first, normalized), never a path."""
    from notary.cli.subjects import _BARE_DIGEST
    from notary.records import check_digest
    from notary.sources import resolve

    if _BARE_DIGEST.match(spec):
        return [(names[0] if names else check_digest(spec), check_digest(spec))]
    return [(names[0] if names else statement_name(s), s.digest)
            for s in resolve(spec, options=source_options(app, flags), names=names)]


def statement_name(subject: Subject) -> str:
    """The in-toto subject name of a resolved subject: its first repository (what --name or the image itself
    says it is published as), else the name its record carries (an image reference, or a file's base name)."""
    names = getattr(subject, "names", ())
    return str(names[0]) if names else str(subject.name)
