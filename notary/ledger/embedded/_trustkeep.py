"""This client's trusted state of one embedded ledger: loaded, checked and saved under one lock, across the
threads of a process (its RLock) and across processes (a lock file beside the state)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from notary import fsio
from notary.errors import LedgerUnavailableError
from notary.ledger.base import TreeHead
from notary.ledger.embedded._verify import Verifier
from notary.ledger.trust import TrustedState, TrustStore

# a trusted-state lock held longer (by a stopped or hung process) is exit 4, not a gate that waits forever
TRUST_LOCK_SECONDS = 10.0


class TrustKeeper:
    def __init__(self, trust: TrustStore, verifier: Verifier, path: Path, lock: threading.RLock,
                 notices: list[str]) -> None:
        self.trust = trust
        self.verifier = verifier
        self.path = path
        self.ledger_id = verifier.ledger_id
        self._lock = lock
        self._notices = notices  # the ledger's own list: what is said here reaches the CLI with the rest

    def load(self) -> TrustedState | None:
        return self.trust.load(self.ledger_id)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialize load-verify-save of this ledger's trusted state across threads and processes."""
        with self._lock:
            fd = None
            try:
                self.trust.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(self.trust.path_for(self.ledger_id).with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
                fsio.lock_within(fd, TRUST_LOCK_SECONDS, "the trusted state", error=LedgerUnavailableError)
            except OSError:
                pass  # best effort: the forward-only TrustStore.save still refuses to move trust backwards
            try:
                yield
            finally:
                if fd is not None:
                    os.close(fd)

    def advance(self, trusted: TrustedState | None, head: TreeHead, *, first_use_notice: bool = True) -> TrustedState:
        """Persist the state every check of this operation proved (forward-only, by the TrustStore)."""
        state = self.verifier.next_state(trusted, head)
        if trusted is None and first_use_notice:
            self._notices.append(f"trusting new ledger {self.ledger_id} at {self.path} at size {head.tree_size} "
                                 "(first use)")
        if state != trusted:
            self.trust.save(state)
        return state
