"""Which keys signed what in a ledger, and when: `notary key list`, proven complete. Pure over the ledger's
proven reads; the library never prints.

Why not the signer sets (notary.lookup.signer_set)? They are proven complete per digest, but listing every
digest of a ledger is `keys()`, which proves nothing: a key whose every record was deleted together with its
subjects' index keys would vanish from such a list unseen. So the one enumeration here is Ledger.changes over
the whole ledger (transactions 1..head), the same proven-complete read `audit diff` uses:

- embedded: every leaf 0..tree_size, contiguous, each hashed and proven under the verified head, and (index)
  the key index rebuilt from those entries and compared with the signed index root, so a row deleted, edited
  or added anywhere in the log or the index is a ProofError (exit 3), never a shorter list;
- immudb: the verified mirror's replay names every entry, each value read proven; with the mirror off,
  Ledger.changes is a UsageError (exit 2): nothing would prove the list complete.

Each record is then opened by notary.audit.diff (signature checked against the key its ledger key names,
about the digest it is filed under), so a key is only ever credited with records it provably signed. A
record that does not open is an IntegrityError here: a list that skipped it would not be complete.

Then every digest's signer set is read as `history` reads it (notary.lookup.signer_set: proven through the
key index, or the immudb mirror) and must hold every signer the log shows for it: the stored index is checked
too, so a deleted or edited key index row fails closed here, as it would fail a later `verify`.

Trust is judged with notary.status.TrustedKey, the rules `verify` and the gate apply: a record counts only
for a role the key holds, written in a transaction (proven ledger time) not after that role's not_after.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from notary import keys, records
from notary.audit.diff import Change, diff
from notary.errors import IntegrityError
from notary.ledger.base import Entry, Ledger, TreeHead, rfc3339
from notary.status import TrustedKey, as_trusted

TYPES = ("notarization", "revocation", "reinstatement", "attestation")
_PLURAL = {t: f"{t}s" for t in TYPES}


@dataclass
class KeyUse:
    """One key's use of the ledger. Counts are of proven, opened records; the trust fields stay None when
    no trusted keys were named (nothing is judged then)."""

    key_id: str
    type: str | None = None  # ed25519 | ecdsa-p256, from the public key the records carry (or the trusted key)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TYPES, 0))
    first: tuple[int, datetime | None] | None = None  # (tx, proven ledger time)
    last: tuple[int, datetime | None] | None = None
    trusted: TrustedKey | None = None
    images: tuple[str, ...] = ()  # policy: the image patterns of the rules that name the key
    after_not_after: int = 0  # records in transactions after the end of the role they need: they count for nothing
    not_counted: int = 0  # records that count for nothing: those, plus records of a role the key lacks

    @property
    def records(self) -> int:
        return sum(self.counts.values())

    def add(self, record_type: str, tx: int, time: datetime | None) -> None:
        self.counts[record_type] += 1
        if self.first is None or tx < self.first[0]:
            self.first = (tx, time)
        if self.last is None or tx >= self.last[0]:
            self.last = (tx, time)
        if self.trusted is not None:
            judged = "notarization" if record_type == "attestation" else record_type  # attest: notarize role
            if not self.trusted.counts(judged, Entry("", b"", tx, time, 0)):
                self.not_counted += 1
                role = "revoke" if judged == "revocation" else "notarize"
                if role in self.trusted.roles and self.trusted.end(role) is not None:
                    self.after_not_after += 1

    def to_json(self, judged: bool) -> dict[str, object]:
        tk = self.trusted
        out: dict[str, object] = {
            "key_id": self.key_id, "type": self.type, "records": self.records,
            **{_PLURAL[t]: n for t, n in self.counts.items()},
            "first": _point(self.first), "last": _point(self.last),
            "trusted": (tk is not None) if judged else None,
            "roles": sorted(tk.roles) if tk else None,
            "not_after": {r: rfc3339(end) for r, end in tk.grants} if tk else None,
            "images": list(self.images) if tk and self.images else None,
            "after_not_after": self.after_not_after if tk else None,
            "not_counted": (self.not_counted if tk else self.records) if judged else None,
        }
        return out


def _point(p: tuple[int, datetime | None] | None) -> dict[str, object] | None:
    return None if p is None else {"tx": p[0], "time": rfc3339(p[1])}


@dataclass
class KeyList:
    head: TreeHead
    backend: str
    method: str  # how completeness was proven: key-index | log-range | mirror-replay
    entries: int
    keys: list[KeyUse]
    judged: bool  # trusted keys were named

    def to_json(self) -> dict[str, object]:
        return {"head": self.head.to_json(), "backend": self.backend, "complete": True, "method": self.method,
                "entries": self.entries, "from_tx": 0, "to_tx": self.head.tx, "judged": self.judged,
                "keys": [k.to_json(self.judged) for k in self.keys]}


class _Tap:
    """Passes the proven entries on to diff unchanged, noting each transaction's proven time and, once per
    signer, its key type (from the public key a record it filed carries, checked to hash to its key id)."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self.entries = entries
        self.times: dict[int, datetime | None] = {}
        self.types: dict[str, str] = {}

    def __iter__(self) -> Iterator[Entry]:
        for entry in self.entries:
            self.times.setdefault(entry.tx, entry.time)
            self._note_type(entry)
            yield entry

    def _note_type(self, entry: Entry) -> None:
        parts = entry.key.split("/")
        if parts[0] not in ("subject", "attestations") or len(parts) != 3 or parts[2] in self.types:
            return
        if not records.is_digest(parts[2]):
            return
        if parts[0] == "attestations":
            from notary.attest import index_public_key

            found = index_public_key(entry)
            if found is not None:
                self.types[found[0]] = keys.key_type(found[1])
            return
        try:  # one signature check per signer; a record that fails is diff's finding, not ours to judge
            record = records.open_envelope(entry.value, expected_signer=parts[2]).record
            self.types[parts[2]] = keys.key_type(keys.load_public_key(record.signer_public_key.encode()))
        except IntegrityError:
            return


