"""The embedded ledger: one SQLite file, an RFC 9162 log of every version, a sparse Merkle key index of the
newest ones, heads signed by the ledger's own key (docs/proofs.md). `EmbeddedLedger.open(url)` opens one.

Internals are `_`-prefixed: byte formats (_codec), SQL (_store), stored log subtrees (_tree), the key index
(_map), the client's checks (_verify) and the full audit (_audit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notary.ledger.embedded.ledger import EmbeddedLedger, path_from_url

__all__ = ["EmbeddedLedger", "path_from_url"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from notary.ledger.embedded import ledger

        return getattr(ledger, name)
    raise AttributeError(name)
