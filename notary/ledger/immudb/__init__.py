"""The immudb backend: a real immudb server through immudb-py's verified calls, notary's own trusted state,
and the checks immudb-py leaves out (docs/immudb.md). `ImmudbLedger.open(url)` opens one.

Importing this package is cheap; immudb-py and grpc load only when a ledger is opened (ImmudbLedger).
Internals: the URL and secrets (_conn), proof checks (_proofs), the gRPC session (_session); the same ledger
over immudb's HTTP gateway (gateway: _http, _wire, and notary's own proof checks in _verify), which loads
neither grpc nor immudb-py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notary.ledger.immudb.ledger import ImmudbLedger

__all__ = ["ImmudbLedger"]


def __getattr__(name: str) -> Any:
    if name == "ImmudbLedger":
        from notary.ledger.immudb.ledger import ImmudbLedger

        return ImmudbLedger
    raise AttributeError(name)
