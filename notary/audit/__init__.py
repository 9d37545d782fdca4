"""The auditor's side of notary: answers about the past that are proven complete, to be carried away.

`points` turns what an auditor names (a transaction, an RFC 3339 time, `latest`) into a transaction; `diff`
lists every record written between two points from a range the ledger proves complete (Ledger.changes).
The library never prints; the CLI (notary/cli/commands/audit_diff.py) formats.
"""
