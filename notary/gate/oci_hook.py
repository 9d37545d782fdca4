"""OCI runtime hook: refuse to start a container whose image fails notary's checks.

The runtime runs the hook at `createRuntime` (or the deprecated but widespread `prestart`) with the container
state on stdin; a non-zero exit stops the container before its process runs, and the runtime shows stderr.
The image is identified from what the runtime states, in order: CRI-O's annotations
(`io.kubernetes.cri-o.ImageName` / `ImageRef` / `Image`), containerd's CRI (`io.kubernetes.cri.image-name` /
`image-ref`), a umoci-unpacked bundle's `umoci.json`, and Docker's and podman's storage (container id ->
image); notary's own annotations (`dev.notary.image.digest`, comma-separated digests, and
`dev.notary.image.name`) may only choose among what the runtime states, and identify the image alone only
where no runtime describes it (plain runc, `ctr run`). Finding nothing refuses. `dev.notary.image.name`
without the digest annotation only names the image: the digest must still come from umoci.json or the
runtime's storage (where the name must be one the storage gives the image), and without one the container
is refused with the missing annotation named, never admitted on a name alone.

This module decides in process (`python -m notary.gate.oci_hook`, and the fallback of the hook's entry point
`python -c HOOK_CODE`, notary.gate.hook_main, which first asks a running hook server): it avoids click,
requests and every backend it does not use, because its start-up time is added to every container start.

Everything it reads is bounded: the state on stdin (1 MiB), the bundle's `config.json` (16 MiB) and
`umoci.json`, read through notary.fsio (regular files only, not through a symlink, never blocking: a FIFO
planted as config.json must refuse the container at once, not hang its start), and parsed with
notary.jsonsafe (nesting depth, integer size, duplicate keys, lone surrogates).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from notary.digests import SHA256_PATTERN
from notary.errors import InputError, NotaryError, NotFoundError
from notary.fsio import check_path_length, read_regular
from notary.jsonsafe import JsonObject, parse, parse_object

if TYPE_CHECKING:
    from notary.environment import Environment
    from notary.gate.decision import Gate, GateDecision

ANNOTATION_DIGEST = "dev.notary.image.digest"
ANNOTATION_NAME = "dev.notary.image.name"
CRIO_NAME, CRIO_REF, CRIO_IMAGE = "io.kubernetes.cri-o.ImageName", "io.kubernetes.cri-o.ImageRef", "io.kubernetes.cri-o.Image"
CRI_NAME, CRI_REF = "io.kubernetes.cri.image-name", "io.kubernetes.cri.image-ref"
MAX_STATE = 1 << 20
MAX_CONFIG = 16 << 20
MAX_UMOCI = 1 << 20
_SHA = re.compile(SHA256_PATTERN)  # digests inside annotation values
_HEX = re.compile(r"^[0-9a-f]{64}\Z")


class ImageIdentity:
    """Which image a container runs, as its bundle or runtime states it. missing: why no digest could be found
    when the bundle did name the image (the refusal then says what to add)."""

    __slots__ = ("name", "digests", "source", "missing")

    def __init__(self, name: str | None, digests: tuple[str, ...], source: str, missing: str | None = None) -> None:
        self.name = name
        self.digests = digests
        self.source = source
        self.missing = missing


def digests_in(value: str | None) -> list[str]:
    """Every sha256 digest in an annotation value; a bare 64-hex value is an image id."""
    if not value:
        return []
    value = value.strip()
    if _HEX.match(value):
        return [f"sha256:{value}"]
    return _SHA.findall(value)


def read_state(stream: IO[bytes]) -> JsonObject:
    """The OCI state object the runtime writes on stdin (at most 1 MiB)."""
    data = stream.read(MAX_STATE + 1)
    if len(data) > MAX_STATE:
        raise InputError("container state on stdin is larger than 1 MiB")
    state = parse(data, "container state on stdin")
    if not isinstance(state, dict) or not isinstance(state.get("bundle", ""), str):
        raise InputError("container state on stdin is not an OCI state object")
    return state


def read_bundle_config(bundle: str) -> JsonObject:
    """The bundle's config.json: a regular file of at most 16 MiB, never followed through a symlink."""
    path = Path(bundle) / "config.json"
    raw = read_regular(path, MAX_CONFIG, "bundle config", follow_symlinks=False)
    return parse_object(raw, f"bundle config {path}")


