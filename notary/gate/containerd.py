"""containerd 2.x image verifier (the `bindir` ImageVerifier plugin): refuse the pull of a refused image.

containerd runs every executable in its verifier `bin_dir` with `-name REF -digest DIGEST -stdin-media-type
application/vnd.oci.descriptor.v1+json` and the image's OCI descriptor on stdin, prints our stdout as the
reason, and pulls only if every verifier exits 0. A refused image is therefore never pulled, and never runs.
`notary gate install containerd` writes the small wrapper script that goes into bin_dir.

Entry point: `python -m notary.gate.containerd` (light start, like the OCI hook) or
`notary gate containerd-verifier`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from notary.errors import InputError, NotaryError
from notary.jsonsafe import JsonObject, parse_object
from notary.records import check_digest

if TYPE_CHECKING:
    from notary.environment import Environment
    from notary.gate.decision import GateDecision

DESCRIPTOR_MEDIA_TYPE = "application/vnd.oci.descriptor.v1+json"
MAX_STDIN = 1 << 20


def read_descriptor(stream: IO[bytes], media_type: str | None) -> JsonObject | None:
    """The descriptor on stdin, or None when containerd sent nothing (the digest argument still decides)."""
    data = stream.read(MAX_STDIN + 1)
    if len(data) > MAX_STDIN:
        raise InputError("descriptor on stdin is larger than 1 MiB")
    if not data.strip():
        return None
    if media_type and media_type != DESCRIPTOR_MEDIA_TYPE:
        raise InputError(f"unsupported stdin media type {media_type!r}")
    return parse_object(data, "descriptor on stdin")  # depth, integer size, surrogates, duplicate keys


def decide(name: str, digest: str, stdin: IO[bytes], media_type: str | None, *,
           config_flag: str | None = None, ledger_flag: str | None = None, env: Environment | None = None) -> GateDecision:
    """The gate's decision; unreadable input is a logged refusal (exit 2), never an allow."""
    from notary.errors import EXIT_USAGE
    from notary.gate.decision import GateDecision, gate_from_flags

    gate = gate_from_flags(config_flag, ledger_flag, front_end="containerd-verifier", keep_open=False, env=env)
    try:
        check_digest(digest)
        descriptor = read_descriptor(stdin, media_type)
        if descriptor is not None and descriptor.get("digest") not in (None, digest):
            raise InputError(f"descriptor digest {descriptor.get('digest')} differs from -digest {digest}")
    except NotaryError as exc:
        decision = GateDecision(image=name or None, digest=None, allowed=False, exit_code=EXIT_USAGE,
                                reason=f"bad verifier input: {exc.one_line()}", via="error")
        gate.log_only(decision)
        return decision
    extra = {"media_type": descriptor.get("mediaType")} if descriptor else None
    return gate.check(name or None, [digest], extra=extra)


def main(argv: Sequence[str] | None = None, stdin: IO[bytes] | None = None, stdout: IO[str] | None = None,
         env: Environment | None = None) -> int:
    """The verifier's exit code; env: the environment, read here (an edge) unless the caller read it."""
    import argparse

    from notary.environment import given

    out = stdout or sys.stdout
    parser = argparse.ArgumentParser(prog="notary gate containerd-verifier", prefix_chars="-",
                                     description="containerd bindir image verifier")
    parser.add_argument("-name", "--name", dest="name", default="")
    parser.add_argument("-digest", "--digest", dest="digest", required=True)
    parser.add_argument("-stdin-media-type", "--stdin-media-type", dest="media_type", default=None)
    parser.add_argument("--config", default=None)
    parser.add_argument("--ledger", default=None)
    args = parser.parse_args(argv)
    try:
        decision = decide(args.name, args.digest, stdin or sys.stdin.buffer, args.media_type,
                          config_flag=args.config, ledger_flag=args.ledger, env=given(env))
    except NotaryError as exc:
        out.write(f"notary refused {args.name or args.digest}: {exc.kind}: {exc.one_line()}\n")
        return exc.exit_code or 1
    except Exception as exc:  # noqa: BLE001 - a verifier must fail closed
        out.write(f"notary refused {args.name or args.digest}: internal error: {type(exc).__name__}: {exc}\n")
        return 3
    if decision.allowed:
        out.write(f"notary allowed {args.name or args.digest}: {decision.reason}\n")
        return 0
    out.write(f"notary refused {args.name or args.digest}: {decision.reason}\n")
    return decision.exit_code or 1


if __name__ == "__main__":
    sys.exit(main())
