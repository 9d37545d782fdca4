"""`notary gate`: the pre-run verification gate (script check, runtime hooks, webhook, authz plugin)."""

from __future__ import annotations

import sys
from typing import Any

import click

from notary.cli.common import App, pass_app
from notary.cli.subjects import source_options, source_options_flags


@click.group("gate")
def gate() -> None:
    """Refuse to run images that fail notary's proof checks, per the [policy] in notary.toml.

    \b
    Exit codes: 0 allowed, 1 refused, 2 usage or bad input, 3 integrity failure,
    4 ledger unreachable (refused unless the policy says fail = "open").
    """


def _finish(app: App, decision: Any) -> None:
    app.emit(decision.to_json(), lambda: f"allowed: {decision.reason}" if decision.allowed else "")
    if not decision.allowed:
        click.echo(f"notary: refused: {decision.reason}", err=True)
        raise SystemExit(decision.exit_code or 1)


@gate.command("check")
@click.argument("image")
@click.option("--name", metavar="NAME", help="Image name for the policy's globs when IMAGE is a bare digest.")
@source_options_flags
@pass_app
def check(app: App, image: str, name: str | None, **flags: Any) -> None:
    """Decide about IMAGE as the runtime gates would: exit 0 allowed, 1 refused, 3 integrity, 4 unreachable.

    IMAGE is a reference (registry.example/app:1.0, a tag is resolved through the registry; app@sha256:...
    needs no registry), a bare sha256: digest, or a notary SUBJECT (oci:DIR:TAG, docker-archive:FILE,
    docker-daemon:NAME, registry://...). The decision is logged to the policy's decision_log.
    """
    from notary.gate.decide import gate_for
    from notary.gate.resolve import resolve_image

    the_gate = gate_for(app.config, app.ledger_url, front_end="check")
    try:
        found_name, digests = resolve_image(image, source_options(app, flags))
        decision = the_gate.check(name or found_name, digests)
    finally:
        the_gate.close()
    _finish(app, decision)


@gate.command("oci-hook", context_settings={"ignore_unknown_options": True})
@click.option("--storage-root", metavar="DIR", help="podman storage root (default: from the bundle's rootfs, "
              "else /var/lib/containers/storage).")
@click.pass_obj
def oci_hook(app: App, storage_root: str | None) -> None:
    """OCI runtime hook (createRuntime / prestart): container state on stdin; non-zero exit refuses.

    The lighter `python -m notary.gate.oci_hook` does the same with a faster start.
    """
    from notary.gate.oci_hook import main

    argv = []
    if app.config_flag:
        argv += ["--config", app.config_flag]
    if app.ledger_flag:
        argv += ["--ledger", app.ledger_flag]
    if storage_root:
        argv += ["--storage-root", storage_root]
    code = main(argv, sys.stdin.buffer)
    raise SystemExit(code)
