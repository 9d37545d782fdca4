"""Evidence bundles: everything `verify` reads about a subject, with its proofs, checkable with no ledger.

Export runs the verifier's own decision (notary.verify.verify_digest) against a recording wrapper of the
ledger: every history it reads is kept with its proofs, and every key it finds empty with its absence proof,
all against one signed head (read again if a write moved the head meanwhile). Verification loads the
bundle into a read-only replay of those answers, checks every proof against the bundle's signed head with
the embedded ledger's own pure checks (leaf recomputed from its data, RFC 9162 inclusion, revisions 1..N,
the newest named by the signed key index; absence: the key index path ends away from the key), then runs
the same verify_digest on the replay: the decision offline is the decision online. A read the bundle
cannot answer is a ProofError, so a bundle that leaves a revocation out cannot pass.

Embedded ledger only: its heads are signed by the ledger key, which the bundle names and the auditor pins
with a ledger id or a checkpoint. docs/evidence.md gives the format and why it is notary's own JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from notary import jsonsafe, keys, records
from notary.audit import checkpoints
from notary.audit import note as notes
from notary.audit.bundle_fields import integer as _int
from notary.audit.bundle_fields import listed as _list
from notary.audit.bundle_fields import mapping as _mapping
from notary.audit.bundle_fields import string as _str
from notary.errors import InputError, IntegrityError, ProofError, UsageError
from notary.ledger.base import Entry, HistoryReader, Ledger, LedgerInfo, TreeHead
from notary.ledger.embedded import _codec as codec
from notary.ledger.embedded import _map
from notary.ledger.embedded._store import EntryRow, HeadRow

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from notary.attest.require import Requirement
from notary.ledger.embedded._verify import Verifier
from notary.ledger.partitioned._route import LAYOUT_KEY
from notary.status import as_trusted
from notary.verify import Decision, TrustedKey, verify_digest

FORMAT = "notary.evidence/v1"
MAX_BUNDLE = 64 << 20  # bytes: the verifier reads at most MAX_TIES + holders' histories, each bounded
MAX_KEYS = 4096
MAX_VERSIONS = 100_000


class _Recording:
    """Passes history/info through to the ledger and keeps every history it answered."""

    def __init__(self, inner: Ledger) -> None:
        self.inner = inner
        self.histories: dict[str, list[Entry]] = {}

    def history(self, key: str) -> list[Entry]:
        found = self.inner.history(key)
        self.histories[key] = found
        return found

    def info(self) -> LedgerInfo:
        return self.inner.info()


def export(ledger: Ledger, digests: Sequence[str], trusted: Sequence[keys.PublicKey | TrustedKey], subject: str,
           *, checkpoint_notes: Sequence[notes.Note] = (), require: Sequence[Requirement] = (),
           sign_key: Ed25519PrivateKey | None = None) -> dict[str, object]:
    """The bundle of what verify_digest reads for each digest, every proof against one head; with each
    checkpoint (checked against the ledger first: a split view is a ProofError) a consistency proof to it.
    The trusted keys' attestations about each digest come along (their attestation index and every type it
    names), and require (notary.attest.Requirement) is decided too, with the absence proofs it needs."""
    from notary.ledger.embedded import EmbeddedLedger

    if not isinstance(ledger, EmbeddedLedger):
        return _export_immudb(ledger, digests, trusted, subject, checkpoint_notes, require, sign_key)
    if sign_key is not None:
        raise UsageError("an embedded ledger's bundle is signed by the ledger's own key: drop --sign-key")
    tks = as_trusted(trusted)
    for _ in range(5):
        rec = _Recording(ledger)
        refuse_member(rec)
        decisions = [required_decision(rec, verify_digest(rec, d, tks), tks, require) for d in digests]
        attested = [a for d in digests for a in attested_by(rec, d, tks, require)]
        head = ledger.info().head
        if head.map_root is None:
            raise UsageError("a format v1 ledger cannot prove a key absent", hint="run `notary ledger upgrade`")
        absent = {k: ledger.absence(k) for k, v in rec.histories.items() if not v}
        sizes = {e.proof.get("tree_size") for v in rec.histories.values() for e in v}
        sizes |= {a["head"]["tree_size"] if a else None for a in absent.values()}
        if sizes <= {head.tree_size}:
            break
    else:
        raise ProofError("the ledger kept moving while the bundle was read; try again")
    consistency = []
    for n in checkpoint_notes:
        cp, _ = checkpoints.check(n, checkpoints.log_verifier(ledger.ledger_id, ledger.public_raw), [], 0)
        path = ledger.consistency_proof(cp.size, head.tree_size) if 0 < cp.size < head.tree_size else []
        checkpoints.consistent_with(cp, head, path)
        consistency.append({"size": cp.size, "root_hash": cp.root.hex(), "path": [p.hex() for p in path]})
    assert head.signature is not None and head.time is not None  # a v2 head read from the file is signed
    return {
        **about(subject, digests, tks, decisions, require, attested),
        "ledger": {"ledger_id": head.ledger_id, "public_key": base64.b64encode(ledger.public_raw).decode()},
        "head": {"tree_size": head.tree_size, "root_hash": head.root.hex(), "tx": head.tx,
                 "time_us": codec.to_time_us(head.time), "signature": head.signature.hex(),
                 "key_index_root": head.map_root.hex()},
        "histories": {k: [_entry_json(e) for e in v] for k, v in sorted(rec.histories.items()) if v},
        "absent": {k: a["key_index"] for k, a in sorted(absent.items()) if a},
        "consistency": consistency,
    }


def about(subject: str, digests: Sequence[str], trusted: Sequence[TrustedKey], decisions: Sequence[Decision],
          require: Sequence[Requirement], attested: Sequence[Mapping[str, object]]) -> dict[str, object]:
    """What a bundle of either backend says of itself: the subject, who it was exported for, the decisions
    at export (informational: verify decides again), the required types and the attestations read."""
    return {
        "format": FORMAT, "subject": subject, "digests": list(digests),
        "exported_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "signers": [tk.key_id for tk in trusted],
        "decisions": [{"digest": d.digest, "allowed": d.allowed, "status": d.status} for d in decisions],
        "required": sorted({r.predicate_type for r in require}), "attestations": list(attested),
    }


def refuse_member(reader: HistoryReader) -> None:
    """A partition member's bundle cannot stand alone: the identities a decision ties to a digest may live in
    other members, where this one proves nothing. The layout key's absence (or its history) goes into the
    bundle with the rest, so verify can tell too."""
    from notary.ledger.partitioned._route import LAYOUT_KEY

    if reader.history(LAYOUT_KEY):
        raise UsageError("this ledger is a member of a partitioned ledger: its bundle could not prove what other "
                         "members hold about the identities tied to the subject",
                         hint="evidence bundles are not yet available for partitioned ledgers (docs/evidence.md)")


def _export_immudb(ledger: Ledger, digests: Sequence[str], trusted: Sequence[keys.PublicKey | TrustedKey],
                   subject: str, checkpoint_notes: Sequence[notes.Note], require: Sequence[Requirement],
                   sign_key: Ed25519PrivateKey | None) -> dict[str, object]:
    if not str(getattr(ledger, "url", "")).startswith("immudb:"):
        raise UsageError("evidence bundles address one ledger, an embedded file or an immudb database; they are "
                         "not yet available for partitioned ledgers (a decision reads keys of several members)")
    if sign_key is None:
        raise UsageError("an immudb bundle's head is a checkpoint signed by the operator's key: pass --sign-key FILE",
                         hint="the key of `notary ledger checkpoint --sign-key`; auditors pin its --vkey")
    from notary.audit import immudb_evidence

    return immudb_evidence.export(ledger, digests, trusted, subject, operator=sign_key,
                                  checkpoint_notes=checkpoint_notes, require=require)


def _entry_json(e: Entry) -> dict[str, object]:
    p = e.proof
    out = {"leaf_index": p["leaf_index"], "leaf_data": p["leaf_data"], "audit_path": list(p["audit_path"])}
    if "key_index" in p:
        out["key_index"] = p["key_index"]
    return out


class BundleReplay(HistoryReader):
    """What both backends' bundles share: the answers (histories, absence proofs) read and checked by the
    backend's own _history and _absent, what the bundle says about itself, and the reads the decision makes."""

    url = "evidence:"
    head: TreeHead

    def _history(self, key: str, items: Sequence[object]) -> list[Entry]:
        raise NotImplementedError

    def _absent(self, key: str, proof: Mapping[str, object]) -> _map.MapValue | None:
        """What the key index, under the bundle's head, says of key by this proof (None: absent)."""
        raise NotImplementedError

    def check_checkpoint(self, note: notes.Note, witnesses: list[notes.Verifier], min_witnesses: int) -> int:
        """Prove the bundle's head extends a checkpoint the auditor trusts; returns its size (per backend)."""
        raise NotImplementedError

    def _read_answers(self, bundle: Mapping[str, object]) -> None:
        histories, absent = _mapping(bundle["histories"]), _mapping(bundle["absent"])
        if len(histories) + len(absent) > MAX_KEYS:
            raise ValueError(f"it holds more than {MAX_KEYS} keys")
        self._histories = {k: self._history(k, _list(v)) for k, v in histories.items()}
        for key, proof in absent.items():
            codec.check_key(key)
            if key in self._histories:
                raise ProofError(f"the bundle says {key!r} both has versions and has none")
            if self._absent(key, _mapping(proof)) is not None:
                raise ProofError(f"the bundle's absence proof of {key!r} names a version of it")
            self._histories[key] = []
        self.digests = [records.check_digest(_str(d)) for d in _list(bundle["digests"])]
        self.signers = [_str(s) for s in _list(bundle.get("signers", []))]
        self.subject = _str(bundle.get("subject", ""))
        self.required = [_str(t) for t in _list(bundle.get("required", []))]
        self.consistency = {_int(c["size"]): (bytes.fromhex(_str(c["root_hash"])),
                                                   [bytes.fromhex(_str(p)) for p in _list(c["path"])])
                            for c in map(_mapping, _list(bundle.get("consistency", [])))}

    def history(self, key: str) -> list[Entry]:
        if key not in self._histories:
            raise ProofError(f"the evidence bundle leaves out {key!r}, which the decision reads: it was cut, or "
                             "exported for other keys")
        return self._histories[key]

    def info(self) -> LedgerInfo:
        return LedgerInfo(self.url, "evidence", self.head.ledger_id, self.head, None)


