"""The embedded ledger: one SQLite file, an RFC 9162 log of every version, a sparse Merkle key index of the
newest ones, heads signed by the ledger's own key (docs/proofs.md). `EmbeddedLedger.open(url)` opens one.

Internals are `_`-prefixed. `EmbeddedLedger` (ledger.py) delegates to collaborators: the open file (_file),
the trusted state (_trustkeep), verified snapshots (_view), the reads (_reader, over _reads and _range), the
writer (_writer) and the upgrader (_upgrade), these two loaded on first use. Below them: byte formats
(_codec), SQL (_store), stored log subtrees (_tree), the key index (_map), the client's checks (_verify) and
the full audit (_audit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from notary.ledger.embedded.ledger import EmbeddedLedger, path_from_url

__all__ = ["EmbeddedLedger", "path_from_url"]


def __getattr__(name: str) -> object:
    if name in __all__:
        from notary.ledger.embedded import ledger

        return getattr(ledger, name)
    raise AttributeError(name)
