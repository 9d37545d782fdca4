"""The gRPC transport: immudb's protobuf API through immudb-py's client, its answers typed by _proto.

immudb-py is used as a gRPC client only (login, its stubs): none of its verified calls, state services or key
loading, since ImmudbLedger proves every answer itself, the same way as the gateway's. Every gRPC failure leaves
here as a notary error (_conn.translate). Imported only when a gRPC ledger is opened: grpc and immudb-py cost
~175 ms to import.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import TypeVar

from notary.errors import ProofError, RollbackError
from notary.ledger.immudb import _proto as proto
from notary.ledger.immudb._conn import ImmudbTarget, translate
from notary.ledger.immudb._proofs import ImmuState
from notary.ledger.immudb._replay import ScannedTx
from notary.ledger.immudb._transport import EntryProof, Item, TxProof

_T = TypeVar("_T")
_MAX_PAGE = 1000  # immudb's default maxResultSize: the most transactions one TxScan may return
_PAGE_BYTES = 2 << 20  # aim for answers of about 2 MiB (gRPC's default receive limit is 4 MiB)
_LOGGED_OUT = ("not logged in", "invalid token", "session not found")


class GrpcTransport:
    """One immudb-py client on one database (see _transport.Transport)."""

    def __init__(self, target: ImmudbTarget, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self.server_version = ""
        self._uuid = ""
        self._password = ""
        self._client: proto.Message = None
        self.scan_page = 250

    def connect(self) -> str:
        from immudb import ImmudbClient
        from immudb.rootService import RootService

        class NoState(RootService):  # type: ignore[misc]  # immudb-py ships no types
            """immudb-py asks its state service for the server's state at login: trust is notary's, ask nothing."""

            def init(self, dbname: str, service: object) -> None:
                pass

        self._client = ImmudbClient(self.target.address, rs=NoState(), timeout=self.timeout)
        self._uuid = self._call(self._identify, "connect")
        return self._uuid

    def _identify(self) -> str:
        """The server's uuid (immudb sends it with every answer) and, as a side effect, its version."""
        from google.protobuf import empty_pb2
        from immudb.grpc import schema_pb2_grpc

        health, call = schema_pb2_grpc.ImmuServiceStub(self._client.channel).Health.with_call(
            empty_pb2.Empty(), timeout=self.timeout
        )
        self.server_version = str(getattr(health, "version", "")).rstrip("-")
        uuid = str(dict(call.initial_metadata() or ()).get("immudb-uuid", ""))
        if not uuid.isalnum():
            raise ProofError(f"immudb at {self.target.address} did not identify itself (no server uuid)")
        return uuid

    def login(self, password: str) -> None:
        self._password = password
        self._call(self._login, "connect")

    def _login(self) -> None:
        self._client.login(self.target.user, self._password, database=self.target.database.encode())

    def _call(self, call: Callable[[], _T], what: str) -> _T:
        """Run one call, every failure as a notary error; after a server restart the login token is void, so
        log in again once (to the same server only)."""
        try:
            try:
                return call()
            except Exception as exc:
                if not self._password or not _is_logged_out(exc):
                    raise
            uuid = self._identify()
            if uuid != self._uuid:  # restarted as another server: never log in to it mid-session
                raise RollbackError(
                    f"the immudb at {self.target.address} was replaced mid-session (server {uuid}, "
                    f"expected {self._uuid})"
                )
            self._login()
            return call()
        except Exception as exc:
            mapped = translate(exc, self.target, what)
            if mapped is None or mapped is exc:
                raise
            raise mapped from None

    def _stub(self) -> proto.Message:
        return self._client._stub

    def current_state(self) -> ImmuState:
        from google.protobuf import empty_pb2

        raw = self._call(lambda: self._stub().CurrentState(empty_pb2.Empty()), "read the current state")
        return ImmuState(str(raw.db), int(raw.txId), bytes(raw.txHash), bytes(raw.signature.signature))

    def verifiable_get(self, key: bytes, at_tx: int | None, since_tx: int) -> EntryProof:
        from immudb.grpc import schema_pb2

        request = schema_pb2.VerifiableGetRequest(keyRequest=schema_pb2.KeyRequest(key=key, atTx=at_tx or 0),
                                                  proveSinceTx=since_tx)
        what = f"read {key.decode('utf-8', 'replace')}"
        ventry = self._call(lambda: self._stub().VerifiableGet(request), what)
        entry, vtx = ventry.entry, ventry.verifiableTx
        md = proto.kv_metadata_bytes(entry.metadata if entry.HasField("metadata") else None)
        return EntryProof(bytes(entry.key), bytes(entry.value), int(entry.tx), int(entry.revision), md,
                          entry.HasField("referencedBy"), proto.entry_inclusion(ventry.inclusionProof),
                          proto.dual_proof(vtx.dualProof), proto.signature(vtx))

    def verifiable_tx(self, tx: int, since_tx: int) -> TxProof:
        from immudb.grpc import schema_pb2

        request = schema_pb2.VerifiableTxRequest(tx=tx, proveSinceTx=since_tx)
        return proto.tx_proof(self._call(lambda: self._stub().VerifiableTxById(request), f"read transaction {tx}"))

    def set_all(self, kvs: dict[bytes, bytes]) -> int:
        request = _set_request(kvs)
        return int(self._call(lambda: self._stub().Set(request), "write").id)

    def verifiable_set(self, kvs: dict[bytes, bytes], since_tx: int) -> TxProof:
        from immudb.grpc import schema_pb2

        request = schema_pb2.VerifiableSetRequest(setRequest=_set_request(kvs), proveSinceTx=since_tx)
        return proto.tx_proof(self._call(lambda: self._stub().VerifiableSet(request), "write"))

    def history(self, key: bytes, offset: int, limit: int, since_tx: int) -> list[Item]:
        from immudb.grpc import schema_pb2

        request = schema_pb2.HistoryRequest(key=key, offset=offset, limit=limit, desc=False, sinceTx=since_tx)
        answer = self._call(lambda: self._stub().History(request),
                            f"read the history of {key.decode('utf-8', 'replace')}")
        return [Item(int(e.tx), bytes(e.value)) for e in answer.entries]

    def scan_keys(self, prefix: bytes, seek: bytes, limit: int, since_tx: int) -> list[bytes]:
        from immudb.grpc import schema_pb2

        request = schema_pb2.ScanRequest(seekKey=seek, prefix=prefix, desc=False, limit=limit, sinceTx=since_tx,
                                         noWait=False)
        answer = self._call(lambda: self._stub().Scan(request), f"list keys under {prefix.decode('utf-8', 'replace')!r}")
        return list(dict.fromkeys(bytes(e.key) for e in answer.entries))

    def scan_txs(self, first: int, last: int) -> Iterator[ScannedTx]:
        """Transactions first..last (every entry, digests only), in pages sized to stay under gRPC's limit."""
        from immudb.grpc import schema_pb2

        while first <= last:
            n = min(self.scan_page, last - first + 1)
            request = schema_pb2.TxScanRequest(initialTx=first, limit=n, sinceTx=1)
            try:
                answer = self._call(functools.partial(self._raw_scan, request), "catch up the local immudb mirror")
            except _Shrink:
                self.scan_page = max(1, n // 4)
                continue
            page = answer.txs
            if not page or len(page) > n:
                raise ProofError(f"immudb answered a scan of {n} transactions from tx {first} with {len(page)}")
            self.scan_page = max(1, min(_MAX_PAGE, n * _PAGE_BYTES // max(1, answer.ByteSize())))
            for tx in page:
                yield proto.scanned_from_proto(tx)
            first += len(page)

    def _raw_scan(self, request: proto.Message) -> proto.Message:
        import grpc

        try:
            return self._stub().TxScan(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            if int(request.limit) > 1 and (exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                                           or "limit" in (exc.details() or "")):
                raise _Shrink from None
            raise

    def details(self) -> dict[str, str]:
        return {}

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.shutdown()


def _set_request(kvs: dict[bytes, bytes]) -> proto.Message:
    from immudb.grpc import schema_pb2

    return schema_pb2.SetRequest(KVs=[schema_pb2.KeyValue(key=k, value=v) for k, v in kvs.items()])


class _Shrink(Exception):
    """A TxScan page too large for gRPC's limit: ask again for fewer transactions."""


def _is_logged_out(exc: BaseException) -> bool:
    code = getattr(exc, "code", None)
    name = getattr(code() if callable(code) else None, "name", "")
    details = getattr(exc, "details", None)
    detail = str(details() if callable(details) else "")
    return name == "UNAUTHENTICATED" or detail in _LOGGED_OUT