def key_list(ledger: Ledger, trusted: Sequence[TrustedKey] | None = None,
             images: dict[str, tuple[str, ...]] | None = None) -> KeyList:
    """Every key that signed a record in the ledger, with what and when, proven complete (module docstring).

    trusted: the keys to judge against (None: judge nothing); each key in it is listed even with no records,
    so a trusted key that never signed shows as such. images: per key id, the policy rules' image patterns.
    IntegrityError (exit 3) when a proof fails or any record does not open; UsageError (exit 2) where the
    backend cannot prove the whole ledger complete (immudb with the mirror off)."""
    info = ledger.info()
    head = info.head
    tap = _Tap(ledger.changes(0, head.tx, index=True))
    found = diff(tap, 0, head.tx, head)
    if found.findings:
        first = found.findings[0]
        raise IntegrityError(f"{len(found.findings)} record(s) in the ledger do not open; first: {first.key} at "
                             f"tx {first.tx}: {first.problem}: the key list would not be complete")
    judged = trusted is not None
    by_id = {tk.key_id: tk for tk in as_trusted(list(trusted or ()))}
    uses: dict[str, KeyUse] = {}

    def use(key_id: str) -> KeyUse:
        if key_id not in uses:
            tk = by_id.get(key_id)
            uses[key_id] = KeyUse(key_id, type=tap.types.get(key_id) or (keys.key_type(tk.key) if tk else None),
                                  trusted=tk, images=(images or {}).get(key_id, ()))
        return uses[key_id]

    for c in found.changes:
        use(c.signer).add(c.type, c.tx, tap.times.get(c.tx))
    for a in found.attestations:
        use(str(a["signer"])).add("attestation", int(a["tx"]), tap.times.get(int(a["tx"])))
    for key_id in by_id:
        use(key_id)
    _check_signer_sets(ledger, found.changes)
    ordered = sorted(uses.values(), key=lambda u: (u.first is None, u.first[0] if u.first else 0, u.key_id))
    return KeyList(head, info.backend, _method(info.backend, head), found.entries, ordered, judged)


def _check_signer_sets(ledger: Ledger, changes: Sequence[Change]) -> None:
    """Every digest's signers in the log must be in its signer set, read as `history` reads it (proven
    through the key index; immudb: compared with the verified mirror): a key index row deleted or edited in
    the ledger file fails that read (ProofError), and a set that leaves out a signer the log shows means the
    index and the log disagree. Both are exit 3, never a list."""
    from notary.lookup import signer_set

    by_digest: dict[str, set[str]] = {}
    for c in changes:
        by_digest.setdefault(c.digest, set()).add(c.signer)
    for digest, signers in sorted(by_digest.items()):
        missing = signers - set(signer_set(ledger, digest).signers)
        if missing:
            raise IntegrityError(f"the signer set of {digest} leaves out {sorted(missing)[0]}, whose records the "
                                 "proven log holds: the ledger's index and its log disagree")


def _method(backend: str, head: TreeHead) -> str:
    if backend != "file":
        return "mirror-replay"
    return "key-index" if head.map_root is not None else "log-range"
