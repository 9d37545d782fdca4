"""Readers of container runtimes' own storage (Docker, podman), for the OCI hook to learn which image a
container runs when the bundle does not say. Read-only, bounded (notary.fsio), never trusted for more than
a hint: the digests found are still verified against the ledger."""
