"""Real C2SP witnesses for tests: notary's own witness over HTTP on loopback, each with its own key and state."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from notary.audit import note as notes
from notary.audit.witness import Witness
from notary.audit.witness_http import WitnessServer, serve_in_thread


def witness_for(name: str, logs: Sequence[notes.Verifier | str], root: Path,
                key: Ed25519PrivateKey | None = None) -> Witness:
    """A witness named witness.test/<name> (or name, when it has a '/') for the logs given as verifiers or
    vkeys, keeping its state under root."""
    verifiers = [notes.parse_vkey(v) if isinstance(v, str) else v for v in logs]
    return Witness(name if "/" in name else f"witness.test/{name}", key or Ed25519PrivateKey.generate(),
                   verifiers, root)


@contextmanager
def served(witness: Witness) -> Iterator[str]:
    """The witness's base URL while it serves on a loopback port; shut down and closed however the block ends."""
    server = WitnessServer(("127.0.0.1", 0), witness)
    serve_in_thread(server)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
