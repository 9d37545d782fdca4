"""`notary key list`: every key that signed records in the ledger, what and when, proven complete
(notary.keyuse). Kept out of key.py so that generating or showing a key never loads the ledger's readers."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import click

from notary import keys
from notary.cli.common import App, pass_app
from notary.errors import UsageError
from notary.ledger.base import rfc3339
from notary.status import TrustedKey

if TYPE_CHECKING:
    from notary.keyuse import KeyList, KeyUse


@click.command("list")
@click.option("--ledger", "ledger", metavar="URL",
              help="The ledger to read (the same as the global --ledger; default NOTARY_LEDGER, then notary.toml).")
@click.option("--key", "key_paths", multiple=True, metavar="PUBLIC_KEY",
              help="A trusted public key (repeatable; every role, no end): mark each listed key trusted or not.")
@click.option("--policy", "policy_file", metavar="FILE",
              help="A notary.toml whose [policy] trust rules name the trusted keys, with their roles and "
              "not_after (key paths relative to it). Not with --key.")
@pass_app
def list_command(app: App, ledger: str | None, key_paths: tuple[str, ...], policy_file: str | None) -> None:
    """List every key that signed records in the ledger: its key id (as `key show` prints it), type, how many
    notarizations, revocations, reinstatements and attestations it signed, and its first and last transaction
    with their proven ledger times.

    The list is proven complete, never enumerated from unproven rows: it is read as `audit diff` reads the
    whole ledger (embedded: every leaf proven under the verified head and the key index rebuilt from them
    and compared with the signed index root; immudb: the verified mirror's replay). A deleted or edited row
    is exit 3; immudb with the mirror off is exit 2 (nothing would prove the list complete).

    With --key or --policy each key is marked trusted or not, with its roles and not_after, and the records
    that count for nothing are counted: those written after the not_after of the role they need, and all of
    an untrusted key's. Trusted keys that signed nothing are listed too. Without either, nothing is judged.

    \b
    Examples:
      notary key list --ledger file:///var/lib/notary/ledger.db
      notary key list --key release-2026.pub --key security-team.pub
      notary key list --policy /etc/notary/notary.toml --json
    """
    if key_paths and policy_file:
        raise UsageError("--key and --policy both name trusted keys", hint="give one of them")
    if ledger is not None:
        app.ledger_flag = ledger
    from notary.keyuse import key_list

    trusted, images = _trusted(key_paths, policy_file, app)  # a bad key or policy stops here, before any I/O
    found = key_list(app.open_ledger(), trusted, images)
    app.emit(found.to_json(), lambda: _table(found, app.ledger_url or ""), schema="key-list")


def _trusted(key_paths: tuple[str, ...], policy_file: str | None,
             app: App) -> tuple[list[TrustedKey] | None, dict[str, tuple[str, ...]]]:
    """The trusted keys (None: none named) and, from a policy, the image patterns of the rules naming each."""
    if key_paths:
        return [TrustedKey.of(keys.load_public_key(p)) for p in key_paths], {}
    if policy_file is None:
        return None, {}
    from notary.config import load_config
    from notary.gate.policy import load_policy

    policy = load_policy(load_config(policy_file, app.env))
    images: dict[str, tuple[str, ...]] = {}
    trusted: list[TrustedKey] = []
    for rule in policy.trust:
        for tk in rule.keys:
            trusted.append(tk)
            images[tk.key_id] = tuple(dict.fromkeys((*images.get(tk.key_id, ()), *rule.images)))
    return trusted, images


def _table(found: KeyList, url: str) -> str:
    lines = [f"{url}: {len(found.keys)} key(s) over {found.entries} entries, tx 1..{found.head.tx}, proven "
             f"complete ({found.method})"]
    if not found.keys:
        lines.append("  no key has signed a record in this ledger")
        return "\n".join(lines)
    head = f"{'KEY ID':<71}  {'TYPE':<10} {'NOTAR':>5} {'REVOK':>5} {'REINS':>5} {'ATTES':>5}  FIRST  LAST"
    lines.append(head + ("  TRUST" if found.judged else ""))
    for k in found.keys:
        n = k.counts
        row = (f"{k.key_id:<71}  {k.type or '?':<10} {n['notarization']:>5} {n['revocation']:>5} "
               f"{n['reinstatement']:>5} {n['attestation']:>5}  {_when(k.first)}  {_when(k.last)}")
        lines.append(row + (f"  {_trust(k)}" if found.judged else ""))
    return "\n".join(lines)


def _when(point: tuple[int, datetime | None] | None) -> str:
    if point is None:
        return "-"
    tx, time = point
    return f"tx {tx} {rfc3339(time) or '?'}"


def _trust(k: KeyUse) -> str:
    tk = k.trusted
    if tk is None:
        return "NOT trusted (counts for nothing)"
    roles = ", ".join(f"{r} until {rfc3339(end)}" if end else r for r, end in tk.grants)
    late = f"; {k.after_not_after} after not_after (count for nothing)" if k.after_not_after else ""
    other = k.not_counted - k.after_not_after
    lacking = f"; {other} need a role it lacks" if other else ""
    return f"trusted: {roles}{late}{lacking}"