class Replay(BundleReplay):
    """An embedded ledger's bundle, every answer checked at load against its signed head; nothing else."""

    def __init__(self, bundle: Mapping[str, object], ledger_id: str | None = None) -> None:
        try:
            if bundle.get("format") != FORMAT:
                raise ValueError(f"it is not a {FORMAT} bundle (format {bundle.get('format')!r})")
            ledger = _mapping(bundle["ledger"])
            raw = base64.b64decode(_str(ledger["public_key"]), validate=True)
            if len(raw) != 32:
                raise ValueError("its ledger key is not an Ed25519 key")
            self.verifier = Verifier(Path("(evidence bundle)"), raw)
            if ledger["ledger_id"] != self.verifier.ledger_id:
                raise ValueError("its ledger id is not the one its ledger key gives")
            if ledger_id is not None and self.verifier.ledger_id != ledger_id:
                raise ProofError(f"the bundle is from ledger {self.verifier.ledger_id}, not {ledger_id}")
            self.head = self._head(_mapping(bundle["head"]))
            self._read_answers(bundle)
            if self._histories.get(LAYOUT_KEY):
                raise ProofError("the bundle is from a member of a partitioned ledger, which cannot prove what "
                                 "the other members hold")
        except ProofError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error, IntegrityError, InputError) as exc:
            raise ProofError(f"the evidence bundle is malformed: {getattr(exc, 'message', exc)}") from exc

    def _head(self, h: Mapping[str, object]) -> TreeHead:
        row = HeadRow(_int(h["tx"]), _int(h["time_us"]), 0, 1, _int(h["tree_size"]), bytes.fromhex(_str(h["root_hash"])),
                      bytes.fromhex(_str(h["signature"])), bytes.fromhex(_str(h["key_index_root"])))
        if row.tx < 1 or len(row.root) != 32 or row.map_root is None or len(row.map_root) != 32:
            raise ValueError("its head is malformed")
        return self.verifier.check_head(row)

    def _history(self, key: str, items: Sequence[object]) -> list[Entry]:
        codec.check_key(key)
        if not items or len(items) > MAX_VERSIONS:
            raise ValueError(f"its history of {key!r} has {len(items)} versions")
        entries = []
        for item in map(_mapping, items):
            tx, time_us, leaf_key, revision, value = codec.decode_leaf(bytes.fromhex(_str(item["leaf_data"])))
            if leaf_key != key:
                raise ProofError(f"the bundle files an entry of {leaf_key!r} under {key!r}")
            row = EntryRow(_int(item["leaf_index"]), tx, key, revision, value, time_us)
            path = [bytes.fromhex(_str(p)) for p in _list(item["audit_path"])]
            entries.append(self.verifier.check_entry(key, row, self.head, path, {}))
        if [e.revision for e in entries] != list(range(1, len(entries) + 1)):
            raise ProofError(f"the bundle's history of {key!r} is not revisions 1..{len(entries)}: versions are missing")
        index = _map.MapProof.from_json(_mapping(_mapping(items[-1])["key_index"]))
        newest = self.verifier.check_index(key, index, self.head)
        last = entries[-1]
        if newest is None or (newest.revision, newest.leaf_index, newest.leaf_hash.hex()) != (
                last.revision, last.proof["leaf_index"], last.proof["leaf_hash"]):
            raise ProofError(f"the signed key index names another newest version of {key!r}: versions are missing")
        return entries

    def _absent(self, key: str, proof: Mapping[str, object]) -> _map.MapValue | None:
        return self.verifier.check_index(key, _map.MapProof.from_json(proof), self.head)

    def check_checkpoint(self, note: notes.Note, witnesses: list[notes.Verifier], min_witnesses: int) -> int:
        """Prove the bundle's head extends a checkpoint the auditor trusts (signed by the bundle's ledger key,
        cosigned by min_witnesses of witnesses); returns its size. Not a prefix: a split view, ProofError."""
        log = checkpoints.log_verifier(self.head.ledger_id, self.verifier.public_raw)
        cp, _ = checkpoints.check(note, log, witnesses, min_witnesses)
        return anchored(cp, self.head, self.consistency)


