"""`notary ledger`: what the ledger is, how big, and what this client trusts about it."""

from __future__ import annotations

import click

from notary.cli.commands import checkpoint as checkpoint_cmd
from notary.cli.commands import mirror as mirror_cmd
from notary.cli.common import App, pass_app


@click.group("ledger")
def ledger() -> None:
    """Inspect the ledger and this client's trusted state.

    \b
    Examples:
      notary ledger info
      notary --ledger file:///var/lib/notary/ledger.db ledger init
      notary ledger audit
    """


@ledger.command("init")
@pass_app
def init(app: App) -> None:
    """Create the embedded ledger at --ledger / NOTARY_LEDGER / the config's `ledger` (exit 0 if it exists).

    A partitioned ledger (partitioned:URL1,URL2,...; docs/partitions.md) is set up by writing its layout into
    every member, which must be empty; its embedded members are created.

    A ledger is created only on purpose: `notarize` creates one by itself only at the default location
    (~/.local/share/notary/ledger.db), or with `notarize --create`, so a mistyped path is exit 4 instead of a
    new, empty ledger that silently takes the records. immudb databases are created on the server
    (docs/immudb.md).

    \b
    Examples:
      notary --ledger file:///var/lib/notary/ledger.db ledger init
      notary --ledger partitioned:immudb://notary@db1:3322/notary,immudb://notary@db2:3322/notary ledger init
    """
    from notary.errors import UsageError

    url = app.ledger_url or "file:"
    if url.startswith("partitioned:"):
        _init_partitioned(app)
        return
    if not url.startswith("file:"):
        raise UsageError("ledger init creates embedded ledgers (file://...); an immudb database is created on the "
                         "server", hint="immuadmin database create NAME (docs/immudb.md)")
    opened = app.open_ledger(create=True)
    created = bool(getattr(opened, "created", False))
    if created:
        opened.notices[:] = [n for n in opened.notices if not n.startswith("created new ledger")]  # said below
    details = opened.info()
    where = details.details.get("path", details.url)
    app.emit({"created": created, "ledger_id": details.ledger_id, "url": details.url, "path": str(where)},
             f"{'created' if created else 'already exists:'} ledger {details.ledger_id} at {where}",
             schema="ledger-init")


def _init_partitioned(app: App) -> None:
    from notary.ledger.partitioned import PartitionedLedger

    opened = app.open_ledger(create=True)
    assert isinstance(opened, PartitionedLedger)
    created = opened.initialize()
    opened.notices[:] = [n for n in opened.notices if not n.startswith("created new ledger")]
    app.emit({"created": created, "ledger_id": opened.ledger_id, "url": opened.url, "path": None,
              "partitions": opened.members},
             f"{'created' if created else 'already exists:'} partitioned ledger {opened.ledger_id} of "
             f"{len(opened.members)} partitions", schema="ledger-init")


@ledger.command("info")
@pass_app
def info(app: App) -> None:
    """The ledger's current verified head, its size, and the trusted state it was proven consistent with.

    \b
    Examples:
      notary ledger info
      notary --ledger immudb://notary@immudb.internal:3322/notary --json ledger info
    """
    details = app.open_ledger().info()
    data = details.to_json()

    def human() -> str:
        head = details.head
        trusted = details.trusted or {}
        lines = [
            f"ledger:        {details.url}",
            f"backend:       {details.backend}"
            + (f" through its HTTP gateway {details.details['gateway']}" if details.details.get("gateway") else ""),
            f"identity:      {details.ledger_id}",
            f"head:          size {head.tree_size}, tx {head.tx}, root {head.root.hex()}",
        ]
        if details.entries is not None:
            lines.append(f"entries:       {details.entries} in {details.transactions} transactions")
        if details.head.map_root is not None:
            lines.append(f"key index:     root {details.head.map_root.hex()} (reads prove completeness)")
        elif details.backend == "file":
            lines.append("key index:     none (format v1: reads cannot prove completeness; notary ledger upgrade)")
        if details.backend == "partitioned":
            lines.append(f"rule:          {details.details.get('rule')} (docs/partitions.md)")
            for member in details.details.get("partitions", []):
                mhead = member["head"]
                lines.append(f"partition {member['index']}:   {member['url']} ({member['backend']}, "
                             f"{member['ledger_id']}), tx {mhead['tx']}")
            lines.append(f"trusted state: the layout and each partition's own ({trusted.get('tree_size')} "
                         "entries trusted in all)")
        else:
            lines.append(f"trusted state: size {trusted.get('tree_size')}, root {trusted.get('root_hash')}")
        return "\n".join(lines)

    app.emit(data, human, schema="ledger-info")