def _umoci_digests(bundle: str) -> list[str]:
    """The manifest digests of the bundle's umoci.json; none without one (other sources are tried next). A
    umoci.json that is there but unreadable or malformed is bad input, never silently skipped."""
    try:
        raw = read_regular(Path(bundle) / "umoci.json", MAX_UMOCI, "umoci.json", follow_symlinks=False)
    except NotFoundError:
        return []
    meta = parse(raw, f"umoci.json in {bundle}")
    source = meta.get("from_descriptor_path") if isinstance(meta, dict) else None
    walk = source.get("descriptor_walk") if isinstance(source, dict) else None
    found = []
    for desc in walk if isinstance(walk, list) else []:
        if isinstance(desc, dict) and "manifest" in str(desc.get("mediaType", "")):
            found.extend(digests_in(str(desc.get("digest", ""))))
    return found


def identify(state: Mapping[str, object], config: Mapping[str, object], *, storage_root: str | None = None,
             env: Environment | None = None) -> ImageIdentity:
    """Which image this container runs: what the runtime itself states first, notary's annotations second.

    The annotations of config.json are not only the operator's: a CRI runtime can pass a Pod's own
    metadata.annotations into them (containerd's `pod_annotations`, CRI-O's allowed annotations, a wildcard
    set for another tool), and `dev.notary.image.digest` is then whatever the Pod author wrote. Letting it win would admit any image under a notarized digest. So when the runtime names the image
    (CRI-O's or containerd's CRI annotations, which the runtime sets itself, umoci.json, Docker's or podman's
    storage), its digests decide, and the digest annotation may only pick among them, as the name annotation
    may only pick among the names storage gives; one naming another image refuses the container. Only a
    bundle no runtime describes (plain runc, `ctr run`) is identified by the annotation alone.
    """
    annotations: dict[str, str] = {}
    for source in (config.get("annotations"), state.get("annotations")):
        if isinstance(source, Mapping):
            annotations.update({str(k): str(v) for k, v in source.items()})
    claimed: list[str] | None = None
    if ANNOTATION_DIGEST in annotations:
        claimed = digests_in(annotations[ANNOTATION_DIGEST])
        if not claimed:
            raise InputError(f"annotation {ANNOTATION_DIGEST} holds no sha256 digest")
    named = annotations.get(ANNOTATION_NAME) or None
    stated = _runtime_identity(state, config, annotations, named, storage_root, env)
    if claimed is None:
        if stated is not None:
            return stated
        if named:
            return ImageIdentity(named, (), "annotation", missing=_missing_digest(named))
        return ImageIdentity(None, (), "none")
    if stated is None or not stated.digests:
        return ImageIdentity(named, tuple(claimed), "annotation")
    chosen = tuple(d for d in claimed if d in stated.digests)
    if not chosen:
        raise InputError(f"annotation {ANNOTATION_DIGEST} names {', '.join(claimed[:4])}, but {stated.source} "
                         f"states the container's image as {', '.join(stated.digests[:4])}",
                         hint=f"remove {ANNOTATION_DIGEST} or set it to the digest of the image the runtime runs")
    return ImageIdentity(stated.name, chosen, stated.source)


