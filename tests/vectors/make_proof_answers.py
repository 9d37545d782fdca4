"""Generate tests/vectors/absence.json and tests/vectors/signer_set.json once
(python -m tests.vectors.make_proof_answers) and keep them.

They are genuine answers of the `notary` command (--json) from a small embedded ledger: absence proofs as
`error.absence` of `get`/`history`/`lookup` prints them for keys never written and for keys written only after
the transaction asked about, and the `signer_set` of `history`. A verifier written from docs/proofs.md alone
is tested against these fixed answers (tests/test_proof_answer_vectors.py), so the files must not move with
the code: regenerate only on a deliberate format change.

Signer keys come from fixed seeds and the contents, job ids and order of writes are fixed, so key ids,
digests and ledger keys, and with them every key index path, are the same on each run. The ledger's own
signing key is made by the ledger and the times are the clock's, so hashes, signatures and the ledger id
differ from run to run: that is why the output is generated once and kept, never compared with a new run.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from notary import keys
from tests.support.cli import Notary

OUT = Path(__file__).parent
UNKNOWN = "sha256:" + "7" * 64  # a digest no one notarized


def _fixed_key(notary: Notary, name: str) -> tuple[Path, str]:
    """A signing key from a fixed seed (not `notary key generate`): the same key id on every run."""
    seed = hashlib.sha256(f"notary proof answer vectors: signer {name}".encode()).digest()
    private = Ed25519PrivateKey.from_private_bytes(seed)
    path = notary.root / f"{name}.key"
    keys.write_key_pair(path, private)
    return path, keys.key_id(private)


def _build(notary: Notary) -> dict[str, Any]:
    """The ledger of tests/test_signer_set.py: E by early at tx 1; D by A at tx 2, by B at tx 3, revoked by
    B at tx 4, reinstated by B at tx 5; an auditor who last read it at tx 3."""
    signers = {name: _fixed_key(notary, name) for name in ("early", "a", "b", "stranger")}
    notary.notarize_file(signers["early"][0], b"something else\n", name="early.bin", job_id="j0")
    artifact, digest = notary.notarize_file(signers["a"][0], b"release 7\n", job_id="ja")
    b = str(signers["b"][0])
    notary.run("notarize", str(artifact), "--job-id", "jb", "--key", b)
    _auditor(notary).run("ledger", "info")  # trusts the ledger as of tx 3: a later read proves consistency
    notary.run("revoke", digest, "--reason", "CVE-2026-1212", "--key", b)
    notary.run("notarize", str(artifact), "--job-id", "jb2", "--key", b, "--reinstate", "--reason", "fixed")
    return {"digest": digest, "signers": {
        name: {"key_id": kid, "public_key": Path(f"{path}.pub").read_text()} for name, (path, kid) in signers.items()}}


def _auditor(notary: Notary) -> Notary:
    """Another reader of the same ledger, with a trusted state of its own."""
    return Notary(notary.root, state_dir=notary.root / "auditor-state")


def _absence_cases(notary: Notary, digest: str, signers: dict[str, Any]) -> list[dict[str, Any]]:
    """Every "nothing recorded" answer kind: a proof per key read, as the command printed it."""
    stranger, b = (str(notary.root / f"{n}.key.pub") for n in ("stranger", "b"))
    commands = [
        ["get", UNKNOWN],
        ["history", UNKNOWN],
        ["lookup", "--job-id", "never-ran"],
        ["history", digest, "--key", stranger],
        ["get", digest, "--at-tx", "1"],
        ["history", digest, "--key", b, "--at-tx", "2"],
        ["lookup", "--job-id", "jb2", "--at-tx", "4"],
    ]
    short = {digest: "D", UNKNOWN: "U", **{s["key_id"]: name for name, s in signers.items()}}
    cases = []
    for command in commands:
        error = notary.run("--json", *command, expect=1).json["error"]
        assert error["kind"] == "not-found" and error["absence"], command
        shown = [Path(c).name if c.endswith(".pub") else c for c in command]
        for proof in error["absence"]:
            assert proof["head"] == error["head"], "one head per answer"
            expect = "never-written" if proof["first_version"] is None else "not-yet-written"
            name = f"{' '.join(shown)}: {proof['key']} {expect}"
            for long, brief in short.items():
                name = name.replace(long, brief)
            cases.append({"name": name, "command": ["notary", "--json", *shown], "exit_code": 1,
                          "key": proof["key"], "expect": expect, "proof": proof})
    return cases


def _signer_set_cases(notary: Notary, digest: str) -> list[dict[str, Any]]:
    cases = []
    for name, extra in (("history of a digest two signers wrote", []), ("history as of tx 3", ["--at-tx", "3"])):
        answer = _auditor(notary).run("--json", "history", digest, *extra).json
        [subject] = answer["subjects"]
        cases.append({"name": name, "command": ["notary", "--json", "history", digest, *extra],
                      "as_of_tx": answer["as_of_tx"], "head": answer["head"], "signer_set": subject["signer_set"]})
    return cases


def _check_coverage(absence: list[dict[str, Any]], sets: list[dict[str, Any]]) -> None:
    """The vectors must hold every shape a verifier meets, or a verifier that mishandles one passes."""
    never = [c["proof"]["key_index"] for c in absence if c["expect"] == "never-written"]
    assert any(k["leaf"] is None and k["siblings"] for k in never), "a path ending in an empty subtree"
    assert any(k["leaf"] is not None for k in never), "a path ending at another key's leaf"
    assert any(c["expect"] == "not-yet-written" for c in absence)
    assert any(c["proof"]["as_of_tx"] is not None and c["expect"] == "never-written" for c in absence)
    assert len({c["proof"]["head"]["root_hash"] for c in absence} | {c["head"]["root_hash"] for c in sets}) == 1
    assert len(sets[0]["signer_set"]["signers"]) == 2 and len(sets[0]["signer_set"]["versions"]) == 4
    consistency = sets[0]["signer_set"]["versions"][0]["proof"]["consistency"]
    assert 0 < consistency["from_size"] < consistency["to_size"], "a consistency proof from an older head"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        notary = Notary(Path(tmp))
        built = _build(notary)
        digest = built["digest"]
        info = notary.run("--json", "ledger", "info").json
        absence = _absence_cases(notary, digest, built["signers"])
        sets = _signer_set_cases(notary, digest)
    _check_coverage(absence, sets)
    ledger = {"ledger_id": info["ledger_id"], "ledger_key": info["details"]["ledger_key"]}
    story = ("tx 1: 'early' notarizes E (job j0); tx 2: 'a' notarizes D (job ja); tx 3: 'b' notarizes D (job jb); "
             "tx 4: 'b' revokes D; tx 5: 'b' reinstates D (job jb2). No write after tx 5: every answer is "
             "against the same head. Signer sets are read by an auditor who last read the ledger after tx 3.")
    files = {
        "absence.json": {
            "description": "notary embedded ledger absence proofs (docs/proofs.md, 'Absence'), as error.absence "
                           "of the command's --json. Generated once by tests/vectors/make_proof_answers.py and kept.",
            "ledger": story, **ledger, "unknown_digest": UNKNOWN, "digest": digest, "cases": absence},
        "signer_set.json": {
            "description": "notary embedded ledger signer sets (docs/proofs.md, 'The signer set'), as "
                           "subjects[].signer_set of `history --json`. Generated once by "
                           "tests/vectors/make_proof_answers.py and kept.",
            "ledger": story, **ledger, "digest": digest, "signing_keys": built["signers"], "cases": sets},
    }
    for name, content in files.items():
        (OUT / name).write_text(json.dumps(content, indent=1) + "\n")


if __name__ == "__main__":
    main()
