"""A trusted signer's word on a digest, decided from that signer's whole verified history. Pure: no I/O.

Rules (docs/records.md, "How a verifier decides"):
- Only records the key may make count: a notarization or reinstatement needs the `notarize` role, a revocation
  the `revoke` role. A key's records from transactions after its `not_after` (the proven ledger time of the
  transaction, never the record's own claim) do not count: a leaked key cannot vouch, or un-revoke, after
  the moment it was retired, and what it signed before stays valid.
- Records are taken in the order of their issue time; within one second notarizations, then reinstatements,
  then revocations (so a revocation of the same second wins); then ledger order. An old envelope replayed
  later sorts where it was issued and cannot undo a later revocation.
- Revocations stick: after a revocation, only a reinstatement (an explicit, reasoned record) makes the digest
  notarized again; a plain later notarization does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal, NamedTuple

from notary import keys
from notary.errors import InputError
from notary.ledger.base import Entry
from notary.records import Record

ROLES = frozenset({"notarize", "revoke"})
Status = Literal["notarized", "revoked", "absent"]
# same-second order: a revocation issued in the same second as a notarization or reinstatement wins
_RANK = {"notarization": 0, "reinstatement": 1, "revocation": 2}


class TrustedKey(NamedTuple):
    """A public key a verifier trusts: for which roles, each until when (its not_after, in ledger time).

    grants holds (role, not_after or None) per role, so one key may keep revoking after it was retired from
    notarizing (the same key listed twice in a rule, with other roles and ends)."""

    key: keys.PublicKey
    key_id: str
    grants: tuple[tuple[str, datetime | None], ...] = (("notarize", None), ("revoke", None))
    label: str = ""

    @classmethod
    def of(cls, key: keys.PublicKey, roles: Iterable[str] | None = None, not_after: datetime | None = None,
           label: str = "") -> TrustedKey:
        wanted = frozenset(roles) if roles is not None else ROLES
        unknown = wanted - ROLES
        if unknown or not wanted:
            raise InputError(f"unknown key role(s) {', '.join(sorted(unknown)) or '(none)'}",
                             hint="roles are notarize and revoke")
        if not_after is not None and not_after.tzinfo is None:
            raise InputError("not_after needs a UTC offset (e.g. ...Z)")
        return cls(key, keys.key_id(key), tuple((r, not_after) for r in sorted(wanted)), label)

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(r for r, _ in self.grants)

    def end(self, role: str) -> datetime | None:
        return next(end for r, end in self.grants if r == role)

    def may(self, record_type: str) -> bool:
        return _role(record_type) in self.roles

    def counts(self, record_type: str, entry: Entry) -> bool:
        """Whether a record of this type in this (proven) entry counts: the key holds the role, and the
        entry's transaction is not after that role's end."""
        role = _role(record_type)
        if role not in self.roles:
            return False
        end = self.end(role)
        return end is None or (entry.time is not None and entry.time <= end)

    def vouches(self, record: Record, entry: Entry) -> bool:
        """Whether a record counts as this key's word *for* its subject (what ties and names come from)."""
        return record.type != "revocation" and self.counts(record.type, entry)

    def merged(self, other: TrustedKey) -> TrustedKey:
        """The same key named twice: each role it holds in either, until the later of its ends there."""
        ends: dict[str, datetime | None] = {}
        for role, end in (*self.grants, *other.grants):
            if role not in ends:
                ends[role] = end
            else:
                prev = ends[role]
                ends[role] = None if prev is None or end is None else max(prev, end)
        return TrustedKey(self.key, self.key_id, tuple(sorted(ends.items())), self.label or other.label)


def _role(record_type: str) -> str:
    return "revoke" if record_type == "revocation" else "notarize"


def as_trusted(keys_or_trusted: Sequence[keys.PublicKey | TrustedKey]) -> list[TrustedKey]:
    """Plain public keys are trusted for every role, forever (what `verify --key` means)."""
    out: dict[str, TrustedKey] = {}
    for k in keys_or_trusted:
        tk = k if isinstance(k, TrustedKey) else TrustedKey.of(k)
        out[tk.key_id] = out[tk.key_id].merged(tk) if tk.key_id in out else tk
    return [out[k] for k in sorted(out)]


class SignerFinding(NamedTuple):
    """What one trusted signer's history says about a digest.

    status: notarized (also after a reinstatement), revoked or absent. record/entry: the record that decided
    it (the revocation; or the newest notarization or reinstatement). ignored: records that did not count
    (a role the key lacks, or written after the key's not_after), so an operator can see them.
    """

    signer: str
    status: Status
    record: Record | None = None
    entry: Entry | None = None
    versions: int = 0
    ignored: int = 0
    reinstated: bool = False
    revocation: Record | None = None  # a revocation later lifted by a reinstatement, for the record


def decide(trusted: TrustedKey, history: Sequence[tuple[Record, Entry]]) -> SignerFinding:
    """Fold one signer's verified (record, entry) history into its current word on the digest."""
    counted = [(r, e) for r, e in history if trusted.counts(r.type, e)]
    counted.sort(key=lambda re: (re[0].issued, _RANK[re[0].type], re[1].revision))
    status: Status = "absent"
    deciding: tuple[Record, Entry] | None = None
    lifted: Record | None = None
    for record, entry in counted:
        if record.type == "revocation":
            status, deciding = "revoked", (record, entry)
        elif record.type == "reinstatement":
            if status == "revoked":
                lifted = deciding[0] if deciding else None
            status, deciding = "notarized", (record, entry)
        elif status != "revoked":  # a plain notarization never lifts a revocation
            status, deciding = "notarized", (record, entry)
    if status == "notarized" and "notarize" not in trusted.roles:
        status, deciding = "absent", None  # pragma: no cover - may() already kept such records out
    if deciding is None:
        return SignerFinding(trusted.key_id, status, None, None, len(history), len(history) - len(counted))
    record, entry = deciding
    return SignerFinding(trusted.key_id, status, record, entry, len(history), len(history) - len(counted),
                         reinstated=record.type == "reinstatement", revocation=lifted)
