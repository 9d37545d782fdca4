"""`notary` entry point: global options, lazily loaded command modules, one-line errors with exit codes."""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
from typing import NoReturn

import click

from notary import __version__
from notary.cli.common import App
from notary.errors import AbsentError, NotaryError

# name -> (module, attribute, one-line help). Modules load only when their command runs, so
# `notary verify` never imports the registry client or the immudb driver it does not need.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "notarize": ("notary.cli.commands.notarize", "notarize", "Hash, sign and record images or artifacts."),
    "verify": ("notary.cli.commands.verify", "verify", "Check a subject is notarized by a trusted key."),
    "revoke": ("notary.cli.commands.revoke", "revoke", "Record that a subject must no longer be trusted."),
    "attest": ("notary.cli.commands.attest", "attest", "Sign and record an in-toto attestation (SLSA, SBOM) about a subject."),
    "history": ("notary.cli.commands.audit", "history", "Every record about a subject, with proofs."),
    "get": ("notary.cli.commands.audit", "get", "A subject's records now or as of a transaction or time."),
    "lookup": ("notary.cli.commands.audit", "lookup", "Find notarizations by CI job id or artifact digest."),
    "audit": ("notary.cli.commands.audit_diff", "audit", "What changed between two points in time, proven complete."),
    "evidence": ("notary.cli.commands.evidence", "evidence", "Export a subject's proofs; check them offline."),
    "sync": ("notary.cli.commands.sync", "sync", "Copy an edge ledger's records to another ledger, verified, resumable."),
    "witness": ("notary.cli.commands.witness", "witness", "A C2SP witness: cosign checkpoints that are consistent."),
    "ledger": ("notary.cli.commands.ledger", "ledger", "Inspect the ledger and this client's trusted state."),
    "key": ("notary.cli.commands.key", "key", "Generate and inspect signing keys."),
    "gate": ("notary.cli.commands.gate", "gate", "Refuse to run images that fail verification (hooks, webhook)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        try:
            command: click.Command | None = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                return None
            raise
        if not gc.isenabled():  # the console script's start-up is over (main): collect from here on
            gc.freeze()
            gc.enable()
        if command is not None:
            _accept_json_flag(command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, text) for name, (_, _, text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and isinstance(ctx.obj, App):
        ctx.obj.json = True


def _accept_json_flag(command: click.Command) -> None:
    """`--json` works after the subcommand too (`notary lookup --job-id 1 --json`), for every command."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _accept_json_flag(sub)
    if not any(p.name == "json_after" for p in command.params):
        command.params.append(click.Option(["--json", "json_after"], is_flag=True, expose_value=False,
                                           callback=_set_json, help="Machine-readable JSON on stdout "
                                           "(also accepted before the command)."))


EPILOG = """\b
Examples:
  notary key generate --out ci.key
  notary notarize oci:build/layout:v1 --job-id "$CI_JOB_ID" --key ci.key
  notary verify oci:build/layout:v1 --key ci.key.pub
  notary revoke sha256:... --reason "CVE-2026-1234" --key ci.key
  notary history sha256:...        notary get sha256:... --at-time 2026-03-01T00:00:00Z

\b
Exit codes: 0 ok/trusted, 1 refused, 2 usage or bad input, 3 integrity failure,
4 ledger unreachable or I/O failure.
Environment: NOTARY_LEDGER, NOTARY_CONFIG, NOTARY_STATE_DIR, NOTARY_SIGNING_KEY,
NOTARY_KEY_PASSPHRASE, NOTARY_IMMUDB_PASSWORD(_FILE), NOTARY_IMMUDB_MIRROR, NOTARY_IMMUDB_GATEWAY,
NOTARY_REGISTRY_USERNAME/PASSWORD/TOKEN; registry logins also from REGISTRY_AUTH_FILE, DOCKER_CONFIG.
"""


@click.group(cls=LazyGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--ledger", "ledger", metavar="URL", help="Ledger URL: file:///path/ledger.db (default under "
              "the user's data dir), immudb://user@host:3322/db, or partitioned:URL1,URL2,... (one ledger over several; "
              "docs/partitions.md). Env: NOTARY_LEDGER.")
@click.option("--config", "config", metavar="FILE", help="notary.toml (default ./notary.toml, then the user "
              "config dir). Env: NOTARY_CONFIG.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
@click.version_option(__version__, prog_name="notary")
@click.pass_context
def cli(ctx: click.Context, ledger: str | None, config: str | None, as_json: bool) -> None:
    """Notarize container images and build artifacts in a verifiable ledger, and verify them before they run.

    Every ledger read is proven against this client's trusted state, which only moves forward.
    """
    from notary.environment import Environment

    app = App(ledger_flag=ledger, config_flag=config, json=as_json, env=Environment.of_process())  # read once
    ctx.obj = app  # subcommands find it here (and set app.json when --json comes after them)
    ctx.call_on_close(app.close)


def _report(error: NotaryError, as_json: bool) -> None:
    if as_json:
        import json

        body: dict[str, object] = {"kind": error.kind, "message": error.one_line(), "exit_code": error.exit_code}
        if isinstance(error, AbsentError):
            body.update(absence=error.absence, head=error.head)
        click.echo(json.dumps({"schema": "notary.error/v1", "error": body}))
    click.echo(f"notary: {error.kind}: {error.one_line()}", err=True)


def main(argv: list[str] | None = None) -> NoReturn:
    """The `notary` console script (argv None) or an in-process call (argv given: ends with SystemExit).

    A console-script process runs one command and ends: the cyclic garbage collector is off while the
    start-up modules load (then they are frozen out of its way and it is back on before the command runs,
    see LazyGroup.get_command), and the exit skips the interpreter's teardown once stdout and stderr are
    flushed, when no other thread is alive. Together about a tenth of `notary verify`'s instructions."""
    if argv is not None:
        _main(argv)
    import gc

    gc.disable()
    try:
        _main(sys.argv[1:])
    except SystemExit as done:
        _exit_now(done.code)
        raise


def _exit_now(code: object) -> None:
    """os._exit(code) for a plain exit code with only this thread alive (files are closed or fsync'ed by the
    commands themselves); otherwise returns and the caller exits normally."""
    import threading

    if not isinstance(code, int) or isinstance(code, bool) or threading.active_count() > 1:
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe must not turn the exit code into a traceback
            stream.flush()
    os._exit(code)


def _main(args: list[str]) -> NoReturn:
    as_json = "--json" in args
    try:
        result = cli.main(args=args, prog_name="notary", standalone_mode=False)
        sys.exit(result if isinstance(result, int) else 0)
    except NotaryError as error:
        _report(error, as_json)
        sys.exit(error.exit_code)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as error:
        error.show()
        sys.exit(2 if error.exit_code in (1, 2) else error.exit_code)
    except click.exceptions.Abort:
        click.echo("notary: aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("notary: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)


if __name__ == "__main__":
    main()
