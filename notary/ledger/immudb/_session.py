"""One authenticated connection to an immudb database, and the bookkeeping of what this client trusts about it.

ImmudbLedger (notary.ledger.immudb) builds the Ledger protocol on top: this base class owns the gRPC client, the
server's identity (uuid, pinned per address so a swapped server is noticed), logging in again after a server
restart, and the rule that trust is persisted only when a whole operation verified (`_guard`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from notary.errors import LedgerUnavailableError, NotaryError, ProofError, RollbackError
from notary.ledger.immudb._conn import ImmudbTarget, ServerError, translate
from notary.ledger.immudb._proofs import (
    ImmuState,
    Recorder,
    empty_state,
    make_state_provider,
    verify_state_signature,
)
from notary.ledger.trust import TrustedState, TrustStore


class ImmudbSession:
    """Connection, identity and trust state of one immudb database (see ImmudbLedger for the protocol)."""

    def __init__(self, target: ImmudbTarget, trust: TrustStore, timeout: float) -> None:
        self.target = target
        self.url = target.url
        self.trust = trust
        self.timeout = timeout
        self.notices: list[str] = []
        self.server_uuid = ""
        self.server_version = ""
        self.ledger_id = ""
        self._key: str | None = None
        self._trusted: TrustedState | None = None
        self._client: Any = None
        self._stub: Recorder | None = None
        self._rs: Any = None
        self._header_cache: dict[int, Any] = {}
        self._password = ""
        self._new_pin: TrustedState | None = None
        # a replica read in place of its primary (docs/immudb.md, "Replicas"): the primary's ledger id
        self.replica_of: str | None = None

    def _open_client(self) -> None:
        """The transport: immudb-py's gRPC client, whose proofs start from notary's state provider."""
        from immudb import ImmudbClient

        self._rs = make_state_provider(empty_state(self.target.database), None)
        self._client = ImmudbClient(self.target.address, rs=self._rs, timeout=self.timeout)

    def _use_server_key(self, key: str) -> None:
        self._client.loadKeyFromString(key)

    def _connect(self, password: str, configured_key: str | None) -> None:
        db = self.target.database
        self._open_client()
        uuid = self._identify()
        self.server_uuid = uuid
        # a replica has its own server uuid but is the primary's ledger: the same transactions, the same
        # Alh chain, checked against the same trusted state (which it must extend, like the primary would)
        self.ledger_id = self.replica_of or f"immudb:{uuid}/{db}"
        self._check_address_pin()
        self._trusted = self.trust.load(self.ledger_id)
        if self.replica_of and self._trusted is None:
            raise LedgerUnavailableError(f"no trusted state of {self.replica_of} to check its replica at "
                                f"{self.target.address} against",
                                hint="a replica is trusted only after its primary was: read from the primary once")
        pinned = self._trusted.ledger_key if self._trusted else None
        if configured_key and pinned and configured_key.strip() != pinned.strip():
            raise RollbackError(
                f"NOTARY_IMMUDB_SERVER_KEY differs from the server key pinned for {self.ledger_id}",
                hint=f"if the server key was rotated on purpose, remove {self.trust.path_for(self.ledger_id)}",
            )
        self._key = configured_key or pinned
        self._rs.key = self._key
        if self._key:
            self._use_server_key(self._key)
        self._rs.reset(self._state_of(self._trusted) if self._trusted else empty_state(db))

        self._password = password
        self._login()
        current = self._current_state()
        if self._trusted is None:
            self._rs.reset(current)
            self._commit()
            self.notices.append(
                f"trusting immudb ledger {self.ledger_id} at {self.target.address} on first use "
                f"(tx {current.tx}, hash {current.alh.hex()[:16]}...)"
                + ("" if self._key else "; no server signing key configured (NOTARY_IMMUDB_SERVER_KEY)")
            )
        else:
            self._check_not_behind(current)
        if self._new_pin is not None:  # only once this server checked out: a failed first contact pins nothing
            self.trust.save(self._new_pin)
            self._new_pin = None

    def _login(self) -> None:
        self._client.login(self.target.user, self._password, database=self.target.database.encode())
        self._stub = Recorder(self._client._stub)
        self._client._stub = self._stub

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

    def _rpc(self, call: Callable[[], Any]) -> Any:
        """Run one immudb call; after a server restart its login token is void, so log in again once."""
        try:
            return call()
        except Exception as exc:
            if not _is_logged_out(exc):
                raise
        uuid = self._identify()
        if uuid != self.server_uuid:  # restarted as another server: never log in to it mid-session
            raise RollbackError(
                f"the immudb at {self.target.address} was replaced mid-session (server {uuid}, "
                f"expected {self.server_uuid})"
            )
        self._login()
        return call()

    def _check_address_pin(self) -> None:
        """A different immudb at an address this client knows is a swapped server, not a new ledger."""
        pin_id = f"immudb-address:{self.target.address}/{self.target.database}"
        pin = self.trust.load(pin_id)
        if pin is None:
            self._new_pin = TrustedState(pin_id, 0, "", 0, extra={"ledger_id": self.ledger_id})
            return
        if pin.extra.get("ledger_id") != self.ledger_id:
            raise RollbackError(
                f"the immudb at {self.target.address} is not the ledger this client trusts there: "
                f"it is {self.ledger_id}, expected {pin.extra.get('ledger_id')}",
                hint=f"if the server was replaced on purpose, remove {self.trust.path_for(pin_id)}",
            )

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.shutdown()

    def _current_state(self) -> ImmuState:
        from google.protobuf import empty_pb2

        stub = self._stub
        assert stub is not None  # set by _connect before any call
        raw = self._rpc(lambda: stub.CurrentState(empty_pb2.Empty()))
        return self._checked_state(ImmuState(str(raw.db), int(raw.txId), bytes(raw.txHash),
                                             bytes(raw.signature.signature)))

    def _checked_state(self, state: ImmuState) -> ImmuState:
        """The server's current state, refused when it is another database's or, with a server key, unsigned
        by it (immudb-py's login never checks this state)."""
        if state.db != self.target.database:
            raise ProofError(f"immudb answered with the state of database {state.db!r}")
        if self._key:
            verify_state_signature(state, self._key)
        return state

    def _check_not_behind(self, current: ImmuState) -> None:
        trusted = self._rs.current
        if current.tx < trusted.tx and self.replica_of:  # lagging, not rolled back: it may catch up
            raise LedgerUnavailableError(
                f"the immudb replica at {self.target.address} is at tx {current.tx}, behind tx {trusted.tx} "
                f"this client already verified of {self.replica_of}", hint="retry once the replica caught up")
        if current.tx < trusted.tx:
            raise RollbackError(
                f"immudb database {self.target.database} at {self.target.address} is at tx {current.tx}, "
                f"but this client already verified tx {trusted.tx}: the ledger was rolled back or replaced"
            )
        if current.tx == trusted.tx and current.alh != trusted.alh and trusted.tx > 0:
            raise RollbackError(f"immudb database {self.target.database} forked at tx {trusted.tx}")

    def _last(self, rpc: str) -> Any:
        assert self._stub is not None
        return self._stub.last[rpc]

    @staticmethod
    def _state_of(t: TrustedState) -> ImmuState:
        sig = t.extra.get("signature") or ""
        return ImmuState(str(t.extra.get("database", "")), t.tx, bytes.fromhex(t.root_hash), bytes.fromhex(sig))

    def _commit(self) -> None:
        s = self._rs.current
        t = self._trusted
        if t is not None and t.tx == s.tx and t.root_hash == s.alh.hex():
            return
        stored = self.trust.load(self.ledger_id)
        if stored is not None and stored.tx > s.tx:  # another process moved further; keep its state
            self._trusted = stored
            return
        new = TrustedState(
            ledger_id=self.ledger_id,
            tree_size=s.tx,
            root_hash=s.alh.hex(),
            tx=s.tx,
            ledger_key=self._key,
            extra={
                "backend": "immudb",
                "database": self.target.database,
                "server_uuid": self.server_uuid,
                "address": self.target.address,
                "signature": s.signature.hex(),
            },
        )
        self.trust.save(new)
        self._trusted = new

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """Map immudb/grpc failures to notary errors; commit trust on success, forget it on failure."""
        if self._client is None and what != "connect":
            raise NotaryError(f"immudb ledger {self.url} is closed")
        try:
            yield
        except BaseException as exc:
            if self._rs is not None:
                self._rs.reset(self._state_of(self._trusted) if self._trusted else empty_state(self.target.database))
            self._header_cache.clear()
            mapped = translate(exc, self.target, what)
            if mapped is None or mapped is exc:
                raise
            if isinstance(mapped, RollbackError) or not self._trusted:
                raise mapped from None
            raise self._explain(mapped) from None
        else:
            if self._trusted is not None or what == "connect":
                self._commit()

    def _explain(self, err: NotaryError) -> NotaryError:
        """A server error while proving against trust is often a rollback: say so when the head shows it."""
        if "illegal state" not in err.message and "illegal arguments" not in err.message:
            return err
        with contextlib.suppress(Exception):
            self._check_not_behind(self._current_state())
            return err
        return RollbackError(
            f"immudb database {self.target.database} at {self.target.address} is behind this client's "
            f"trusted tx {self._trusted.tx if self._trusted else 0}: the ledger was rolled back or replaced"
        )


def _detail(exc: BaseException) -> str:
    """immudb's own message in a failure: a ServerError's (either transport's), or a raw grpc.RpcError's."""
    if isinstance(exc, ServerError):
        return exc.detail
    details = getattr(exc, "details", None)
    return str(details() if callable(details) else "")


def _is_logged_out(exc: BaseException) -> bool:
    code = getattr(exc, "code", None)
    name = getattr(code() if callable(code) else None, "name", "")
    return name == "UNAUTHENTICATED" or _detail(exc) in ("not logged in", "invalid token", "session not found")
