"""The immudb backend: a real immudb server, every answer proven by notary's own checks against notary's own
trusted state (docs/immudb.md). `notary.ledger.open_immudb(url)` (or open_ledger) opens one.

Importing this package is cheap; grpc and immudb-py load only when a gRPC connection is made.
One ImmudbLedger (ledger) over a Session (_session: identity, trusted state) and a transport (_transport): gRPC
(_grpc, its protobuf typed by _proto) or the HTTP gateway (_gateway: _http, _wire), which loads neither grpc
nor immudb-py; the proof checks written once (_proofs, on _verify's and _replay's hashing); the verified mirror
as a wrapper over the ledger (_mirrored, mirror).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from notary.ledger.immudb._mirrored import MirroredLedger
    from notary.ledger.immudb.ledger import ImmudbLedger

__all__ = ["ImmudbLedger", "MirroredLedger"]


def __getattr__(name: str) -> object:
    if name == "ImmudbLedger":
        from notary.ledger.immudb.ledger import ImmudbLedger

        return ImmudbLedger
    if name == "MirroredLedger":
        from notary.ledger.immudb._mirrored import MirroredLedger

        return MirroredLedger
    raise AttributeError(name)
