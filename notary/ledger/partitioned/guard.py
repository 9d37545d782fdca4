"""Writes through a member's own URL: refused, because the rule decides where a record lives.

A member of a partitioned ledger is an ordinary ledger and reads fine on its own (which is how point-in-time
questions are asked of it), but a record written there directly may belong to another partition, where every
reader of the partitioned ledger looks for it: a revocation written so would be read by no one. The writers
(notarize, revoke, attest, sync) call this first; it costs one proven read of the layout key, once per opened
ledger (a ledger that is no member stays none while it is open: `ledger init` refuses a non-empty member).
"""

from __future__ import annotations

import contextlib
import weakref

from notary.errors import UsageError
from notary.ledger.base import Ledger
from notary.ledger.partitioned._route import LAYOUT_KEY

_CHECKED: weakref.WeakSet[object] = weakref.WeakSet()  # opened ledgers proven not to be members


def refuse_member_write(ledger: Ledger) -> None:
    from notary.ledger.partitioned import PartitionedLedger

    if isinstance(ledger, PartitionedLedger) or ledger in _CHECKED:
        return
    if ledger.get(LAYOUT_KEY) is None:
        with contextlib.suppress(TypeError):  # a ledger that cannot be weakly referenced is checked each time
            _CHECKED.add(ledger)
    else:
        raise UsageError(f"{ledger.url} is a member of a partitioned ledger: records are written through its "
                         "partitioned: URL, so that each lands in the partition readers look in",
                         hint="--ledger partitioned:URL1,URL2,... (docs/partitions.md)")
