"""Writes through a member's own URL: refused, because the rule decides where a record lives.

A member of a partitioned ledger is an ordinary ledger and reads fine on its own (which is how point-in-time
questions are asked of it), but a record written there directly may belong to another partition, where every
reader of the partitioned ledger looks for it: a revocation written so would be read by no one. The writers
(notarize, revoke, attest, sync) call this first; it costs one proven read of the layout key.
"""

from __future__ import annotations

from notary.errors import UsageError
from notary.ledger.base import Ledger
from notary.ledger.partitioned._route import LAYOUT_KEY


def refuse_member_write(ledger: Ledger) -> None:
    from notary.ledger.partitioned import PartitionedLedger

    if isinstance(ledger, PartitionedLedger):
        return
    if ledger.get(LAYOUT_KEY) is not None:
        raise UsageError(f"{ledger.url} is a member of a partitioned ledger: records are written through its "
                         "partitioned: URL, so that each lands in the partition readers look in",
                         hint="--ledger partitioned:URL1,URL2,... (docs/partitions.md)")
