"""`notary gate`: the pre-run verification gate (script check, runtime hooks, webhook, authz plugin)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from notary.cli.common import App, pass_app
from notary.cli.subjects import registry_options_flags, source_options, source_options_flags

if TYPE_CHECKING:
    import socketserver
    from collections.abc import Callable

    from notary.gate.decision import Gate, GateDecision
    from notary.gate.metrics import Metrics, ObservedGate, ServerLog


@click.group("gate")
def gate() -> None:
    """Refuse to run images that fail notary's proof checks, per the [policy] in notary.toml.

    \b
    Exit codes: 0 allowed, 1 refused, 2 usage or bad input, 3 integrity failure,
    4 ledger unreachable (refused unless the policy says fail = "open").

    \b
    Examples:
      notary gate check registry.example.com/team/app:1.4
      notary --config /etc/notary/notary.toml gate install podman
    """


LOG_FORMAT = click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
                          help="The server's own lines on stderr (start, stop, warnings, refusals): text, or one "
                          "JSON object per line for journald / kubectl logs. Decisions also go to the decision log.")


def _observed(the_gate: Gate, log_format: str) -> tuple[ObservedGate, Metrics, ServerLog]:
    """(gate whose decisions are counted and logged, its Metrics, the ServerLog) for a resident front end."""
    from notary.gate.metrics import Metrics, ObservedGate, ServerLog

    metrics, log = Metrics(), ServerLog(log_format)
    return ObservedGate(the_gate, metrics, log), metrics, log


def _serve(server: socketserver.BaseServer, the_gate: Gate, banner: str, log: ServerLog) -> None:
    """Serve until interrupted or told to stop (SIGTERM from systemd, Kubernetes, docker stop); the socket and
    the ledger are released however it ends."""
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log.info(banner)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        the_gate.close()
        log.info("stopped")


def _finish(app: App, decision: GateDecision, hint: str | None = None) -> None:
    app.emit(decision.to_json(), lambda: f"allowed: {decision.reason}" if decision.allowed else "", schema="gate-check")
    if not decision.allowed:
        click.echo(f"notary: refused: {decision.reason}" + (f" ({hint})" if hint else ""), err=True)
        raise SystemExit(decision.exit_code or 1)


@gate.command("check", short_help="Decide about one image (exit 0/1/3/4), as the runtime gates would.")
@click.argument("image")
@click.option("--name", metavar="NAME", help="The image name to decide under (the policy's trust rule and the "
              "name its record must bind), e.g. registry.example/team/app:1.4. Default: the name IMAGE carries "
              "(a reference, a registry:// subject, a layout's or archive's image name); a bare digest or a "
              "layout tagged only v1 carries none.")
@click.option("--identity-only", "identity_only", is_flag=True,
              help="For a local image (oci:, oci-archive:, docker-archive:, docker-daemon:), only compute its "
              "digest; do not read and hash its blobs.")
@click.option("--log", "log_decision", is_flag=True,
              help="Also write the decision to the policy's decision_log, as an admission (for a deploy step "
              "that uses gate check as its gate). Without it a check is a question: the log, which `audit "
              "recheck` reads as what the gate admitted, is left alone.")
@source_options_flags
@pass_app
def check(app: App, image: str, name: str | None, identity_only: bool, log_decision: bool, **flags: object) -> None:
    """Decide about IMAGE as the runtime gates would: exit 0 allowed, 1 refused, 3 integrity, 4 unreachable.

    IMAGE is a reference (registry.example/app:1.0, a tag is resolved through the registry; app@sha256:...
    needs no registry), a bare sha256: digest, or a notary SUBJECT (oci:DIR[:TAG|@DIGEST], oci-archive:FILE,
    docker-archive:FILE, docker-daemon:NAME, registry://...). A local image is read and every blob hashed
    against its digest, as `notary verify` does (altered bytes are exit 3); --identity-only skips that. The
    decision goes to the policy's decision_log only with --log.

    \b
    Examples:
      notary gate check registry.example.com/team/app:1.4
      notary gate check oci:build/layout:v1 --name registry.example.com/team/app:1.4
      notary --config /etc/notary/notary.toml gate check registry.example.com/team/app@sha256:... --log
    """
    from notary.errors import NotaryError
    from notary.gate.decision import GateDecision, gate_for
    from notary.gate.resolve import resolve_image
    from notary.names import check_name

    chosen = check_name(name) if name is not None else None  # a usage error before the ledger is touched
    the_gate = gate_for(app.config, app.ledger_url, front_end="check", env=app.env)
    if not log_decision:
        from notary.gate.decision_log import DecisionLog

        the_gate.log = DecisionLog(None)
    try:
        try:
            found_name, digests = resolve_image(image, source_options(app, flags), read_local=not identity_only)
        except NotaryError as exc:  # logged like every other refusal, then reported with its own exit code
            the_gate.log_only(GateDecision(image=chosen or image, digest=None, allowed=False,
                                           exit_code=exc.exit_code,
                                           reason=f"cannot resolve {image}: {exc.one_line()}", via="error"))
            raise
        decision = the_gate.check(chosen or found_name, digests)
    finally:
        the_gate.close()
    unnamed = chosen is None and found_name is None and decision.via == "policy"  # no rule matched "(unnamed)"
    _finish(app, decision, f"{image} carries no image name: pass --name REGISTRY/REPOSITORY, the name it was "
            "notarized under" if unnamed else None)


@gate.command("oci-hook", short_help="OCI runtime hook: container state on stdin, non-zero exit refuses.")
@click.option("--storage-root", metavar="DIR", help="podman storage root (default: from the bundle's rootfs, "
              "else /var/lib/containers/storage).")
@click.pass_obj
def oci_hook(app: App, storage_root: str | None) -> None:
    """OCI runtime hook (createRuntime / prestart): container state on stdin; non-zero exit refuses.

    The lighter `python -m notary.gate.oci_hook` does the same with a faster start.

    \b
    Examples:
      notary --config /etc/notary/notary.toml gate oci-hook < state.json    # as a runtime calls it
    """
    from notary.gate.oci_hook import main

    argv = []
    if app.config_flag:
        argv += ["--config", app.config_flag]
    if app.ledger_flag:
        argv += ["--ledger", app.ledger_flag]
    if storage_root:
        argv += ["--storage-root", storage_root]
    code = main(argv, sys.stdin.buffer, env=app.env)
    raise SystemExit(code)


@gate.command("webhook", short_help="Kubernetes validating admission webhook over TLS.")
@click.option("--cert", "certfile", metavar="PEM", help="TLS certificate (chain) file (required).")
@click.option("--key", "keyfile", metavar="PEM", help="TLS private key file (required).")
@click.option("--insecure-plain-http", is_flag=True,
              help="For local tests only: serve plain HTTP on a loopback address, without --cert/--key. "
              "The API server never calls a plain-HTTP webhook.")
@click.option("--port", type=click.IntRange(1, 65535), default=8443, show_default=True,
              help="TCP port for /validate, /healthz and /metrics (the Service's targetPort).")
@click.option("--host", default=None, help="Address to listen on.  [default: 0.0.0.0; 127.0.0.1 with "
              "--insecure-plain-http]")
@LOG_FORMAT
@click.option("--max-body", type=click.IntRange(1024, 64 << 20), default=1 << 20, show_default=True,
              help="Largest AdmissionReview body accepted (bytes); larger requests get HTTP 413.")
@click.option("--workers", type=click.IntRange(1, 1024), default=16, show_default=True,
              help="Threads serving connections (each does its connection's TLS handshake and decides its "
              "reviews); tag resolution through the registry runs in parallel, ledger reads one at a time.")
@click.option("--queue", "queue_size", type=click.IntRange(1, 65536), default=512, show_default=True,
              help="Accepted connections waiting for a worker; beyond it a review is answered at once with "
              "HTTP 503 'the gate is busy' (failurePolicy: Fail then refuses the object and shows why).")
@click.option("--drain-seconds", "drain", type=click.FloatRange(0, 600), default=None,
              help="On SIGTERM: answer /readyz 503 at once and keep serving this long (while the endpoint "
              "removal propagates), then close the listener and finish reviews in flight (15 s at most), exit 0.  "
              "[default: [gate] webhook_drain_seconds, else 5]")
@registry_options_flags
@pass_app
def webhook(app: App, certfile: str | None, keyfile: str | None, insecure_plain_http: bool, port: int,
            host: str | None, log_format: str, max_body: int, workers: int, queue_size: int,
            drain: float | None, **flags: object) -> None:
    """Kubernetes validating admission webhook (AdmissionReview v1) over TLS.

    POST /validate checks every container, init and ephemeral container image of Pods and pod templates
    (Deployment, StatefulSet, DaemonSet, Job, CronJob, ReplicaSet); GET /healthz answers ok (liveness);
    GET /readyz answers 200 only while the ledger opens and its head verifies, 503 with the reason otherwise or
    while draining; GET /metrics is Prometheus text on the same port (and TLS). Tags are resolved to digests
    through the registry (--insecure allows plain HTTP to a loopback registry). On SIGTERM it drains: not
    ready at once, serving --drain-seconds more, then the reviews in flight, exit 0.

    \b
    Examples:
      notary --config /etc/notary/notary.toml gate webhook --cert tls.crt --key tls.key --port 8443
      notary --config notary.toml gate webhook --insecure-plain-http --port 8080    # local tests only
    """
    from notary.gate.decision import gate_for
    from notary.gate.frontends.webhook import check_listen_options, make_server
    from notary.gate.frontends.webhook_ha import drain_seconds, serve

    host = check_listen_options(certfile, keyfile, host, plain_http=insecure_plain_http)
    drain = drain_seconds(drain, app.config.section("gate"))
    the_gate, metrics, log = _observed(gate_for(app.config, app.ledger_url, front_end="webhook", env=app.env), log_format)
    if insecure_plain_http:
        log.warning(f"--insecure-plain-http: serving AdmissionReview over plain HTTP on {host}, for local tests "
                    "only")
    server = make_server(the_gate, host=host, port=port, certfile=certfile, keyfile=keyfile,
                         options=source_options(app, flags), max_body=max_body, plain_http=insecure_plain_http,
                         metrics=metrics, workers=workers, queue_size=queue_size)
    bound = server.server_address
    scheme = "http" if insecure_plain_http else "https"
    serve(server, the_gate, f"webhook listening on {scheme}://{bound[0]!s}:{bound[1]}/validate", log, drain)


@gate.command("docker-authz", short_help="Docker Engine authorization plugin on a unix socket.")
@click.option("--name", default="notary", show_default=True,
              help="Plugin name: dockerd --authorization-plugin=NAME finds /run/docker/plugins/NAME.sock.")
@click.option("--socket", "socket_file", metavar="PATH", help="Listen here instead (then point "
              "/etc/docker/plugins/NAME.spec at unix://PATH).")
@click.option("--docker-host", metavar="URL", help="Engine API for image lookups (default DOCKER_HOST, else "
              "unix:///var/run/docker.sock).")
@click.option("--workers", type=click.IntRange(2, 1024), default=128, show_default=True,
              help="Threads answering the daemon; three quarters of them may decide gated calls at once.")
@click.option("--queue", "queue_size", type=click.IntRange(1, 65536), default=512, show_default=True,
              help="Calls waiting for a worker; beyond it gated calls are refused as busy (ungated ones pass).")
@LOG_FORMAT
@pass_app
def docker_authz(app: App, name: str, socket_file: str | None, docker_host: str | None, workers: int,
                 queue_size: int, log_format: str) -> None:
    """Docker Engine authorization plugin: refuse creating, starting, attaching to or exec-ing containers of
    refused images.

    `docker run` of a refused image then fails with notary's reason. Other API calls are allowed.
    GET /metrics on the same socket is Prometheus text (dockerd never asks for it).

    \b
    Examples:
      notary --config /etc/notary/notary.toml gate docker-authz
      notary --config /etc/notary/notary.toml gate docker-authz --name notary --log-format json
    """
    from notary.gate.decision import gate_for
    from notary.gate.frontends.docker_authz import make_server

    the_gate, metrics, log = _observed(gate_for(app.config, app.ledger_url, front_end="docker-authz", env=app.env),
                                       log_format)
    host = docker_host or app.config.setting("docker", "host", str) or app.env.docker_host
    server = make_server(the_gate, name=name, socket_file=socket_file, docker_host=host, workers=workers,
                         queue_size=queue_size, metrics=metrics)
    _serve(server, the_gate, f"docker authorization plugin {name} listening on {server.path}", log)


@gate.command("containerd-verifier", short_help="containerd 2.x image verifier (bindir): exit 0 allows the pull.",
              help="containerd 2.x image verifier (the bindir ImageVerifier plugin): containerd runs it as "
              "`-name REF -digest DIGEST -stdin-media-type application/vnd.oci.descriptor.v1+json` with the "
              "image's descriptor on stdin; exit 0 lets the pull proceed, anything else refuses it, and the "
              "reason printed on stdout is what containerd shows. Exit codes as for `gate check`. The lighter "
              "`python -m notary.gate.containerd` does the same with a faster start; `notary gate install "
              "containerd` writes the wrapper for containerd's bin_dir.\n\n"
              "\b\nExamples:\n  notary --config /etc/notary/notary.toml gate install containerd\n  notary gate containerd-verifier -name registry.example.com/team/app:1.4 -digest sha256:... \\\n    -stdin-media-type application/vnd.oci.descriptor.v1+json < descriptor.json\n",
              context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def containerd_verifier(app: App, args: tuple[str, ...]) -> None:
    """containerd's own argv is passed through untouched (its single-dash options are not click's)."""
    from notary.gate.containerd import main

    argv = list(args)
    if app.config_flag:
        argv += ["--config", app.config_flag]
    if app.ledger_flag:
        argv += ["--ledger", app.ledger_flag]
    raise SystemExit(main(argv, sys.stdin.buffer, env=app.env))


@gate.command("install", short_help="Write the hooks.d file, containerd verifier or docker runtime wrapper.")
@click.argument("target", type=click.Choice(["podman", "cri-o", "containerd", "docker"]))
@click.option("--hooks-dir", "directory", metavar="DIR", help="Where to write: hooks.d for podman/cri-o "
              "(default /etc/containers/oci/hooks.d), containerd's verifier bin_dir (default "
              "/opt/containerd/image-verifier/bin), the docker runtime wrapper notary-runc (default "
              "/usr/local/bin).")
@click.option("--stage", type=click.Choice(["prestart", "createRuntime"]), default="prestart", show_default=True,
              help="OCI hook stage: createRuntime where the runtime supports it (runc, crun, CRI-O); prestart "
              "(deprecated in the runtime spec) is what podman and most hooks.d setups run.")
@click.option("--server", "server", metavar="SOCKET", help="podman/cri-o: make the hook curl asking a running "
              "`notary gate hook-server` on SOCKET (fastest; every container is refused while it is down) "
              "instead of the Python hook.")
@click.option("--delegate-to", "delegate_to", metavar="SOCKET", help="podman/cri-o: the hook server the Python "
              "hook asks first, deciding itself when none answers there.  [default: /run/notary/gate.sock]")
@click.option("--dry-run", is_flag=True, help="Print what would be written.")
@pass_app
def install(app: App, target: str, directory: str | None, stage: str, server: str | None,
            delegate_to: str | None, dry_run: bool) -> None:
    """Write the hooks.d file (podman, cri-o), the image verifier (containerd) or the runc wrapper (docker).

    The Python hook runs with NOTARY_CONFIG set to this notary.toml (--config or the one found now), so its
    policy and ledger are the ones you can see with `notary gate check`. It asks a running `notary gate
    hook-server` with the same notary.toml first (a few ms instead of a whole decision per container start),
    and decides itself when none answers; install says which it found.

    \b
    Examples:
      notary --config /etc/notary/notary.toml gate install podman
      notary --config /etc/notary/notary.toml gate install podman --server /run/notary/gate.sock
      notary --config /etc/notary/notary.toml gate install containerd --dry-run
    """
    from notary.errors import UsageError
    from notary.gate.install import install as write

    config = app.config.path
    if config is None:
        raise UsageError("no notary.toml to point the hook at", hint="pass --config FILE with a [policy]")
    from notary.gate.policy import load_policy

    load_policy(app.config)  # refuse to install a hook whose policy cannot load
    if (server or delegate_to) and target not in ("podman", "cri-o"):
        raise UsageError("--server and --delegate-to apply to the podman and cri-o hooks only")
    if server and delegate_to:
        raise UsageError("--server writes a curl hook, --delegate-to a Python hook: choose one")
    done = write(target, config=str(config), directory=directory, stage=stage, ledger=app.ledger_flag,
                 dry_run=dry_run, server=server, delegate_to=delegate_to)
    if not server and target in ("podman", "cri-o"):
        _say_which_server(app, str(config), delegate_to)
    app.emit(done.to_json(), lambda: done.content if dry_run else f"wrote {done.path}", schema="gate-install")


def _say_which_server(app: App, config: str, delegate_to: str | None) -> None:
    """Tell whether the hook just written will be decided by a running hook server (the fast path)."""
    from notary.gate.hook_main import DEFAULT_SOCKET
    from notary.gate.install import hook_server_status

    where = delegate_to or DEFAULT_SOCKET
    status = hook_server_status(where, config, app.ledger_flag)
    from notary.ledger.settings import ImmudbSettings

    immudb = (app.ledger_url or "").startswith("immudb://")
    gateway = immudb and bool(ImmudbSettings.load(app.config).gateway)
    alone = "about 70 ms" if not immudb else "about 80 ms" if gateway else "about 250 ms"
    if status == "serving":
        app.info(f"notary: the hook server on {where} serves this notary.toml: the hook asks it first (a few ms "
                 "per container start) and decides itself if it stops answering")
    elif status == "other":
        app.info(f"notary: note: the hook server on {where} runs another notary.toml, ledger or an older version "
                 f"of this one: hooks decide themselves ({alone} per start) until it is restarted with this one")
    else:
        app.info(f"notary: note: no hook server answers on {where}: each container start decides in process "
                 f"({alone}); `notary gate hook-server --socket {where}` with this notary.toml makes it a few ms")
    if immudb and not gateway and status != "serving":
        app.info("notary: note: a hook deciding by itself on immudb loads grpc and logs in each time; "
                 "`[immudb] gateway = \"http://HOST:8080\"` in this notary.toml (immudb's web server) makes it "
                 "about 80 ms (docs/immudb.md)")


@gate.command("hook-server", short_help="Resident gate on a unix socket for a curl-based (fast) OCI hook.")
@click.option("--socket", "socket_file", default="/run/notary/gate.sock", show_default=True, metavar="PATH",
              help="Unix socket to serve on (created 0600, its directory 0700): the curl hook's --unix-socket, "
              "and where the Python hook looks for a server first.")
@click.option("--storage-root", metavar="DIR", help="podman storage root (default: from each bundle's rootfs).")
@click.option("--workers", type=click.IntRange(1, 1024), default=16, show_default=True,
              help="Threads deciding hooks at once.")
@click.option("--queue", "queue_size", type=click.IntRange(1, 65536), default=512, show_default=True,
              help="Hooks waiting for a worker; beyond it a hook is refused at once with HTTP 503 (busy).")
@LOG_FORMAT
@pass_app
def hook_server(app: App, socket_file: str, storage_root: str | None, workers: int, queue_size: int,
                log_format: str) -> None:
    """Serve OCI hook decisions on a unix socket (0600), with the policy parsed and the ledger opened once.

    \b
    The hook is then curl (see `gate install podman --server`):
      curl -sS --fail-with-body --unix-socket PATH --data-binary @- http://notary/oci-hook
    200 allows; 403 refuses with the reason; 503 refuses because --queue hooks are already waiting. If this
    server is down, curl fails and the container is refused. The Python hook asks this server first when it
    runs with the same notary.toml, and decides itself otherwise. GET /metrics is Prometheus text.

    \b
    Examples:
      notary --config /etc/notary/notary.toml gate hook-server --socket /run/notary/gate.sock
    """

    from notary.config import find_config
    from notary.gate.decision import gate_for
    from notary.gate.frontends.hook_server import HookServer
    from notary.gate.hook_main import config_fingerprint, identity

    found = find_config(app.config_flag or app.env.config, app.env)
    before = _fingerprint(config_fingerprint, found)
    the_gate, metrics, log = _observed(gate_for(app.config, app.ledger_url, front_end="oci-hook-server", env=app.env),
                                       log_format)
    after = _fingerprint(config_fingerprint, found)
    ident = None
    if before is not None and before == after:  # the file loaded is the file hooks will compare with
        ident = identity(after, app.ledger_flag, storage_root, dict(app.env.variables))
    elif found is not None:
        log.warning(f"{found} changed while it was loaded: Python hooks decide themselves until this server is "
                    "restarted")
    server = HookServer(socket_file, the_gate, storage_root, workers=workers, queue_size=queue_size,
                        identity=ident, metrics=metrics, env=app.env)
    _serve(server, the_gate, f"gate hook server listening on {socket_file}", log)


def _fingerprint(fingerprint: Callable[[str], object], path: object) -> str | None:
    if path is None:
        return None
    try:
        return str(fingerprint(str(path)))
    except OSError:
        return None
