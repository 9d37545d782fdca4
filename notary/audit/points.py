"""POINT: where in a ledger's history an auditor asks about.

A transaction number, an RFC 3339 time (the last transaction written by then: Ledger.tx_at_time, proven by
the hashed times around it), `latest` (the verified head), or `0` / `genesis` (before the first transaction).
A transaction number is read strictly (notes.parse_uint): "\u0661\u0662", "+5" or "012" name no transaction,
rather than one that another reader of the same command line takes for another.
"""

from __future__ import annotations

from datetime import datetime, timezone

from notary import records
from notary.audit import note as notes
from notary.errors import InputError, UsageError
from notary.ledger.base import Ledger

HELP = "a transaction number, an RFC 3339 time (e.g. 2026-03-01T00:00:00Z), latest, or 0 (the beginning)"


def resolve(ledger: Ledger, point: str, head_tx: int) -> int:
    """The transaction POINT names in a ledger whose verified head is at head_tx."""
    from notary.ledger.partitioned import PartitionedLedger, refuse_point_in_time

    text = point.strip()
    partitioned = isinstance(ledger, PartitionedLedger)
    if text.lower() in ("latest", "now", "head"):  # a partitioned ledger's now is a cut like any other time
        return (ledger.tx_at_time(datetime.now(timezone.utc)) or 0) if partitioned else head_tx
    if text.lower() in ("genesis", "start", "beginning"):
        return 0
    if text.lstrip("+-").isdigit():  # any digits, Unicode ones too, signed or not: a number, strictly read
        refuse_point_in_time(ledger)
        tx = notes.parse_uint(text, "transaction number", error=UsageError)
        if tx > head_tx:
            raise UsageError(f"the ledger has no transaction {tx} yet (head is tx {head_tx})")
        return tx
    try:
        when = records.parse_time(text)
    except InputError as exc:
        raise UsageError(f"{point!r} is not a point in the ledger's history: give {HELP}") from exc
    found = ledger.tx_at_time(when)
    return 0 if found is None else found
