"""A ledger spread over several ledgers (immudb databases or servers, or embedded files): docs/partitions.md.

Each member keeps its own proofs and its own trusted state; this layer only routes (notary.ledger.
partitioned._route) and checks that every member holds the place the configuration gives it
(notary.ledger.partitioned._layout). Everything a verification reads about one digest lives in one member, so
a gate deciding on an image opens one member; lookups by CI job or artifact read every member, each read
proven present or absent there.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Protocol

from notary.errors import IntegrityError, NotaryError, UsageError
from notary.ledger.base import ComposedNotices, Entry, Ledger, LedgerInfo, TreeHead, WriteReceipt
from notary.ledger.partitioned import _layout, _route
from notary.ledger.trust import TrustedState, TrustStore

SCHEME = "partitioned:"
_POINT_IN_TIME = ("a partitioned ledger has no one transaction order (each member counts its own): read "
                  "it as of a time (--at-time), or pass a member's URL as --ledger for its transactions")
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)
_EPOCH_1970 = datetime(1970, 1, 1, tzinfo=timezone.utc)
_FIRST_CUT = 10**15  # µs since the epoch (2001-09-09): smaller numbers are transactions, refused
_LAST_CUT = (datetime(9999, 12, 31, tzinfo=timezone.utc) - _EPOCH_1970) // timedelta(microseconds=1)


class MemberAudit(Protocol):
    """What each member's whole-ledger audit reports (the embedded AuditReport, immudb's MirrorAudit) and
    the partitioned audit shows per partition."""

    @property
    def head(self) -> TreeHead: ...
    @property
    def entries(self) -> int: ...
    @property
    def transactions(self) -> int: ...
    @property
    def keys(self) -> int: ...
    @property
    def signatures_checked(self) -> int: ...


def member_urls(url: str) -> list[str]:
    """The members of `partitioned:URL1,URL2,...`, in partition order."""
    members = [part.strip() for part in url[len(SCHEME):].split(",")]
    if any(m.lower().startswith(SCHEME) for m in members):
        raise UsageError("a member of a partitioned ledger is not itself partitioned")
    if len(members) < 2 or len(members) > _route.MAX_PARTITIONS or not all(members):
        raise UsageError(f"a partitioned ledger URL lists 2 to {_route.MAX_PARTITIONS} member ledger URLs",
                         hint="partitioned:immudb://notary@db1:3322/notary,immudb://notary@db2:3322/notary")
    if len(set(members)) != len(members):
        raise UsageError("the members of a partitioned ledger are distinct ledgers")
    return members


class PartitionedLedger(ComposedNotices):
    """One Ledger over N members; `opener` opens a member URL (the same trust, mirror and config)."""

    backend = "partitioned"

    def __init__(self, url: str, trust: TrustStore, opener: Callable[[str], Ledger]) -> None:
        self.url = url
        self.members = member_urls(url)
        self._trust = trust
        self._opener = opener
        self._open: dict[int, Ledger] = {}
        self._layout: tuple[str, ...] | None = None
        self._notices: list[str] = []
        self._checked: set[int] = set()
        self._cuts: dict[int, list[int | None]] = {}  # cut token (a time, in µs) -> each member's tx then
        self._heads: list[TreeHead] = []  # the members' heads the last composite head was made of
        self._latest: dict[int, TreeHead] = {}  # each member's newest head seen (a write's receipt, a read)
        self._pin_name = "partitioned-layout:" + hashlib.sha256("\n".join(self.members).encode()).hexdigest()

    # ------------------------------------------------------------ members

    def _parts(self) -> Iterable[Ledger]:
        return list(self._open.values())

    @property
    def ledger_id(self) -> str:
        return _layout.layout_id(self._layout or self._establish())

    def _raw(self, index: int) -> Ledger:
        if index not in self._open:
            self._open[index] = self._opener(self.members[index])
        return self._open[index]

    def _member_layout(self, index: int) -> tuple[str, ...]:
        member = self._raw(index)
        return _layout.member_layout(member.history(_route.LAYOUT_KEY), index, member.info().ledger_id,
                                     len(self.members), f"partition {index} ({self.members[index]})",
                                     f"notary --ledger '{self.url}' ledger init")

    def _establish(self) -> tuple[str, ...]:
        """The layout, proven by member 0 and pinned; on first use every member is checked before it is pinned,
        so an impostor is caught before any read trusts the layout."""
        layout = self._member_layout(0)
        pinned = self._trust.load(self._pin_name)
        found = _layout.layout_id(layout)
        if pinned is not None:
            if pinned.root_hash != found.rsplit(":", 1)[1]:
                raise IntegrityError(f"partitioned ledger {self.url}: its layout is now {found}, not the "
                                     f"partitioned:sha256:{pinned.root_hash} this client trusts")
        else:
            for index in range(1, len(self.members)):
                self._same_layout(index, layout)
                self._checked.add(index)
            self._trust.save(TrustedState(self._pin_name, 0, found.rsplit(":", 1)[1], 0,
                                          extra={"layout": list(layout)}))
            self._notices.append(f"trusting partitioned ledger {found} of {len(layout)} partitions on first use")
        self._checked.add(0)
        self._layout = layout
        return layout

    def _same_layout(self, index: int, layout: tuple[str, ...]) -> None:
        if self._member_layout(index) != layout:
            raise IntegrityError(f"partition {index} ({self.members[index]}) belongs to another partitioned ledger")

    def _member(self, index: int) -> Ledger:
        """Member index, its place in the layout proven (once per process)."""
        layout = self._layout or self._establish()
        if index not in self._checked:
            self._same_layout(index, layout)
            self._checked.add(index)
        return self._raw(index)

    def _each(self) -> Iterator[tuple[int, Ledger]]:
        for index in range(len(self.members)):
            yield index, self._member(index)

    def _tag(self, index: int, entry: Entry) -> Entry:
        member = self._layout[index] if self._layout else ""
        return entry._replace(proof={**entry.proof, "partition": {"index": index, "ledger_id": member}})

    # ------------------------------------------------------------ writes

    def write(self, kvs: Mapping[str, bytes]) -> WriteReceipt:
        parts = _route.split(kvs, len(self.members))
        if not parts:
            return self._member(0).write(kvs)  # the member refuses an empty write its own way
        done: list[WriteReceipt] = []
        for index in _write_order(parts):
            try:
                done.append(self._member(index).write(parts[index]))
            except NotaryError as exc:
                raise _partial(exc, done) from exc
        return self._receipt(done)

    def write_batch(self, txs: Sequence[Mapping[str, bytes]]) -> list[WriteReceipt]:
        """Each member's parts in one batch there; every transaction keeps its parts' receipts."""
        split = [_route.split(kvs, len(self.members)) for kvs in txs]
        by_member: dict[int, list[int]] = {}
        for number, parts in enumerate(split):
            for index in parts:
                by_member.setdefault(index, []).append(number)
        got: dict[tuple[int, int], WriteReceipt] = {}
        done: list[WriteReceipt] = []
        for index in _write_order(by_member):
            try:
                receipts = self._member(index).write_batch([split[n][index] for n in by_member[index]])
            except NotaryError as exc:
                raise _partial(exc, done) from exc
            done.extend(receipts)
            got.update({(n, index): r for n, r in zip(by_member[index], receipts, strict=True)})
        return [self._receipt([got[(n, i)] for i in sorted(parts)]) for n, parts in enumerate(split)]

    def _receipt(self, parts: list[WriteReceipt]) -> WriteReceipt:
        times = [p.time for p in parts if p.time is not None]
        keys = tuple(sorted({k for p in parts for k in p.keys}))
        self._latest.update({self._index_of(p.head.ledger_id): p.head for p in parts})
        return WriteReceipt(parts[0].tx, max(times) if times else None, keys, self._head(fresh=False), tuple(parts))

    # ------------------------------------------------------------ reads

    def get(self, key: str, *, at_tx: int | None = None) -> Entry | None:
        if _route.is_finder(key):
            versions = [e for e in self.history(key) if at_tx is None or self.written_by(e, at_tx)]
            return versions[-1] if versions else None
        index = _route.home_of(key, len(self.members))
        found = self._member(index).get(key, at_tx=self._member_tx(index, at_tx))
        return self._tag(index, found) if found is not None else None

    def history(self, key: str) -> list[Entry]:
        if not _route.is_finder(key):
            index = _route.home_of(key, len(self.members))
            return [self._tag(index, e) for e in self._member(index).history(key)]
        each = [[self._tag(i, e) for e in member.history(key)] for i, member in self._each()]
        return list(heapq.merge(*each, key=lambda e: e.time or _EPOCH))

    def absence(self, key: str, *, at_tx: int | None = None) -> dict[str, object] | None:
        """Absent from the partition that would hold it (a finder: from every partition), each proven there
        (as of a cut: as of each member's own transaction at the cut's time)."""
        places = (list(range(len(self.members))) if _route.is_finder(key)
                  else [_route.home_of(key, len(self.members))])
        proofs = []
        for index in places:
            proof = self._member(index).absence(key, at_tx=self._member_tx(index, at_tx))
            if proof is None:
                return None
            proofs.append({**proof, "partition": {"index": index, "ledger_id": self._layout[index] if self._layout
                                                  else ""}})
        if len(proofs) == 1:
            return proofs[0]  # the home partition's own proof, its head that member's
        return {"key": key, "method": "partitioned", "as_of_tx": at_tx, "rule": _route.RULE,
                "head": self._head().to_json(), "partitions": proofs}

    def changes(self, after_tx: int, upto_tx: int, *, index: bool = False) -> Iterator[Entry]:
        """The whole ledger only (after 0 up to the head info() gave): each member's changes, proven complete
        there, member after member; a range between two points has no meaning across members."""
        if after_tx != 0 or not self._heads or upto_tx != _composite(self._heads, "").tx:
            raise UsageError(_POINT_IN_TIME)
        heads = list(self._heads)
        for (number, member), head in zip(self._each(), heads, strict=True):
            yield from (self._tag(number, e) for e in member.changes(0, head.tx, index=index))

    def tx_at_time(self, when: datetime) -> int | None:
        """A cut of every member at time `when`, named by that time in microseconds since the epoch (the
        partitioned ledger's "transaction": docs/partitions.md, "As of a time"); None when no member had
        recorded anything by then."""
        cut = self._cut_at(when)
        if all(tx is None for tx in cut):
            return None
        token = (when.astimezone(timezone.utc) - _EPOCH_1970) // timedelta(microseconds=1)
        self._cuts[token] = cut
        return token

    def written_by(self, entry: Entry, at_tx: int) -> bool:
        """Whether entry (read through this ledger: it names its partition) stood at the cut at_tx."""
        place = entry.proof.get("partition")
        if (not isinstance(place, Mapping) or type(place.get("index")) is not int
                or not 0 <= place["index"] < len(self.members)):
            raise UsageError("an entry not read through this partitioned ledger cannot be cut by its time")
        cut = self._member_tx(int(place["index"]), at_tx)
        return cut is not None and entry.tx <= cut

    def _cut_at(self, when: datetime) -> list[int | None]:
        return [member.tx_at_time(when) for _, member in self._each()]

    def _member_tx(self, index: int, at_tx: int | None) -> int | None:
        """Member index's own transaction at the cut at_tx (None: now). Before the member's first record the
        cut is its layout's transaction, where it holds nothing else, so reads there prove absence."""
        if at_tx is None:
            return None
        if at_tx == 0:  # the beginning: before any record
            return self._layout_tx(index)
        if at_tx not in self._cuts:
            if not _FIRST_CUT <= at_tx <= _LAST_CUT:  # a member's transaction number, or no time at all
                raise UsageError(_POINT_IN_TIME)
            self._cuts[at_tx] = self._cut_at(_EPOCH_1970 + timedelta(microseconds=at_tx))
        tx = self._cuts[at_tx][index]
        return tx if tx is not None else self._layout_tx(index)

    def _layout_tx(self, index: int) -> int:
        versions = self._member(index).history(_route.LAYOUT_KEY)
        return versions[0].tx

    def keys(self, prefix: str) -> list[str]:
        if _route.routed_digest(prefix):
            return self._member(_route.home_of(prefix, len(self.members))).keys(prefix)
        found: set[str] = set()
        for _, member in self._each():
            found.update(member.keys(prefix))
        found.discard(_route.LAYOUT_KEY)
        return sorted(found)

    def info(self) -> LedgerInfo:
        infos = [member.info() for _, member in self._each()]
        self._heads = [i.head for i in infos]
        self._latest.update(enumerate(self._heads))
        entries = [i.entries for i in infos]
        transactions = [i.transactions for i in infos]
        return LedgerInfo(
            url=self.url, backend=self.backend, ledger_id=self.ledger_id, head=_composite([i.head for i in infos],
                                                                                         self.ledger_id),
            trusted={"layout": self.ledger_id, "tree_size": sum(int((i.trusted or {}).get("tree_size") or 0)
                                                                for i in infos),
                     "partitions": [dict(i.trusted or {}) for i in infos]},
            entries=sum(e for e in entries if e is not None) if None not in entries else None,
            transactions=sum(t for t in transactions if t is not None) if None not in transactions else None,
            details={"rule": _route.RULE, "partitions": [{"index": n, **i.to_json()} for n, i in enumerate(infos)]})

    def _head(self, *, fresh: bool = True) -> TreeHead:
        """The composite head; fresh=False reuses each member's newest head already seen (a write's receipt
        needs no round trip to members it did not write)."""
        self._heads = [self._latest[i] if not fresh and i in self._latest else member.info().head
                       for i, member in self._each()]
        self._latest.update(enumerate(self._heads))
        return _composite(self._heads, self.ledger_id)

    def _index_of(self, member_id: str) -> int:
        return (self._layout or self._establish()).index(member_id)

    def audit(self) -> list[MemberAudit]:
        """Each member's own whole-ledger audit (embedded: every row and signed head; immudb: every transaction
        replayed into the verified mirror), in partition order; the first discrepancy raises."""
        reports: list[MemberAudit] = []
        for index, member in self._each():
            run = getattr(member, "audit", None)
            if not callable(run):
                raise UsageError(f"partition {index} ({self.members[index]}) cannot be audited: an immudb member "
                                 "is audited through its verified mirror, which is off")
            reports.append(run())
        return reports

    def close(self) -> None:
        for ledger in self._open.values():
            ledger.close()

    # ------------------------------------------------------------ setting up

    def initialize(self) -> bool:
        """Write the layout into every member (`notary ledger init`); False when it is already there. Refuses a
        member that holds records already, or another layout: they would sit in the wrong partitions."""
        members = [self._raw(i) for i in range(len(self.members))]
        ids = [m.info().ledger_id for m in members]
        if len(set(ids)) != len(ids):
            raise UsageError("two members are the same ledger")
        versions = [m.history(_route.LAYOUT_KEY) for m in members]
        if all(versions):
            self._establish()
            for index in range(1, len(self.members)):
                self._member(index)
            return False
        for index, member in enumerate(members):
            if versions[index]:  # an init interrupted after this member: its layout must be this one
                if [v.value for v in versions[index]] != [_layout.layout_value(ids, index)]:
                    raise UsageError(f"partition {index} ({self.members[index]}) already belongs to another "
                                     "partitioned ledger")
                continue
            if [k for k in member.keys("") if k != _route.LAYOUT_KEY]:
                raise UsageError(f"partition {index} ({self.members[index]}) already holds records: a member "
                                 "starts empty, so every record sits where the rule puts it",
                                 hint="notary sync copies an existing ledger's records into a partitioned one")
        for index, member in enumerate(members):
            if not versions[index]:
                member.write({_route.LAYOUT_KEY: _layout.layout_value(ids, index)})
        self._establish()
        return True


def _composite(heads: Sequence[TreeHead], ledger_id: str) -> TreeHead:
    """A partitioned ledger's head: the members' sizes summed, their roots hashed in order (what changes when
    any member moves; each member's own head is what is proven, in details)."""
    times = [h.time for h in heads if h.time is not None]
    root = hashlib.sha256(b"".join(h.root for h in heads)).digest()
    return TreeHead(ledger_id, sum(h.tree_size for h in heads), root, sum(h.tx for h in heads),
                    max(times) if times else None)


def _write_order(parts: Iterable[int]) -> list[int]:
    """Partition 0 last: it holds what is not a record (a sync cursor), which must move only after every
    record it counts is written, so a write failing in any member leaves the cursor behind, never ahead."""
    return sorted(parts, key=lambda index: (index == 0, index))


def refuse_point_in_time(ledger: object) -> None:
    """For readers that cut a history at a transaction themselves (lookup, history): a partitioned ledger's
    entries carry their members' transaction numbers, which no one number can cut."""
    if isinstance(ledger, PartitionedLedger):
        raise UsageError(_POINT_IN_TIME)


def _partial(exc: NotaryError, done: list[WriteReceipt]) -> NotaryError:
    """The member's error, saying which parts were written: each part is whole on its own, so what was written
    is a complete notarization of its subjects, and running the command again completes the rest."""
    if not done:
        return exc
    where = ", ".join(f"{r.head.ledger_id} tx {r.tx}" for r in done)
    return type(exc)(f"{exc.message} (already written, each part whole: {where}; run it again to complete)",
                     hint=exc.hint)
