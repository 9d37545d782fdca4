"""Where each key of a partitioned ledger lives (pure: no I/O), the rule docs/partitions.md states.

- Keys named by a subject digest (`subject/`, `signers/`, `attestation/`, `attestations/`) live in the
  partition of that digest, so everything a verification reads about one digest sits in one ledger and was
  written there atomically: the record, the signer set that proves the signers complete, the attestations.
- Finder keys (`job/`, `artifact/`) lead to subjects: each partition's part of a transaction carries the
  finders of its own subjects (their values filtered to them), so a finder never points across partitions;
  a lookup reads the key in every partition (each read proven present or absent) and merges.
- The layout key is in every partition: it is how a partition proves which place it holds.
- Anything else (sync cursors) lives in partition 0.

The partition of a digest is its first 64 bits, as an integer, modulo the number of partitions: digests are
uniform, and the rule needs nothing but the digest, so any reader finds the partition with no lookup.
"""

from __future__ import annotations

from collections.abc import Mapping

from notary import jsonsafe, records
from notary.errors import InputError

RULE = "digest-prefix-64-mod-v1"
LAYOUT_KEY = "partition/layout"
ROUTED = ("subject/", "signers/", "attestation/", "attestations/")
FINDERS = ("job/", "artifact/")
MAX_PARTITIONS = 64


def partition_of(digest: str, count: int) -> int:
    hex_part = records.check_digest(digest).split(":", 1)[1]
    return int(hex_part[:16], 16) % count


def is_finder(key: str) -> bool:
    return key.startswith(FINDERS)


def home_of(key: str, count: int) -> int:
    """The one partition a non-finder key lives in: a total function of the key, so a key whose digest part
    is no digest (no notary writer makes one, any Ledger caller may) still has one home, partition 0."""
    if key.startswith(ROUTED):
        named = key.split("/", 2)[1]
        if records.is_digest(named):
            return partition_of(named, count)
    return 0


def routed_digest(prefix: str) -> bool:
    """Whether every key under prefix lives in one partition (the prefix names a whole digest)."""
    parts = prefix.split("/")
    return prefix.startswith(ROUTED) and len(parts) >= 3 and records.is_digest(parts[1])


def split(kvs: Mapping[str, bytes], count: int) -> dict[int, dict[str, bytes]]:
    """One transaction's writes as one part per partition, each to be written atomically there."""
    if LAYOUT_KEY in kvs:
        raise InputError(f"{LAYOUT_KEY} is the partitioned ledger's own key; it is written by `notary ledger init`")
    parts: dict[int, dict[str, bytes]] = {}
    finders = {k: v for k, v in kvs.items() if is_finder(k)}
    for key, value in kvs.items():
        if key not in finders:
            parts.setdefault(home_of(key, count), {})[key] = value
    for key, value in finders.items():
        for index, part_value in _finder_parts(key, value, count, set(parts)).items():
            parts.setdefault(index, {})[key] = part_value
    return parts


def _finder_parts(key: str, value: bytes, count: int, written: set[int]) -> dict[int, bytes]:
    """A finder's value for each partition holding one of its subjects, filtered to those subjects. A finder
    with no subjects it can route (none of notary's writers make one) goes where the transaction's first part
    goes, whole."""
    try:
        parsed = jsonsafe.parse_object(value, f"the value of {key}", error=InputError)
    except InputError:
        parsed = {}
    subjects = parsed.get("subjects")
    if not isinstance(subjects, list) or not subjects:
        return {min(written, default=0): value}
    by_part: dict[int, list[object]] = {}
    for subject in subjects:
        digest = subject.get("digest") if isinstance(subject, dict) else subject
        if not isinstance(digest, str) or not records.is_digest(digest):
            return {min(written, default=0): value}
        by_part.setdefault(partition_of(digest, count), []).append(subject)
    return {index: records.canonical_json({**parsed, "subjects": kept}) for index, kept in by_part.items()}
