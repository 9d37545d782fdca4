"""notary: notarize container images and build artifacts in a verifiable ledger, and gate what runs.

The library API (what the CLI and the gate front ends are built on; docs/architecture.md):

    subjects = notary.resolve("oci:build/layout:v1")                 # sources: read and hash, every blob checked
    ledger = notary.open_ledger("file:///var/lib/notary/ledger.db")  # or immudb://user@host:3322/db
    notary.notarize(ledger, subjects, notary.load_private_key("ci.key"), {"system": "local", "jobId": "1"})
    decision = notary.verify_digest(ledger, subjects[0].digest, [notary.load_public_key("ci.key.pub")])

Names load lazily: `import notary` stays cheap on the container-start path.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:  # the lazy names, as a type checker sees them (at run time __getattr__ loads them)
    from notary.errors import NotaryError as NotaryError
    from notary.gate.decision import Gate as Gate
    from notary.gate.decision import LedgerGate as LedgerGate
    from notary.gate.decision import gate_for as gate_for
    from notary.keys import generate_private_key as generate_private_key
    from notary.keys import key_id as key_id
    from notary.keys import load_private_key as load_private_key
    from notary.keys import load_public_key as load_public_key
    from notary.ledger import open_ledger as open_ledger
    from notary.ledger.base import Entry as Entry
    from notary.ledger.base import Ledger as Ledger
    from notary.ledger.base import TreeHead as TreeHead
    from notary.lookup import lookup_artifact as lookup_artifact
    from notary.lookup import lookup_job as lookup_job
    from notary.notarize import notarize as notarize
    from notary.notarize import revoke as revoke
    from notary.sources import identify as identify
    from notary.sources import resolve as resolve
    from notary.sources.base import SourceOptions as SourceOptions
    from notary.sources.base import Subject as Subject
    from notary.status import TrustedKey as TrustedKey
    from notary.verify import Decision as Decision
    from notary.verify import verify_digest as verify_digest

_API = {
    "open_ledger": "notary.ledger",
    "Ledger": "notary.ledger.base",
    "Entry": "notary.ledger.base",
    "TreeHead": "notary.ledger.base",
    "resolve": "notary.sources",
    "identify": "notary.sources",
    "Subject": "notary.sources.base",
    "SourceOptions": "notary.sources.base",
    "notarize": "notary.notarize",
    "revoke": "notary.notarize",
    "lookup_job": "notary.lookup",
    "lookup_artifact": "notary.lookup",
    "verify_digest": "notary.verify",
    "Decision": "notary.verify",
    "TrustedKey": "notary.status",
    "generate_private_key": "notary.keys",
    "load_private_key": "notary.keys",
    "load_public_key": "notary.keys",
    "key_id": "notary.keys",
    "Gate": "notary.gate.decision",
    "LedgerGate": "notary.gate.decision",
    "gate_for": "notary.gate.decision",
    "NotaryError": "notary.errors",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> object:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'notary' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
