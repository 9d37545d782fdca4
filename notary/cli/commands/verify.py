"""`notary verify`: is this subject notarized, unrevoked, by a key I trust?"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

import click

from notary import keys
from notary.cli.common import App, pass_app
from notary.cli.subjects import source_options_flags
from notary.durations import parse_duration
from notary.errors import UsageError
from notary.ledger.base import Ledger
from notary.names import check_name, normalize_name
from notary.verify import Decision, verify_digest

if TYPE_CHECKING:
    from notary.attest import Requirement
    from notary.cli.subjects import BareDigest
    from notary.gate.policy import Policy
    from notary.sources.base import Subject
    from notary.status import TrustedKey


@click.command("verify")
@click.argument("subject")
@click.option("--key", "key_paths", multiple=True, metavar="PUBLIC_KEY",
              help="A trusted public key (repeatable). Without it, the keys the [policy] trust rules of notary.toml "
              "name for the image's name (first matching rule), with the policy's name binding and max_age.")
@click.option("--name", metavar="NAME", help="The image name it must be notarized under (e.g. "
              "registry.example/team/app:1.4); it also picks the [policy] trust rule when no --key is given. "
              "Default: the name SUBJECT carries (a registry:// reference, a Docker image name, a layout's image "
              "name annotation).")
@click.option("--max-age", "max_age", metavar="DURATION", help="Refuse notarizations older than this (e.g. 30d; s, m, h, d, w; not 0, "
              "leave it out for no limit, or for the policy's max_age when the keys come from [policy]).")
@click.option("--identity-only", "identity_only", is_flag=True,
              help="Only compute the subject's digest; do not read and hash its blobs (for callers that trust "
              "the bytes, like a runtime that checks blobs itself).")
@click.option("--pull-blobs", "pull_blobs", is_flag=True,
              help="For a registry:// subject, also download and hash every blob (default: identity only).")
@click.option("--platform", metavar="OS/ARCH",
              help="The platform that will run it (e.g. linux/arm64): a multi-arch index is then refused only "
              "for a revoked manifest of that platform. Without it, any revoked platform manifest refuses.")
@click.option("--require", "required", multiple=True, metavar="URI",
              help="A predicate type a trusted key must have attested about the digest (repeatable), e.g. "
              "https://slsa.dev/provenance/v1; with keys from [policy], the rule's own require applies too.")
@source_options_flags
@pass_app
def verify(app: App, subject: str, key_paths: tuple[str, ...], name: str | None, max_age: str | None,
           identity_only: bool, pull_blobs: bool, platform: str | None, required: tuple[str, ...] = (),
           **flags: object) -> None:
    """Exit 0 if SUBJECT is notarized by a trusted key and not revoked; otherwise say why and exit non-zero.

    Every record read is proven included in the ledger, and the ledger proven consistent with the state this
    client trusted before (exit 3 if not). verify never trusts a key it was not told to trust.

    A local image (oci:, oci-archive:, docker-archive:, docker-daemon:) is read and every blob hashed against
    its digest, and every artifact the trusted record lists must be there: altered bytes are exit 3, as they
    are for notarize. --identity-only skips that; registry images are identity-only unless --pull-blobs.

    Without --key, the [policy] of notary.toml decides which keys are trusted, as the gate does: the first
    trust rule matching the image's name, and (require_name_match, the default) only under a name the
    records bind. A subject that carries no name (a layout tagged only v1) matches only a rule for "*";
    give --name.

    \b
    Examples:
      notary verify oci:build/layout:v1 --key ci.key.pub && echo trusted
      notary verify registry://registry.example.com/team/app:1.4 --key ci.key.pub --max-age 30d
      notary --config notary.toml verify oci:build/layout:v1 --name registry.example.com/team/app:1.4
      notary verify oci:build/layout:v1 --key ci.key.pub --require https://slsa.dev/provenance/v1
    """
    from notary.cli.subjects import read_subjects
    from notary.errors import IntegrityError

    # the flag is checked before any key or ledger is touched; "0s" is refused, as in a policy (durations.py)
    age = parse_duration(max_age, "--max-age") if max_age is not None else None
    if platform is not None and not re.fullmatch(r"[a-z0-9_]+/[a-z0-9_]+(/[a-z0-9_.]+)?", platform):
        raise UsageError(f"--platform {platform!r} is not OS/ARCH[/VARIANT]", hint="e.g. linux/amd64")
    chosen = check_name(name) if name is not None else None
    requirements = _requirements(required)
    given = [keys.load_public_key(p) for p in key_paths]
    policy = None if given else load_trust_policy(app)  # a bad policy stops here, before any I/O
    if policy is not None and age is None:
        age = policy.max_age
    subjects, read = read_subjects(app, subject, dict(flags), read_bytes=not identity_only, pull_blobs=pull_blobs)
    ledger = app.open_ledger()
    decisions = [_decide(ledger, s, chosen, given, policy, age, platform, requirements) for s in subjects]
    if read:
        for s, d in zip(subjects, decisions, strict=True):
            held = {a.digest for a in s.artifacts} | {s.digest}
            missing = [str(a.get("digest")) for a in (d.record.artifacts if d.record else ()) if a.get("digest") not in held]
            if d.allowed and missing:
                raise IntegrityError(f"{s.digest}: the trusted record lists {missing[0]}, which the local image does "
                                     "not hold: it is not the image that was notarized")
    refused = [d for d in decisions if not d.allowed]
    app.emit(
        {"subject": subject, "allowed": not refused, "content_verified": read,
         "bytes_hashed": _bytes_hashed(subjects) if read else 0,
         "bytes_checked": read,  # deprecated alias of content_verified, removed in 0.3 (docs/json.md)
         "head": next((d.head.to_json() for d in decisions if d.head is not None), None),
         "decisions": [_with_absence(ledger, d) | ({"platform": s.platform} if s.platform else {})
                       for s, d in zip(subjects, decisions, strict=True)] if app.json else []},
        lambda: "\n".join(f"trusted: {d.reason}" + (f" [{s.platform}]" if s.platform else "")
                          for s, d in zip(subjects, decisions, strict=True) if d.allowed),
        schema="verify",
    )
    if refused:
        for d in refused:
            click.echo(f"notary: refused: {d.reason}", err=True)
        raise SystemExit(1)


def _bytes_hashed(subjects: Sequence[Subject | BareDigest]) -> int:
    """The bytes read and hashed against their digests: the sizes of the distinct blobs the subjects are made of."""
    sizes = {a.digest: a.size for s in subjects for a in getattr(s, "artifacts", ())}
    return sum(sizes.values())


def load_trust_policy(app: App) -> Policy:
    """The [policy] whose trust rules pick the keys when no --key is given; without one, a usage error (verify
    never trusts a key it was not told to trust)."""
    from notary.gate.policy import load_policy

    if not app.config.data.get("policy"):
        raise UsageError(
            "no trusted key given",
            hint="pass --key PUBLIC_KEY (repeatable) or configure [policy] trusted keys in notary.toml",
        )
    return load_policy(app.config)


def _requirements(required: tuple[str, ...]) -> tuple[Requirement, ...]:
    """--require URIs as requirements (known predicate types only, as in a policy: a typo is exit 2)."""
    if not required:
        return ()
    from notary.attest import parse_requirements

    return parse_requirements(list(required), "--require")


def _decide(ledger: Ledger, subject: Subject | BareDigest, chosen: str | None, given: list[keys.PublicKey],
            policy: Policy | None, age: timedelta | None, platform: str | None,
            requirements: tuple[Requirement, ...] = ()) -> Decision:
    """One subject's decision: with --key, those keys; else the keys of the policy's first rule for its name,
    and the name binding the gate applies (gate/decision.py), so `verify --config` and the gate agree."""
    from notary.gate.decision import name_not_bound
    from notary.gate.resolve import carried_name

    image = chosen or carried_name(subject)
    trusted: list[keys.PublicKey | TrustedKey] = list(given)
    if policy is not None:
        rule = policy.rule_for(image)
        if rule is None:
            shown = normalize_name(image) if image else "(unnamed)"
            hint = "" if image else " (the subject carries no image name: pass --name REGISTRY/REPOSITORY)"
            return Decision(subject.digest, False, "no-trust-rule",
                            f"no trust rule in the policy matches image {shown}{hint}")
        trusted = list(rule.keys)
        requirements = (*rule.require, *requirements)
    decision = verify_digest(ledger, subject.digest, trusted, max_age=age, platform=platform)
    binding = chosen is not None or (policy is not None and policy.require_name_match)
    if decision.allowed and image and binding:
        unbound = name_not_bound(image, [decision])
        if unbound is not None:
            return decision._replace(allowed=False, status="name-mismatch", reason=unbound)
    if decision.allowed and requirements:
        from notary.attest import unmet

        missing = unmet(ledger, subject.digest, trusted, requirements)
        if missing is not None:
            return decision._replace(allowed=False, status="missing-attestation", reason=missing)
    return decision


def _with_absence(ledger: Ledger, decision: Decision) -> dict[str, object]:
    """A trusted signer with no record about the digest says so with proof (docs/proofs.md, "Absence"): an
    answer of "not notarized" is then checkable, not just the ledger's silence."""
    from notary import records
    from notary.lookup import absence_proof

    out = decision.to_json()
    rows = out["signers"]  # one per finding, in order (Decision.to_json)
    assert isinstance(rows, list)
    for finding, row in zip(decision.findings, rows, strict=True):
        if not finding.versions and isinstance(row, dict):
            row["absence"] = absence_proof(ledger, records.subject_key(decision.digest, finding.signer))
    return out
