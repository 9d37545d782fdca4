"""`notary verify`: is this subject notarized, unrevoked, by a key I trust?"""

from __future__ import annotations

import re
from datetime import timedelta

import click

from notary import keys
from notary.cli.common import App, pass_app
from notary.cli.subjects import identify_digests, source_options_flags
from notary.errors import UsageError
from notary.verify import verify_digest

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise UsageError(f"not a duration: {text!r}", hint="e.g. 90m, 12h, 30d, 2w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@click.command("verify")
@click.argument("subject")
@click.option("--key", "key_paths", multiple=True, metavar="PUBLIC_KEY",
              help="A trusted public key (repeatable). Without it, the trusted keys of the [policy] in notary.toml.")
@click.option("--max-age", "max_age", metavar="DURATION", help="Refuse notarizations older than this (e.g. 30d).")
@source_options_flags
@pass_app
def verify(app: App, subject: str, key_paths: tuple[str, ...], max_age: str | None, **flags: object) -> None:
    """Exit 0 if SUBJECT is notarized by a trusted key and not revoked; otherwise say why and exit non-zero.

    Every record read is proven included in the ledger, and the ledger proven consistent with the state this
    client trusted before (exit 3 if not). verify never trusts a key it was not told to trust.
    """
    trusted = [keys.load_public_key(p) for p in key_paths] or policy_keys(app, subject)
    age = parse_duration(max_age) if max_age else None
    targets = identify_digests(app, subject, dict(flags))
    ledger = app.open_ledger()
    decisions = [verify_digest(ledger, digest, trusted, max_age=age) for digest, _ in targets]
    refused = [d for d in decisions if not d.allowed]
    app.emit(
        {"subject": subject, "allowed": not refused, "decisions": [d.to_json() for d in decisions]},
        lambda: "\n".join(f"trusted: {d.reason}" for d in decisions if d.allowed),
    )
    if refused:
        for d in refused:
            click.echo(f"notary: refused: {d.reason}", err=True)
        raise SystemExit(1)


def policy_keys(app: App, subject: str) -> list[keys.PublicKey]:
    try:
        from notary.gate.policy import load_policy
    except ImportError:
        load_policy = None  # type: ignore[assignment]
    if load_policy is not None and app.config.data.get("policy"):
        found = load_policy(app.config).keys_for(subject)
        if found:
            return list(found)
    raise UsageError(
        "no trusted key given",
        hint="pass --key PUBLIC_KEY (repeatable) or configure [policy] trusted keys in notary.toml",
    )
