"""What every command shares: the global options, opening the ledger, output, and notices.

Commands stay small: they parse flags, call one library function, and hand the result to `emit`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from typing import TypeVar, cast

import click

from notary.config import Config, ledger_url_from, load_config, state_dir_from
from notary.environment import Environment, given
from notary.errors import UsageError
from notary.ledger.base import Ledger


class App:
    """Per-invocation state, built from the global options (`ctx.obj`). A plain class: every command
    (and `notary verify` on a container's start path) pays for its creation.

    env: the environment, read once where the command line is read (main.cli); commands hand it to the
    library, which reads no environment of its own."""

    def __init__(self, ledger_flag: str | None = None, config_flag: str | None = None, json: bool = False,
                 env: Environment | None = None) -> None:
        self.ledger_flag = ledger_flag
        self.config_flag = config_flag
        self.json = json
        self.env = given(env)
        self._config: Config | None = None
        self._ledgers: list[Ledger] = []

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_flag, self.env)
        return self._config

    @property
    def state_dir(self) -> str | None:
        """NOTARY_STATE_DIR, else state_dir in notary.toml (None: the default under the user's state dir)."""
        return state_dir_from(self.config, self.env)

    @property
    def ledger_url(self) -> str | None:
        return ledger_url_from(self.ledger_flag, self.config, self.env)

    def open_ledger(self, *, create: bool = False, mirror: bool | None = None, state_dir: str | None = None,
                    url: str | None = None) -> Ledger:
        """mirror: check immudb reads against the verified mirror (None: NOTARY_IMMUDB_MIRROR, [immudb] mirror);
        state_dir: trust of its own (a monitor's), instead of the client's; url: another ledger than the
        configured one (sync's destination)."""
        from notary.ledger import open_ledger

        ledger = open_ledger(url or self.ledger_url, state_dir=state_dir or self.state_dir, create=create,
                             mirror=mirror, config=self.config, env=self.env)
        self._ledgers.append(ledger)
        return ledger

    def close(self) -> None:
        for ledger in self._ledgers:
            self.flush_notices(ledger)
            with contextlib.suppress(Exception):  # closing must never mask the command's own outcome
                ledger.close()
        self._ledgers.clear()

    def flush_notices(self, ledger: Ledger) -> None:
        for notice in getattr(ledger, "notices", []):
            click.echo(f"notary: {notice}", err=True)
        if getattr(ledger, "notices", None):
            ledger.notices.clear()

    def emit(self, data: object, human: str | Callable[[], str], *, schema: str) -> None:
        """One result: JSON on stdout with --json, else the human text. schema names the documented shape
        (docs/json.md): the object gets `"schema": "notary.<schema>/v1"`."""
        for ledger in self._ledgers:
            self.flush_notices(ledger)
        if self.json:
            if isinstance(data, dict):
                data = {"schema": f"notary.{schema}/{JSON_VERSION}", **data}
            click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        else:
            text = human() if callable(human) else human
            if text:
                click.echo(text)

    def info(self, text: str) -> None:
        """Progress remarks for people: stderr, and silent with --json."""
        if not self.json:
            click.echo(text, err=True)


JSON_VERSION = "v1"
_F = TypeVar("_F", bound=Callable[..., object])
# click's make_pass_decorator is typed for positional-only first parameters; commands take `app` by name
pass_app = cast(Callable[[_F], _F], click.make_pass_decorator(App))


def signing_key_source(flag: str | None, app: App) -> str:
    """Private key from --key, else NOTARY_SIGNING_KEY (PEM text, for CI secrets), else [signing] key. Each may
    instead be a `pkcs11:` or `awskms://` URI naming a key in a token or a KMS (keys.load_private_key opens it;
    never a relative path to resolve, and no secret in it: the PIN and the AWS credentials come from their own
    variables or files)."""
    from notary import signing

    if flag:
        return flag
    env = app.env.signing_key
    if env:
        if signing.is_service_key(env.strip()):
            return env.strip()
        if "-----BEGIN" not in env:
            raise UsageError("NOTARY_SIGNING_KEY must hold the PEM text of the private key, a pkcs11: or an "
                             "awskms:// URI, not a path")
        return env
    configured = app.config.section("signing").get("key")
    if configured:
        text = str(configured)
        return text if signing.is_service_key(text) else app.config.resolve_path(text)
    raise UsageError("no signing key",
                     hint="pass --key PATH (or a pkcs11: or awskms:// URI) or set NOTARY_SIGNING_KEY to the PEM key")


def stdout_is_terminal() -> bool:
    return sys.stderr.isatty()
