"""One connection to an immudb database through a transport, and the bookkeeping of what this client trusts about
it: the server's identity (its uuid, pinned per address so a swapped server is noticed), the trusted state (moved
by _proofs, persisted here), and the rule that trust is persisted only when a whole operation verified (`guard`).

ImmudbLedger (ledger.py) holds one and builds the Ledger protocol on it; the verified mirror (_mirrored) uses the
same one through the ledger. Nothing here knows which transport it speaks through.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from notary.errors import LedgerUnavailableError, NotaryError, ProofError, RollbackError
from notary.ledger.immudb._conn import ImmudbTarget, ServerError
from notary.ledger.immudb._proofs import ImmuState, StateKeeper, empty_state, verify_state_signature
from notary.ledger.immudb._replay import TxRow
from notary.ledger.immudb._transport import Transport
from notary.ledger.trust import TrustedState, TrustStore


class Session:
    """Identity, trust state and transport of one immudb database."""

    def __init__(self, target: ImmudbTarget, trust: TrustStore, transport: Transport,
                 replica_of: str | None = None) -> None:
        self.target = target
        self.url = target.url
        self.trust = trust
        self.transport = transport
        self.notices: list[str] = []
        self.server_uuid = ""
        self.ledger_id = ""
        self.key: str | None = None  # the server's state-signing key (PEM), configured or pinned
        self.trusted: TrustedState | None = None
        self.keeper = StateKeeper(empty_state(target.database), None)
        self.headers: dict[int, TxRow] = {}  # headers proven in this session (dropped when an operation fails)
        # a replica read in place of its primary (docs/immudb.md, "Replicas"): the primary's ledger id
        self.replica_of = replica_of
        self.closed = False
        self._new_pin: TrustedState | None = None

    @property
    def server_version(self) -> str:
        return self.transport.server_version

    def start(self, password: str, configured_key: str | None) -> None:
        """Connect, log in, check the server against trust (TOFU on first contact); on any failure, close."""
        try:
            with self.guard("connect"):
                self._connect(password, configured_key)
        except BaseException:
            self.close()
            raise

    def _connect(self, password: str, configured_key: str | None) -> None:
        uuid = self.transport.connect()
        self.server_uuid = uuid
        # a replica has its own server uuid but is the primary's ledger: the same transactions, the same
        # Alh chain, checked against the same trusted state (which it must extend, like the primary would)
        self.ledger_id = self.replica_of or f"immudb:{uuid}/{self.target.database}"
        self._check_address_pin()
        self.trusted = self.trust.load(self.ledger_id)
        if self.replica_of and self.trusted is None:
            raise LedgerUnavailableError(f"no trusted state of {self.replica_of} to check its replica at "
                                         f"{self.target.address} against",
                                         hint="a replica is trusted only after its primary was: read from the "
                                              "primary once")
        pinned = self.trusted.ledger_key if self.trusted else None
        if configured_key and pinned and configured_key.strip() != pinned.strip():
            raise RollbackError(
                f"NOTARY_IMMUDB_SERVER_KEY differs from the server key pinned for {self.ledger_id}",
                hint=f"if the server key was rotated on purpose, remove {self.trust.path_for(self.ledger_id)}",
            )
        self.key = configured_key or pinned
        self.keeper.key = self.key
        self.keeper.reset(self._trusted_state())
        self.transport.login(password)
        current = self.current_state()
        if self.trusted is None:
            self.keeper.reset(current)
            self.commit()
            self.notices.append(
                f"trusting immudb ledger {self.ledger_id} at {self.target.address} on first use "
                f"(tx {current.tx}, hash {current.alh.hex()[:16]}...)"
                + ("" if self.key else "; no server signing key configured (NOTARY_IMMUDB_SERVER_KEY)")
            )
        else:
            self.check_not_behind(current)
        if self._new_pin is not None:  # only once this server checked out: a failed first contact pins nothing
            self.trust.save(self._new_pin)
            self._new_pin = None

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
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                self.transport.close()

    # ------------------------------------------------------------ the server's state against trust

    def current_state(self) -> ImmuState:
        """The server's current state, refused when it is another database's or, with a server key, not signed
        by it."""
        state = self.transport.current_state()
        if state.db != self.target.database:
            raise ProofError(f"immudb answered with the state of database {state.db!r}")
        if self.key:
            verify_state_signature(state, self.key)
        return state

    def check_not_behind(self, current: ImmuState) -> None:
        trusted = self.keeper.current
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

    def _trusted_state(self) -> ImmuState:
        t = self.trusted
        if t is None:
            return empty_state(self.target.database)
        sig = t.extra.get("signature") or ""
        return ImmuState(str(t.extra.get("database", "")), t.tx, bytes.fromhex(t.root_hash),
                         bytes.fromhex(str(sig)))

    def commit(self) -> None:
        """Persist the state the keeper reached (unless another process already moved further)."""
        s = self.keeper.current
        t = self.trusted
        if t is not None and t.tx == s.tx and t.root_hash == s.alh.hex():
            return
        stored = self.trust.load(self.ledger_id)
        if stored is not None and stored.tx > s.tx:  # another process moved further; keep its state
            self.trusted = stored
            return
        new = TrustedState(
            ledger_id=self.ledger_id,
            tree_size=s.tx,
            root_hash=s.alh.hex(),
            tx=s.tx,
            ledger_key=self.key,
            extra={
                "backend": "immudb",
                "database": self.target.database,
                "server_uuid": self.server_uuid,
                "address": self.target.address,
                "signature": s.signature.hex(),
            },
        )
        self.trust.save(new)
        self.trusted = new

    @contextlib.contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """One operation: trust committed when it succeeds, forgotten (back to the persisted state) when not."""
        if self.closed:
            raise NotaryError(f"immudb ledger {self.url} is closed")
        try:
            yield
        except BaseException as exc:
            self.keeper.reset(self._trusted_state())
            self.headers.clear()
            if isinstance(exc, ServerError) and self.trusted:
                raise self._explain(exc) from None
            raise
        else:
            if self.trusted is not None or what == "connect":
                self.commit()

    def _explain(self, err: ServerError) -> NotaryError:
        """A server error while proving against trust is often a rollback: say so when the head shows it."""
        if "illegal state" not in err.message and "illegal arguments" not in err.message:
            return err
        with contextlib.suppress(Exception):
            self.check_not_behind(self.current_state())
            return err
        return RollbackError(
            f"immudb database {self.target.database} at {self.target.address} is behind this client's "
            f"trusted tx {self.trusted.tx if self.trusted else 0}: the ledger was rolled back or replaced"
        )

    def writable(self) -> None:
        if self.replica_of:
            raise LedgerUnavailableError(f"cannot write to {self.replica_of}: its primary is unreachable and "
                                         f"{self.target.address} is a read-only replica",
                                         hint="writes resume once the primary is back")