def anchored(cp: notes.Checkpoint, head: TreeHead, consistency: Mapping[int, tuple[bytes, list[bytes]]]) -> int:
    """The checkpoint's size, once the bundle's head is proven to extend it by the consistency proof the bundle
    carries from that size (either backend). Not a prefix: a split view, ProofError."""
    if cp.size > head.tree_size:
        raise UsageError(f"the checkpoint (size {cp.size}) is newer than the bundle's head (size "
                         f"{head.tree_size})", hint="export the bundle again, with --checkpoint")
    path: list[bytes] = []
    if 0 < cp.size < head.tree_size:
        if cp.size not in consistency:
            raise UsageError(f"the bundle holds no consistency proof from size {cp.size}",
                             hint="export it with --checkpoint naming this checkpoint")
        root, path = consistency[cp.size]
        if root != cp.root:
            raise ProofError(f"split view: the bundle proves consistency from another tree of size {cp.size} "
                             "than the checkpoint's")
    checkpoints.consistent_with(cp, head, path)
    return cp.size


def load(data: bytes, ledger_id: str | None = None, log_vkey: str | None = None) -> BundleReplay:
    """The bundle's replay (Replay, or immudb_evidence.ImmudbReplay for an immudb ledger's bundle)."""
    if len(data) > MAX_BUNDLE:
        raise ProofError(f"the evidence bundle is over {MAX_BUNDLE} bytes")
    bundle = jsonsafe.parse_object(data, "evidence bundle", error=ProofError)
    ledger = bundle.get("ledger")
    if isinstance(ledger, dict) and ledger.get("backend") == "immudb":
        from notary.audit.immudb_evidence import ImmudbReplay

        return ImmudbReplay(bundle, ledger_id, log_vkey)
    if log_vkey is not None:
        raise UsageError("--log-vkey pins an immudb ledger's operator key; an embedded bundle is pinned by "
                         "--ledger-id or --checkpoint")
    return Replay(bundle, ledger_id)


