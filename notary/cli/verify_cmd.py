"""`notary verify`: is this subject notarized, unrevoked, by a key I trust?"""

from __future__ import annotations

import click

from notary import keys
from notary.cli.common import App, pass_app
from notary.cli.subjects import identify_digests, source_options_flags
from notary.durations import parse_duration
from notary.errors import UsageError
from notary.verify import verify_digest


@click.command("verify")
@click.argument("subject")
@click.option("--key", "key_paths", multiple=True, metavar="PUBLIC_KEY",
              help="A trusted public key (repeatable). Without it, the trusted keys of the [policy] in notary.toml.")
@click.option("--max-age", "max_age", metavar="DURATION", help="Refuse notarizations older than this (e.g. 30d; s, m, h, d, w; not 0, "
              "leave it out for no limit).")
@source_options_flags
@pass_app
def verify(app: App, subject: str, key_paths: tuple[str, ...], max_age: str | None, **flags: object) -> None:
    """Exit 0 if SUBJECT is notarized by a trusted key and not revoked; otherwise say why and exit non-zero.

    Every record read is proven included in the ledger, and the ledger proven consistent with the state this
    client trusted before (exit 3 if not). verify never trusts a key it was not told to trust.
    """
    # the flag is checked before any key or ledger is touched; "0s" is refused, as in a policy (durations.py)
    age = parse_duration(max_age, "--max-age") if max_age is not None else None
    trusted = [keys.load_public_key(p) for p in key_paths] or policy_keys(app, subject)
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
