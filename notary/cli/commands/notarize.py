"""`notary notarize`: the CI step after a build."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import click

from notary import keys
from notary.ci import detect
from notary.cli.common import App, pass_app, signing_key_source, stdout_is_terminal
from notary.cli.progress import TerminalProgress
from notary.cli.subjects import source_options, source_options_flags

if TYPE_CHECKING:
    from notary.ledger.base import Ledger
    from notary.records import Record
    from notary.sources.base import Subject

SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"  # notary.attest.SLSA_PROVENANCE (not imported: start-up)


@click.command("notarize")
@click.argument("subjects", nargs=-1, required=True, metavar="SUBJECT...")
@click.option("--job-id", "job_id", metavar="ID", help="CI job id (auto-detected on GitHub Actions, GitLab CI, "
              "Jenkins, CircleCI, Tekton).")
@click.option("--key", "key_path", metavar="PATH|URI", help="Private key file, or the pkcs11: or awskms:// URI of a key in a "
              "token or AWS KMS (docs/keys.md). Default: NOTARY_SIGNING_KEY (PEM text or URI) or [signing] key in "
              "notary.toml. Passphrase: NOTARY_KEY_PASSPHRASE; token PIN: NOTARY_PKCS11_PIN(_FILE).")
@click.option("--name", "names", multiple=True, metavar="IMAGE",
              help="A repository the image is published as (repeatable), e.g. registry.example/team/app: bound "
              "into the record, so a gate with require_name_match admits it only under its names.")
@click.option("--reinstate", is_flag=True, help="Lift this key's earlier revocation of a subject (needs "
              "--reason): writes a reinstatement record instead of a notarization.")
@click.option("--reason", metavar="TEXT", help="Why a revoked subject is reinstated (with --reinstate).")
@click.option("--create", is_flag=True, help="Create the embedded ledger if it does not exist (else only the "
              "default location is created by itself; `notary ledger init` does it on purpose).")
@click.option("--provenance", is_flag=True, help="Also attest SLSA provenance v1 (https://slsa.dev/provenance/v1) "
              "from the detected CI context (builder, run URL, commit, job id; never a secret), in the same "
              "transaction (docs/records.md, \"Attestations\").")
@click.option("--sbom", "sbom_path", metavar="FILE", help="Also attest this SBOM (SPDX 2.x/3 or CycloneDX JSON, "
              "at most 16 MiB) as https://spdx.dev/Document or https://cyclonedx.org/bom, in the same transaction.")
@source_options_flags
@pass_app
def notarize(app: App, subjects: tuple[str, ...], job_id: str | None, key_path: str | None,
             names: tuple[str, ...], reinstate: bool, reason: str | None, create: bool,
             provenance: bool = False, sbom_path: str | None = None, **source_flags: object) -> None:
    """Hash SUBJECTs, sign one record per image/artifact, and store them in one ledger transaction.

    \b
    SUBJECT is one of:
      oci:PATH[:TAG|@DIGEST]                OCI image layout (multi-arch: index + each platform)
      docker-archive:FILE.tar               `docker save` output (classic or OCI form)
      docker-daemon:NAME[:TAG]              an image in the local Docker Engine
      registry://HOST[:PORT]/REPO:TAG|@DIG  an image in an OCI registry
      PATH                                  a file or directory (tree digest)

    Every blob is hashed as it streams and checked against the digest naming it; a mismatch stops
    everything (exit 3) and nothing is written.

    Each image record names the repositories it was built or pushed as (registry reference, RepoTags, the
    layout's image-name annotations, --name); files and directories record their base name, never a path.

    Revocations stick: a subject this key revoked is refused (exit 1, naming the revocation) until it is
    notarized with --reinstate --reason TEXT, which records why, for every auditor to see.

    \b
    Examples:
      notary notarize oci:build/layout:v1 --job-id "$CI_JOB_ID" --key ci.key --name registry.example.com/team/app
      notary notarize registry://registry.example.com/team/app@sha256:... --key ci.key
      notary notarize dist/app.tar.gz --key ci.key        # a file (a directory: its tree digest)
      notary notarize oci:build/layout:v1 --key ci.key --reinstate --reason "false positive"
      notary notarize oci:build/layout:v1 --key ci.key --name registry.example.com/team/app --provenance --sbom sbom.spdx.json
    """
    from notary.errors import UsageError
    from notary.names import check_name
    from notary.notarize import notarize as write_notarization
    from notary.sources import IMAGE_KINDS, resolve

    if reinstate and not (reason and reason.strip()):
        raise UsageError("--reinstate needs --reason TEXT: why the revocation no longer applies")
    if reason is not None and not reinstate:
        raise UsageError("--reason is for --reinstate (a notarization needs no reason)")
    bound = tuple(check_name(n) for n in names)
    ci = detect(app.env.variables, job_id)
    sbom = load_sbom(sbom_path) if sbom_path is not None else None  # bad input stops here: nothing written
    signer = keys.load_private_key(signing_key_source(key_path, app), env=app.env)
    options = source_options(app, source_flags)
    progress = TerminalProgress("hashing") if (stdout_is_terminal() and not app.json) else None
    resolved = []
    unnamed: list[str] = []
    try:
        for spec in subjects:
            found = resolve(spec, options=options, progress=progress, names=bound)
            resolved.extend(found)
            if any(s.kind in IMAGE_KINDS and not s.names for s in found):
                unnamed.append(spec)
    finally:
        if progress:
            progress.finish()
    for spec in unnamed:  # after the progress bar, before anything is written: the user can still stop
        click.echo(f"notary: warning: {spec} carries no image name, so a gate with require_name_match (the "
                   "default) refuses it under every name; add --name REGISTRY/REPO (e.g. --name "
                   "registry.example/team/app)", err=True)
    # a ledger URL the user named must exist (a typo would otherwise take the records into a new, empty file)
    ledger = app.open_ledger(create=create or app.ledger_url is None)
    wanted = attestation_writer(resolved, signer, ci, provenance, sbom, ledger)
    written = write_notarization(ledger, resolved, signer, ci, reinstate=reason if reinstate else None,
                                 attestations=wanted)

    def human() -> str:
        lines = [f"notarized {len(written.records)} subject(s) in tx {written.receipt.tx} "
                 f"(job {ci['system']}/{ci['jobId']}, signer {written.records[0].signer})"]
        for record in written.records:
            subject = record.subject
            arts = len(record.artifacts)
            again = f"  REINSTATED: {record.reason}" if record.type == "reinstatement" else ""
            platform = f" [{subject['platform']}]" if subject.get("platform") else ""
            lines.append(f"  {subject['digest']}  {subject.get('kind', '')}{platform}  {subject.get('name', '')}  "
                         f"({arts} artifacts){again}")
        return "\n".join(lines)

    attested = ([SLSA_PROVENANCE] if provenance else []) + ([sbom[0]] if sbom else [])
    app.emit(written.to_json() | {"ci": ci} | ({"attestations": attested} if attested else {}),
             lambda: human() + "".join(f"\n  attested {t}" for t in attested), schema="notarize")


def load_sbom(path: str) -> tuple[str, Mapping[str, object]]:
    from notary.attest import load_sbom as load

    return load(path)


def attestation_writer(subjects: Sequence[Subject], signer: keys.SigningKey, ci: dict[str, str], provenance: bool,
                       sbom: tuple[str, Mapping[str, object]] | None,
                       ledger: Ledger) -> Callable[[Sequence[Record]], dict[str, bytes]] | None:
    """The attestation keys `--provenance` / `--sbom` add to the notarization's transaction (about the
    subjects on the command line, each under its image's name), or None."""
    if not provenance and sbom is None:
        return None
    from notary import attest
    from notary.cli.commands.attest import statement_name

    pairs = [(statement_name(s), s.digest) for s in subjects]
    predicates = ([(attest.SLSA_PROVENANCE, attest.provenance(ci))] if provenance else []) + ([sbom] if sbom else [])

    def writes(_made: Sequence[Record]) -> dict[str, bytes]:
        return attest.attestation_writes(pairs, signer, predicates, max_envelope=attest.envelope_limit(ledger))[0]

    return writes
