"""A monitor's round: every transaction since the last one it checked, verified and reported as events.

Each round reads Ledger.changes(cursor, None, index=True) (up to the head that read verified): the head proven consistent with the monitor's own
trusted state (kept apart from any client's, so a monitor is an independent observer), every entry of the new
transactions proven included and the range proven complete, every envelope's signature checked (notary.audit
.diff), and on the embedded ledger the signed key index proven to hold exactly the newest version each new
entry says (from transaction 0: the whole index rebuilt from the entries). The cursor moves only after all of
that held. Events are plain dicts, one per transaction, one per attestation it wrote (its predicate type and
subjects, opened and signature-checked like a notarization), one per finding, one for the head; the CLI
prints them as JSON lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import groupby
from pathlib import Path

from notary.audit.diff import diff
from notary.errors import RollbackError, TrustStoreError
from notary.fsio import atomic_write, read_regular
from notary.ledger.base import Ledger, rfc3339

_FORMAT = "notary.monitor-cursor/v1"
# an attestation line: the proven place (tx, time, key), who signed it and what it says it is about


def cursor_path(state_dir: Path, ledger_id: str) -> Path:
    import hashlib

    return state_dir / f"monitor-{hashlib.sha256(ledger_id.encode()).hexdigest()[:32]}.json"


def load_cursor(path: Path, ledger_id: str) -> int | None:
    """The last transaction this monitor checked (None: it never checked this ledger)."""
    if not path.exists():
        return None
    try:
        data = json.loads(read_regular(path, 1 << 16, "monitor cursor"))
        if data.get("format") != _FORMAT or data.get("ledger_id") != ledger_id:
            raise ValueError("it is not this ledger's cursor")
        return int(data["tx"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TrustStoreError(f"monitor cursor {path} is unusable: {exc}",
                              hint="restore it, or remove it to check the ledger again from --from") from exc


def save_cursor(path: Path, ledger_id: str, tx: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, json.dumps({"format": _FORMAT, "ledger_id": ledger_id, "tx": tx}).encode() + b"\n", 0o600)


def one_round(ledger: Ledger, after_tx: int, trusted: set[str] | None = None) -> Iterator[dict[str, object]]:
    """Events for transactions after_tx+1 .. the verified head; the last event is {"event": "head", ...}.
    Raises IntegrityError (tampering) before any event of a range that does not verify."""
    head = ledger.info().head
    if head.tx < after_tx:
        raise RollbackError(f"the ledger is at tx {head.tx}, but this monitor already checked tx {after_tx}")
    entries = ledger.changes(after_tx, head.tx, index=True)
    for tx, group in groupby(entries, key=lambda e: e.tx):
        batch = list(group)
        found = diff(batch, tx - 1, tx, head, trusted)
        yield {"event": "tx", "tx": tx, "time": rfc3339(batch[0].time), "entries": found.entries,
               "records": [c.to_json() for c in found.changes], "index_entries": dict(found.index_entries),
               "other_entries": found.other_entries, "attestations": len(found.attestations)}
        for a in found.attestations:  # each opened with its transaction's signer index, as `audit diff` does
            yield {"event": "attestation", **a}  # an AttestationRow: what audit diff lists of each, no envelope
        for f in found.findings:
            yield {"event": "finding", **f.to_json()}
    yield {"event": "head", "tx": head.tx, "tree_size": head.tree_size, "root_hash": head.root.hex(),
           "ledger_id": head.ledger_id}
