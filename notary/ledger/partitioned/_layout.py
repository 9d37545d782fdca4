"""The partition layout record: how each member of a partitioned ledger proves which place it holds (pure).

`notary ledger init` writes one version of `partition/layout` into every member: the rule, the members'
ledger identities in order, and the member's own index. A reader accepts a member only if that key has
exactly one proven version naming the member itself at the position the configuration gives it, with the
same layout as every other member and as the layout this client pinned on first use. So members cannot be
reordered, swapped for an impostor, or joined by a new one (which would move digests to other partitions
and hide their revocations) without an integrity error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from notary import jsonsafe, records
from notary.errors import IntegrityError, UsageError
from notary.ledger.base import Entry
from notary.ledger.partitioned._route import LAYOUT_KEY, MAX_PARTITIONS, RULE

LAYOUT_TYPE = "partition"


def layout_value(layout: Sequence[str], index: int) -> bytes:
    return records.canonical_json({"type": LAYOUT_TYPE, "rule": RULE, "layout": list(layout), "index": index})


def layout_id(layout: Sequence[str]) -> str:
    """The partitioned ledger's identity: its rule and its members' identities, in order."""
    digest = hashlib.sha256(records.canonical_json({"layout": list(layout), "rule": RULE})).hexdigest()
    return f"partitioned:sha256:{digest}"


def member_layout(versions: Sequence[Entry], position: int, member_id: str, count: int, where: str,
                  init_hint: str) -> tuple[str, ...]:
    """The layout a member proves it belongs to, checked against where the configuration puts it."""
    if not versions:
        raise UsageError(f"{where} is not a member of a partitioned ledger: it holds no {LAYOUT_KEY}",
                         hint=init_hint)
    if len(versions) != 1:
        raise IntegrityError(f"{where}: {LAYOUT_KEY} has {len(versions)} versions; a layout is written once, so "
                             "a later one is an attempt to repartition the ledger")
    value = jsonsafe.parse_object(versions[0].value, f"{LAYOUT_KEY} of {where}", error=IntegrityError)
    layout = value.get("layout")
    if (value.get("type") != LAYOUT_TYPE or not isinstance(layout, list) or not layout
            or len(layout) > MAX_PARTITIONS or not all(isinstance(m, str) and m for m in layout)
            or not isinstance(value.get("index"), int) or len(set(layout)) != len(layout)):
        raise IntegrityError(f"{where}: {LAYOUT_KEY} is not a partition layout")
    if value.get("rule") != RULE:
        raise IntegrityError(f"{where} is partitioned by rule {str(value.get('rule'))[:80]!r}; this notary knows "
                             f"only {RULE!r}")
    if len(layout) != count:
        raise IntegrityError(f"{where} belongs to a ledger of {len(layout)} partitions, but {count} are configured: "
                             "a partition was added or removed")
    if value["index"] != position or layout[position] != member_id:
        raise IntegrityError(f"{where}, ledger {member_id}, is configured as partition {position}, but its layout puts "
                             f"{'it at ' + str(value['index']) if value['index'] != position else 'another ledger there'}"
                             ": members were reordered or swapped")
    return tuple(str(m) for m in layout)  # each checked a string above
