"""Absence proofs and signer sets against genuine answers generated once (tests/vectors/make_proof_answers.py)
and kept: a verifier written from docs/proofs.md alone ("Absence", "The signer set", "Tree heads and the
ledger key", the worked example) must accept every answer notary printed and refuse every forgery, so the
document is enough to check what notary prints, and a change to either format has to be deliberate.

The checker uses hashlib, struct, json, `cryptography` (the Ed25519 head signature) and `auditor_check` (the
document's check_index); nothing from notary. Each attack starts from an answer the checker accepts and names
the step that must refuse it, so an attack refused by accident (a malformed copy) does not pass."""

from __future__ import annotations

import copy
import hashlib
import json
import struct
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from tests.test_key_index_vectors import auditor_check

_DIR = Path(__file__).parent / "vectors"
ABSENCE: dict[str, Any] = json.loads((_DIR / "absence.json").read_text())
SIGNER_SET: dict[str, Any] = json.loads((_DIR / "signer_set.json").read_text())
LEDGER_ID: str = ABSENCE["ledger_id"]
LEDGER_KEY: str = ABSENCE["ledger_key"]
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
Json = dict[str, Any]


class Refused(Exception):
    """The checker does not accept a proof; `step` names the check that refused it."""

    def __init__(self, step: str, detail: str = "") -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step


def require(ok: bool, step: str, detail: str = "") -> None:
    if not ok:
        raise Refused(step, detail)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


class Leaf(NamedTuple):
    tx: int
    revision: int
    key: str
    value: bytes


def decode_leaf(leaf_data: str, leaf_hash: str) -> Leaf:
    """"Leaf data": the one decoding of the bytes, after checking leaf_hash is their RFC 9162 leaf hash (the
    hash is what the audit path proves, the decoded fields are what the answer claims)."""
    data = bytes.fromhex(leaf_data)
    require(sha256(b"\x00" + data).hex() == leaf_hash, "leaf hash", "leaf_hash is not SHA-256(0x00 || leaf_data)")
    require(data[:14] == b"notary-leaf-v1" and len(data) >= 50, "leaf", "not a notary-leaf-v1")
    tx, _time_us, revision, klen = struct.unpack(">QqQI", data[14:42])
    require(len(data) >= 50 + klen, "leaf", "truncated key")
    (vlen,) = struct.unpack(">Q", data[42 + klen:50 + klen])
    require(len(data) == 50 + klen + vlen, "leaf", "the value does not end where the leaf does")
    return Leaf(tx, revision, data[42:42 + klen].decode("ascii"), data[50 + klen:])


def check_inclusion(leaf_index: int, tree_size: int, leaf_hash: str, audit_path: list[str], root: str) -> None:
    """RFC 9162 2.1.3.2, the worked example's step 2."""
    require(0 <= leaf_index < tree_size, "inclusion", "leaf index outside the tree")
    fn, sn, r = leaf_index, tree_size - 1, bytes.fromhex(leaf_hash)
    for h in map(bytes.fromhex, audit_path):
        require(sn > 0, "inclusion", "audit path too long")
        if fn & 1 or fn == sn:
            r = node(h, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, h)
        fn, sn = fn >> 1, sn >> 1
    require(sn == 0 and r.hex() == root, "inclusion", "the audit path does not lead to the signed root")


