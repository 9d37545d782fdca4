"""The verified mirror through immudb's HTTP gateway: completeness without grpc, and over TLS.

MirroredImmudbLedger's reads and replay, GatewayLedger's transport: its TxScan goes through /api/db/tx (the
mirror re-hashes every entry digest and chains every header exactly as for gRPC). A TLS immudb, which
immudb-py cannot reach, so gets the mirror too. Imported only when a mirrored ledger is opened with a gateway:
the mirror's SQLite code stays off the hook's path.
"""

from __future__ import annotations

from notary.ledger.immudb._mirrored import MirroredImmudbLedger
from notary.ledger.immudb.gateway import GatewayLedger


class MirroredGatewayLedger(MirroredImmudbLedger, GatewayLedger):
    mirrored = True
    _scan = GatewayLedger._scan  # the gateway's TxScan, not gRPC's (MirroredImmudbLedger's comes first in the MRO)