def decide(replay: BundleReplay, trusted: Sequence[keys.PublicKey | TrustedKey],
           digests: Sequence[str] = (), require: Sequence[Requirement] = ()) -> list[Decision]:
    """The decision of verify_digest on the bundle's answers, for the digests the auditor names (the image
    they hold: a bundle that does not cover one is a ProofError) or else every digest the bundle names. A
    trusted key the bundle was not exported for is a UsageError: its records were never asked for."""
    tks = as_trusted(trusted)
    missing = [tk.key_id for tk in tks if tk.key_id not in replay.signers]
    if missing:
        raise UsageError(f"the bundle was not exported for key {missing[0]}",
                         hint="export it with --key for every key you verify with")
    wanted = [records.check_digest(d) for d in digests] or replay.digests
    if not wanted:
        raise ProofError("the evidence bundle names no digest")
    unasked = [r.predicate_type for r in require if r.predicate_type not in replay.required]
    if unasked:
        raise UsageError(f"the bundle was not exported with --require {unasked[0]}",
                         hint="export it with --require for every predicate type you require")
    return [required_decision(replay, verify_digest(replay, d, tks), tks, require) for d in wanted]


def required_decision(reader: HistoryReader, decision: Decision, trusted: Sequence[TrustedKey],
              require: Sequence[Requirement]) -> Decision:
    """The decision, refused when an allowed digest lacks a required attestation (notary.attest.unmet)."""
    if not require or not decision.allowed:
        return decision
    from notary.attest import unmet

    missing = unmet(reader, decision.digest, trusted, require)
    return decision if missing is None else decision._replace(allowed=False, status="missing-attestation",
                                                              reason=missing)


def attested_by(reader: HistoryReader, digest: str, trusted: Sequence[TrustedKey],
              require: Sequence[Requirement]) -> list[dict[str, object]]:
    """Each trusted key's attestations about digest, read (so the bundle carries them, with their proofs):
    the types its attestation index names, and the required ones (whose absence is then proven too)."""
    from notary.attest import attestation_history, indexed_types

    out: list[dict[str, object]] = []
    for tk in trusted:
        types = [t.predicate_type for t in indexed_types(reader, digest, tk.key_id)]
        for ptype in dict.fromkeys([*types, *(r.predicate_type for r in require)]):
            for att, entry in attestation_history(reader, digest, tk.key, ptype):
                out.append({"digest": digest, "signer": tk.key_id, "predicate_type": att.predicate_type,
                            "tx": entry.tx, "revision": entry.revision})
    return out


def dump(bundle: Mapping[str, object]) -> bytes:
    return json.dumps(bundle, indent=1, sort_keys=True).encode() + b"\n"
