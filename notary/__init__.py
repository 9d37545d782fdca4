"""notary: notarize container images and build artifacts in a verifiable ledger, and gate what runs."""

__version__ = "0.1.0"