@ledger.command("audit")
@pass_app
def audit(app: App) -> None:
    """Recompute the whole ledger and check it against the trusted state (O(n)).

    Embedded: every row and signed head. immudb: every transaction replayed from the server, re-hashed and
    chained to the trusted state, into this client's verified mirror (notary ledger mirror).
    Per-read proofs show a value is in the tree; they cannot show that a newer version of the key was not
    deleted from the file. This full check can: run it on a schedule, or before trusting a ledger copy.

    \b
    Examples:
      notary ledger audit
      notary --ledger immudb://notary@immudb.internal:3322/notary ledger audit
    """
    from notary.errors import UsageError

    if (app.ledger_url or "").startswith("immudb:"):
        return mirror_cmd.audit_immudb(app)
    if (app.ledger_url or "").startswith("partitioned:"):
        return _audit_partitioned(app)
    ledger_obj = app.open_ledger()
    run_audit = getattr(ledger_obj, "audit", None)
    if run_audit is None:
        raise UsageError("ledger audit applies to the embedded ledger; immudb verifies on the server side",
                         hint="for immudb, audit with immuclient (docs/immudb.md)")
    report = run_audit()
    app.emit(
        {"ok": True, "head": report.head.to_json(), "entries": report.entries, "transactions": report.transactions,
         "keys": report.keys, "signatures_checked": report.signatures_checked,
         "log_nodes_checked": report.nodes_checked, "key_index_nodes_checked": report.index_nodes_checked},
        f"audit ok: {report.entries} entries in {report.transactions} transactions, {report.keys} keys, "
        f"{report.signatures_checked} head signatures, {report.nodes_checked} stored log subtrees and "
        f"{report.index_nodes_checked} key index nodes checked; head size {report.head.tree_size}",
        schema="ledger-audit",
    )


def _audit_partitioned(app: App) -> None:
    from notary.ledger.partitioned import PartitionedLedger

    ledger_obj = app.open_ledger()
    assert isinstance(ledger_obj, PartitionedLedger)  # a partitioned: URL opens one
    reports = ledger_obj.audit()
    head = ledger_obj.info().head
    parts = [{"index": i, "ledger_id": r.head.ledger_id, "head": r.head.to_json(), "entries": r.entries,
              "transactions": r.transactions, "keys": r.keys, "signatures_checked": r.signatures_checked}
             for i, r in enumerate(reports)]
    total = {"entries": sum(r.entries for r in reports), "transactions": sum(r.transactions for r in reports),
             "keys": sum(r.keys for r in reports), "signatures_checked": sum(r.signatures_checked for r in reports)}
    app.emit({"ok": True, "head": head.to_json(), **total, "partitions": parts},
             f"audit ok: {len(parts)} partitions, each audited whole: {total['entries']} entries in "
             f"{total['transactions']} transactions, {total['keys']} keys, {total['signatures_checked']} head "
             "signatures", schema="ledger-audit")


@ledger.command("upgrade")
@pass_app
def upgrade(app: App) -> None:
    """Give an embedded ledger written by notary 0.1 (format v1) its signed key index.

    The whole log is recomputed and checked first; then the key index is built from the newest version of
    every key and the current head is re-signed with its root (same size, same log root: no record is
    added, changed or removed). From then on every read proves it shows the newest version, or that a key
    is absent. Needs the ledger's signing key (beside the file). A first write upgrades automatically.

    \b
    Examples:
      notary --ledger file:///var/lib/notary/ledger.db ledger upgrade
    """
    from notary.errors import UsageError

    if not (app.ledger_url or "file:").startswith("file:"):
        raise UsageError("ledger upgrade applies to embedded ledgers (file://...)")
    from notary.ledger.embedded import EmbeddedLedger

    ledger_obj = app.open_ledger()
    assert isinstance(ledger_obj, EmbeddedLedger)  # a file: URL opens the embedded backend
    result = ledger_obj.upgrade()
    head = result["head"]
    app.emit(result, (f"upgraded to {result['format']}: " if result["upgraded"] else
                      f"already {result['format']}: ") + f"head size {head['tree_size']}, tx {head['tx']}, "
             f"key index root {head.get('key_index_root')}", schema="ledger-upgrade")


ledger.add_command(mirror_cmd.mirror)
ledger.add_command(checkpoint_cmd.checkpoint)  # `notary ledger checkpoint`  # `notary ledger mirror`, kept in its own module