def _runtime_identity(state: Mapping[str, object], config: Mapping[str, object], annotations: Mapping[str, str],
                      named: str | None, storage_root: str | None, env: Environment | None) -> ImageIdentity | None:
    """The image as the runtime (or the bundle's unpacker) states it, or None where none describes it."""
    if CRIO_NAME in annotations or CRIO_REF in annotations:
        name = annotations.get(CRIO_NAME)
        digests = digests_in(name.split("@", 1)[1] if name and "@" in name else None)
        digests += digests_in(annotations.get(CRIO_REF)) + digests_in(annotations.get(CRIO_IMAGE))
        return ImageIdentity(name, tuple(dict.fromkeys(digests)), "cri-o")
    if CRI_NAME in annotations or CRI_REF in annotations:
        name = annotations.get(CRI_NAME)
        digests = digests_in(name.split("@", 1)[1] if name and "@" in name else None)
        digests += digests_in(annotations.get(CRI_REF))
        return ImageIdentity(name, tuple(dict.fromkeys(digests)), "containerd")
    # dev.notary.image.name without the digest annotation: the name is the bundle's statement of which image it
    # is, the digest must still come from what the hook can read (umoci.json, the runtime's storage), and is
    # then verified like any other. A name alone is never admitted.
    container_id = state.get("id")
    root = config.get("root")
    rootfs = root.get("path") if isinstance(root, Mapping) else None
    if isinstance(rootfs, str):  # the storage lookups below stat paths built from it
        check_path_length(rootfs, "bundle rootfs")
    bundle = str(state.get("bundle") or "")
    if bundle:
        found = _umoci_digests(bundle)
        if found:
            return ImageIdentity(named or annotations.get("org.opencontainers.image.ref.name"), tuple(found), "umoci")
    if isinstance(container_id, str) and container_id and isinstance(rootfs, str):
        from notary.gate.runtime import docker_storage

        docker_root = docker_storage.root_from_rootfs(rootfs)
        if docker_root is not None:
            image = docker_storage.image_of_container(container_id, *docker_root)
            return ImageIdentity(_stored_name(named, image.names, "docker"), (*image.digests, image.image_id),
                                 "docker")
    if isinstance(container_id, str) and container_id:
        from notary.gate.runtime import podman_storage

        storage = storage_root or podman_storage.root_from_rootfs(rootfs if isinstance(rootfs, str) else None)
        if storage or annotations.get("io.container.manager") == "libpod":
            image = podman_storage.image_of_container(container_id, storage, env)
            return ImageIdentity(_stored_name(named, image.names, "podman"), (*image.digests, image.image_id),
                                 "podman")
    return None


def _missing_digest(named: str) -> str:
    return (f"the bundle's annotation {ANNOTATION_NAME} names {named}, but annotation {ANNOTATION_DIGEST} is "
            "missing and no umoci.json or runtime storage gives the image's digest: add "
            f'"{ANNOTATION_DIGEST}": "sha256:<manifest digest>" to the annotations of config.json (podman: '
            f"--annotation {ANNOTATION_DIGEST}=sha256:...; the digest `notary notarize` printed, or `skopeo "
            "inspect --format '{{.Digest}}'`)")


def _stored_name(named: str | None, stored: Sequence[str], runtime: str) -> str | None:
    """The name the gate decides under for an image found in a runtime's storage: the one the
    dev.notary.image.name annotation picks among the names the storage gives the image, or the first of them.
    An annotation naming something the runtime does not call this image is bad input: the name decides which
    keys are trusted and which record names count, so the bundle may choose among the runtime's names, never
    add one."""
    if not named:
        return stored[0] if stored else None
    from notary.names import normalize_name

    wanted = normalize_name(named)
    if any(normalize_name(n) == wanted for n in stored):
        return named
    known = ", ".join(stored[:8]) or "no name"
    raise InputError(f"annotation {ANNOTATION_NAME} names {named}, but {runtime}'s storage knows the container's "
                     f"image as {known}",
                     hint=f"set {ANNOTATION_NAME} to one of those names, or remove it")


def decide(stdin: IO[bytes], *, config_flag: str | None = None, ledger_flag: str | None = None,
           storage_root: str | None = None, env: Environment | None = None) -> GateDecision:
    """The gate's decision for the container described on stdin (a GateDecision)."""
    from notary.gate.decision import gate_from_flags

    gate = gate_from_flags(config_flag, ledger_flag, front_end="oci-hook", keep_open=False, env=env)
    return decide_container(gate, stdin, storage_root=storage_root, front_end="oci-hook", env=env)