def check_consistency(c: Json, tree_size: int, root: str) -> None:
    """RFC 9162 2.1.4.2, the worked example's step 3: the head extends what the reader trusted before."""
    m, n = c["from_size"], c["to_size"]
    require(n == tree_size and c["to_root"] == root and 0 <= m <= n, "consistency", "not to the signed head")
    require(m != n or c["from_root"] == root, "consistency", "the same size with another root")
    if not 0 < m < n:
        return  # up to date, or first use: nothing to prove
    path = [bytes.fromhex(h) for h in c["path"]]
    if m & (m - 1) == 0:
        path.insert(0, bytes.fromhex(c["from_root"]))
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for h in path[1:]:
        require(sn > 0, "consistency", "path too long")
        if fn & 1 or fn == sn:
            fr, sr = node(h, fr), node(h, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node(sr, h)
        fn, sn = fn >> 1, sn >> 1
    require(sn == 0 and fr.hex() == c["from_root"] and sr.hex() == c["to_root"], "consistency")


def time_us(rfc3339: str) -> int:
    """A head's `time` (RFC 3339, UTC) as the signed integer of the head message: microseconds since 1970."""
    return (datetime.fromisoformat(rfc3339.replace("Z", "+00:00")) - _EPOCH) // timedelta(microseconds=1)


def check_head(head: Json, ledger_key: str) -> None:
    """"Tree heads and the ledger key", for a head as answers print it (`time` in RFC 3339): the key is the
    ledger's (its id, the one expected) and signed this v2 head message."""
    key = load_pem_public_key(ledger_key.encode())
    require(isinstance(key, Ed25519PublicKey), "ledger key", "not an Ed25519 key")
    assert isinstance(key, Ed25519PublicKey)
    spki = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    require(head["ledger_id"] == LEDGER_ID == "file:sha256:" + sha256(spki).hex(), "ledger key", "another ledger")
    message = (b"notary-head-v2" + struct.pack(">Q32sQq", head["tree_size"], bytes.fromhex(head["root_hash"]),
                                               head["tx"], time_us(head["time"])) + bytes.fromhex(head["key_index_root"]))
    try:
        key.verify(bytes.fromhex(head["signature"]), message)
    except InvalidSignature as exc:
        raise Refused("head signature", "the ledger key did not sign this head") from exc


def newest_version(index_root: str, key: str, proof: Json) -> tuple[int, int, str] | None:
    """The document's check_index (auditor_check): (revision, leaf index, leaf hash), or None if absent."""
    try:
        return auditor_check(index_root, key, proof)
    except AssertionError as exc:
        raise Refused("key_hash" if "a proof for another key" in str(exc) else "key index", str(exc)) from exc


def check_absence(proof: Json, key: str, ledger_key: str = LEDGER_KEY) -> str:
    """"Absence": "never-written" or "not-yet-written" (as of proof["as_of_tx"]), else Refused."""
    require(proof["key"] == key and proof["method"] == "key-index", "key", "a proof about another key")
    head = proof["head"]
    check_head(head, ledger_key)
    newest = newest_version(head["key_index_root"], key, proof["key_index"])
    first, as_of = proof["first_version"], proof["as_of_tx"]
    if first is None:
        require(newest is None, "present", "the key index names a version of the key")
        return "never-written"
    require(newest is not None and isinstance(as_of, int), "key index", "a first version needs an as_of_tx and a key")
    leaf = decode_leaf(first["leaf_data"], first["leaf_hash"])
    require(leaf.key == key, "first version key", "the leaf is another key's")
    require(leaf.revision == 1, "revision 1", "only revision 1 proves there was nothing before it")
    require(leaf.tx == first["tx"], "leaf tx", "first_version.tx is not the tx in the leaf")
    check_inclusion(first["leaf_index"], head["tree_size"], first["leaf_hash"], first["audit_path"], head["root_hash"])
    require(leaf.tx > as_of, "later", "revision 1 was written by as_of_tx")
    return "not-yet-written"


def signer_of(value: bytes) -> str | None:
    """The signer a signers/<digest> value names; None for a malformed one (it names no one)."""
    try:
        signer = json.loads(value).get("signer")
    except (ValueError, AttributeError):
        return None
    return signer if isinstance(signer, str) and signer.startswith("sha256:") and len(signer) == 71 else None


def check_signer_set(answer: Json, digest: str, ledger_key: str = LEDGER_KEY) -> list[str]:
    """"The signer set": every version proven in the answer's one head, revisions 1, 2, ... with nothing
    left out, each naming the signer shown, and `signers` their union. Returns the signers."""
    head, found, as_of = answer["head"], answer["signer_set"], answer["as_of_tx"]
    check_head(head, ledger_key)
    key = "signers/" + digest
    require(found["key"] == key, "key", "the set of another digest")
    newest = None
    for i, version in enumerate(found["versions"], 1):
        p = version["proof"]
        signed = (p["tree_size"], p["root_hash"], p["head_tx"], p["head_time_us"], p["key_index_root"], p["head_signature"])
        require(signed == (head["tree_size"], head["root_hash"], head["tx"], time_us(head["time"]),
                           head["key_index_root"], head["signature"]), "one head", "not the answer's signed head")
        require(p["ledger_id"] == head["ledger_id"] and p["ledger_key"] == ledger_key, "ledger key")
        leaf = decode_leaf(p["leaf_data"], p["leaf_hash"])
        require(leaf.key == key, "leaf", "a version of another key")
        check_inclusion(p["leaf_index"], p["tree_size"], p["leaf_hash"], p["audit_path"], p["root_hash"])
        check_consistency(p["consistency"], p["tree_size"], p["root_hash"])
        require((leaf.tx, leaf.revision) == (version["tx"], version["revision"]), "version", "not the leaf's")
        require(leaf.revision == i, "revisions", "the revisions are not 1, 2, ... without a gap")
        require(as_of is None or leaf.tx <= as_of, "as of", "a version written after as_of_tx")
        require(signer_of(leaf.value) == version["signer"], "signer", "the leaf names another signer")
        if "key_index" in p:
            newest = newest_version(p["key_index_root"], key, p["key_index"])
            require(newest == (leaf.revision, p["leaf_index"], p["leaf_hash"]), "newest", "not this version")
    if as_of is None or newest is not None:  # as of a tx the newest version, and its proof, may be cut off
        require(newest is not None and newest[0] == len(found["versions"]), "complete",
                "no key index proof names the last version shown as the newest")
    signers = {v["signer"] for v in found["versions"] if v["signer"] is not None} | set(found["unindexed"])
    require(found["signers"] == sorted(signers), "signers", "not the union of the versions' signers")
    return list(found["signers"])


def check_as_of_set(as_of_answer: Json, current: Json, digest: str) -> None:
    """A set as of a transaction carries no key index proof of its end: it must be the current (complete)
    set cut at as_of_tx, both checked."""
    check_signer_set(as_of_answer, digest)
    check_signer_set(current, digest)
    cut, at = as_of_answer["signer_set"]["versions"], as_of_answer["as_of_tx"]
    want = [v for v in current["signer_set"]["versions"] if v["tx"] <= at]
    shown = [(v["revision"], v["tx"], v["signer"], v["proof"]["leaf_hash"]) for v in cut]
    require(shown == [(v["revision"], v["tx"], v["signer"], v["proof"]["leaf_hash"]) for v in want], "as of",
            "not the current set up to as_of_tx")


def _absence(name_start: str) -> Json:
    return copy.deepcopy(next(c for c in ABSENCE["cases"] if c["name"].startswith(name_start)))


def _sets() -> tuple[Json, Json]:
    """(the current set, the set as of tx 3)."""
    return copy.deepcopy(SIGNER_SET["cases"][0]), copy.deepcopy(SIGNER_SET["cases"][1])


@pytest.mark.parametrize("case", ABSENCE["cases"], ids=[c["name"] for c in ABSENCE["cases"]])
def test_absence_answer_checks_by_the_document_alone(case: Json) -> None:
    assert check_absence(case["proof"], case["key"]) == case["expect"]


@pytest.mark.parametrize("case", SIGNER_SET["cases"], ids=[c["name"] for c in SIGNER_SET["cases"]])
def test_signer_set_answer_checks_by_the_document_alone(case: Json) -> None:
    signers = {s["key_id"] for s in SIGNER_SET["signing_keys"].values()}
    assert set(check_signer_set(case, SIGNER_SET["digest"])) <= signers


def test_a_set_as_of_a_tx_is_the_current_set_cut_there() -> None:
    current, as_of = _sets()
    assert not any("key_index" in v["proof"] for v in as_of["signer_set"]["versions"]), \
        "as of tx 3 the newest version is cut off, and with it the only key index proof of the set"
    check_as_of_set(as_of, current, SIGNER_SET["digest"])


def test_the_vectors_hold_every_shape_a_verifier_meets() -> None:
    """A shape missing from the files is a branch of a verifier that these tests never run."""
    never = [c["proof"]["key_index"] for c in ABSENCE["cases"] if c["expect"] == "never-written"]
    assert any(k["leaf"] is None and k["siblings"] for k in never), "a path ending in an empty subtree"
    assert any(k["leaf"] is not None for k in never), "a path ending at another key's leaf"
    assert {c["expect"] for c in ABSENCE["cases"] if c["proof"]["as_of_tx"]} == {"never-written", "not-yet-written"}
    current, _ = _sets()
    assert len(current["signer_set"]["signers"]) == 2 and len(current["signer_set"]["versions"]) == 4
    assert SIGNER_SET["ledger_key"] == LEDGER_KEY and current["head"] == _absence("get U")["proof"]["head"]


def _flip(hex_string: str, at: int = 0) -> str:
    return hex_string[:at] + ("0" if hex_string[at] != "0" else "1") + hex_string[at + 1:]


def _rewrite_leaf(target: Json, old: bytes, new: bytes) -> None:
    """Edit a leaf's bytes and re-hash it, as a forger would: only the audit path then gives it away."""
    data = bytes.fromhex(target["leaf_data"]).replace(old, new)
    target["leaf_data"], target["leaf_hash"] = data.hex(), sha256(b"\x00" + data).hex()


def _absence_attack(attack: str) -> tuple[Json, Json]:
    """(the genuine case an attack starts from, the forged one)."""
    if attack in ("flipped sibling", "key_hash not SHA-256(key)"):  # a path ending at another key's leaf
        base = _absence("lookup --job-id never-ran: job/github/")
    elif attack.startswith("first_version") or attack == "written key claimed never written":
        base = _absence("get D --at-tx 1")  # signers/D, not yet written as of tx 1
    else:
        base = _absence("get U")  # signers/U, never written: a path ending in an empty subtree
    forged = copy.deepcopy(base)
    p, first = forged["proof"], forged["proof"]["first_version"]
    if attack == "flipped sibling":
        p["key_index"]["siblings"][0] = _flip(p["key_index"]["siblings"][0])
    elif attack == "key_hash not SHA-256(key)":  # a valid path, of another key's hash, offered for a written key
        forged["key"] = p["key"] = _absence("get D --at-tx 1")["key"]
    elif attack == "moved to a written key":  # signers/U's empty path, offered for signers/D
        forged["key"] = p["key"] = _absence("get D --at-tx 1")["key"]
        p["key_index"]["key_hash"] = sha256(forged["key"].encode()).hex()
    elif attack == "written key claimed never written":
        p["as_of_tx"] = p["first_version"] = None
    elif attack == "first_version tx <= as_of_tx":
        p["as_of_tx"] = first["tx"]
    elif attack == "first_version tx lowered to as_of_tx":
        first["tx"] = p["as_of_tx"]
    elif attack == "first_version leaf altered":
        first["leaf_data"] = _flip(first["leaf_data"], len(first["leaf_data"]) - 3)
    elif attack == "first_version leaf altered and rehashed":
        _rewrite_leaf(first, b'"type":"signer"', b'"type":"signed"')
    elif attack == "first_version audit path flipped":
        first["audit_path"][-1] = _flip(first["audit_path"][-1])
    elif attack == "first_version is revision 2":  # genuine, included, later than tx 2: but not the first
        p["as_of_tx"] = 2
        second = SIGNER_SET["cases"][0]["signer_set"]["versions"][1]["proof"]
        assert second["root_hash"] == p["head"]["root_hash"]
        p["first_version"] = {"tx": 3, **{k: second[k] for k in ("leaf_index", "leaf_hash", "leaf_data", "audit_path")}}
    elif attack == "first_version of another key":
        p["first_version"] = _absence("lookup --job-id jb2 --at-tx 4: job/local/")["proof"]["first_version"]
    elif attack == "forged head signature":
        p["head"]["signature"] = _flip(p["head"]["signature"])
    elif attack == "forged head over an empty key index":  # a head whose index holds nothing proves anything absent
        forged["key"] = p["key"] = _absence("get D --at-tx 1")["key"]
        p["head"]["key_index_root"] = "00" * 32
        p["key_index"] = {"key_hash": sha256(forged["key"].encode()).hex(), "siblings": [], "leaf": None}
    elif attack == "head relabelled as another ledger's":  # the id is not in the signed message: the key is
        p["head"]["ledger_id"] = "file:sha256:" + sha256(b"another ledger").hex()
    elif attack == "head time moved by a microsecond":
        t = datetime.fromisoformat(p["head"]["time"].replace("Z", "+00:00")) + timedelta(microseconds=1)
        p["head"]["time"] = t.isoformat().replace("+00:00", "Z")
    else:
        raise AssertionError(attack)
    return base, forged


ABSENCE_ATTACKS = {  # attack: the step of the checker that must refuse it
    "flipped sibling": "key index",
    "key_hash not SHA-256(key)": "key_hash",
    "moved to a written key": "key index",
    "written key claimed never written": "present",
    "first_version tx <= as_of_tx": "later",
    "first_version tx lowered to as_of_tx": "leaf tx",
    "first_version leaf altered": "leaf hash",
    "first_version leaf altered and rehashed": "inclusion",
    "first_version audit path flipped": "inclusion",
    "first_version is revision 2": "revision 1",
    "first_version of another key": "first version key",
    "forged head signature": "head signature",
    "forged head over an empty key index": "head signature",
    "head time moved by a microsecond": "head signature",
    "head relabelled as another ledger's": "ledger key",
}


@pytest.mark.parametrize("attack", list(ABSENCE_ATTACKS))
def test_forged_absence_proof_is_refused(attack: str) -> None:
    base, forged = _absence_attack(attack)
    assert check_absence(base["proof"], base["key"]) == base["expect"], "the attack starts from a genuine answer"
    assert forged != base
    with pytest.raises(Refused) as refused:
        check_absence(forged["proof"], forged["key"])
    assert refused.value.step == ABSENCE_ATTACKS[attack], refused.value


def _signer_set_attack(attack: str) -> tuple[Json, Json, Callable[[Json], object]]:
    """(the genuine answer, the forged one, the check that must refuse it)."""
    current, as_of = _sets()
    digest, a, stranger = SIGNER_SET["digest"], *(SIGNER_SET["signing_keys"][n]["key_id"] for n in ("a", "stranger"))
    base = as_of if attack.startswith("as-of") else current
    forged = copy.deepcopy(base)
    found, versions = forged["signer_set"], forged["signer_set"]["versions"]
    if attack == "version dropped":
        del versions[1]
    elif attack == "newest version dropped":
        versions.pop()
    elif attack == "newest version dropped, a forged index names the one before":  # an unsigned index root
        versions.pop()
        last = versions[-1]["proof"]
        kh, value = sha256(found["key"].encode()), struct.pack(">QQ", len(versions), last["leaf_index"])
        last["key_index"] = {"key_hash": kh.hex(), "siblings": [], "leaf": {
            "key_hash": kh.hex(), "value": (value + bytes.fromhex(last["leaf_hash"])).hex()}}
        last["key_index_root"] = sha256(b"\x02" + kh + bytes.fromhex(last["key_index"]["leaf"]["value"])).hex()
    elif attack == "only version of a signer dropped, and the signer":
        del versions[0]
        found["signers"] = [s for s in found["signers"] if s != a]
    elif attack.startswith("signer renamed"):  # a's only version, shown as the stranger's
        if attack.endswith("in the leaf too"):
            _rewrite_leaf(versions[0]["proof"], a.encode(), stranger.encode())
        versions[0]["signer"] = stranger
        found["signers"] = sorted({stranger, *found["signers"]} - {a})
    elif attack == "signer left out of the list":
        found["signers"] = [a]
    elif attack == "consistency path flipped":  # the head does not extend what this reader trusted
        versions[0]["proof"]["consistency"]["path"][0] = _flip(versions[0]["proof"]["consistency"]["path"][0])
    elif attack == "forged head signature":
        forged["head"]["signature"] = _flip(forged["head"]["signature"])
    elif attack == "as-of set with its last signer dropped":  # b, who signed at tx 3: nothing in it says so
        versions.pop()
        found["signers"] = [a]
    else:
        raise AssertionError(attack)
    if attack.startswith("as-of"):
        return base, forged, lambda answer: check_as_of_set(answer, current, digest)
    return base, forged, lambda answer: check_signer_set(answer, digest)


SIGNER_SET_ATTACKS = {
    "version dropped": "revisions",
    "newest version dropped": "complete",
    "newest version dropped, a forged index names the one before": "one head",
    "only version of a signer dropped, and the signer": "revisions",
    "signer renamed": "signer",
    "signer renamed in the leaf too": "inclusion",
    "signer left out of the list": "signers",
    "consistency path flipped": "consistency",
    "forged head signature": "head signature",
    "as-of set with its last signer dropped": "as of",
}


@pytest.mark.parametrize("attack", list(SIGNER_SET_ATTACKS))
def test_forged_signer_set_is_refused(attack: str) -> None:
    base, forged, check = _signer_set_attack(attack)
    check(base)  # the attack starts from a genuine answer the same check accepts
    assert forged != base
    with pytest.raises(Refused) as refused:
        check(forged)
    assert refused.value.step == SIGNER_SET_ATTACKS[attack], refused.value