def decide_container(gate: Gate, stdin: IO[bytes], *, storage_root: str | None, front_end: str,
                     extra: Mapping[str, object] | None = None, env: Environment | None = None) -> GateDecision:
    """The one decision for a container described by its OCI state, for the hook and the hook server alike:
    identify its image (bundle annotations, then the runtime's storage), then Gate.check. A container whose
    image cannot be identified is refused, and the refusal logged, like every other decision."""
    from notary.errors import EXIT_INTEGRITY, EXIT_USAGE
    from notary.gate.decision import GateDecision

    try:
        state = read_state(stdin)
        config = read_bundle_config(str(state.get("bundle") or "."))
        identity = identify(state, config, storage_root=storage_root, env=env)
    except NotaryError as exc:
        decision = GateDecision(image=None, digest=None, allowed=False,
                                exit_code=EXIT_USAGE if exc.exit_code == 2 else exc.exit_code,
                                reason=f"cannot identify the container's image: {exc.one_line()}", via="error")
        gate.log_only(decision)
        return decision
    except Exception as exc:  # noqa: BLE001 - fail closed
        decision = GateDecision(image=None, digest=None, allowed=False, exit_code=EXIT_INTEGRITY,
                                reason=f"internal error: {type(exc).__name__}: {exc}", via="error")
        gate.log_only(decision)
        return decision
    context = {"container": state.get("id"), "identified_by": identity.source, **(extra or {})}
    if identity.missing and not identity.digests:  # named, but nothing says which bytes: refuse, and say what to add
        from notary.errors import EXIT_REFUSED

        decision = GateDecision(image=identity.name, digest=None, allowed=False, exit_code=EXIT_REFUSED,
                                reason=identity.missing, via="policy", extra=context)
        gate.log_only(decision)
        return decision
    return gate.check(identity.name, identity.digests, front_end=front_end, extra=context)


USAGE = "usage: python -m notary.gate.oci_hook [--config FILE] [--ledger URL] [--storage-root DIR]"
# `python -c` entry (no runpy start-up cost): hook_main asks a running hook server first, then decides here
HOOK_CODE = "from notary.gate.hook_main import run; run()"


def parse_args(argv: Sequence[str]) -> dict[str, str]:
    """--config / --ledger / --storage-root (argparse costs start-up time a hook pays on every container)."""
    known = {"--config": "config", "--ledger": "ledger", "--storage-root": "storage_root"}
    out: dict[str, str] = {}
    items = list(argv)
    while items:
        arg = items.pop(0)
        name, eq, value = arg.partition("=")
        if name not in known:
            raise InputError(f"unknown hook argument {arg!r}", hint=USAGE)
        if not eq:
            if not items:
                raise InputError(f"{name} needs a value", hint=USAGE)
            value = items.pop(0)
        out[known[name]] = value
    return out


def main(argv: Sequence[str] | None = None, stdin: IO[bytes] | None = None, env: Environment | None = None) -> int:
    """The hook's exit code; env: the environment, read here (an edge) unless the caller read it."""
    try:
        from notary.environment import given

        args = parse_args(sys.argv[1:] if argv is None else argv)
        decision = decide(stdin or sys.stdin.buffer, config_flag=args.get("config"),
                          ledger_flag=args.get("ledger"), storage_root=args.get("storage_root"), env=given(env))
    except NotaryError as exc:  # the policy itself is unusable: refuse, loudly
        sys.stderr.write(f"notary: refused: {exc.kind}: {exc.one_line()}\n")
        return exc.exit_code or 1
    except Exception as exc:  # noqa: BLE001 - a hook must fail closed, never crash open
        sys.stderr.write(f"notary: refused: internal error: {type(exc).__name__}: {exc}\n")
        return 3
    if not decision.allowed:
        sys.stderr.write(f"notary: refused {decision.image or decision.digest or 'container'}: {decision.reason}\n")
        return decision.exit_code or 1
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
