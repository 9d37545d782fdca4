"""Typed errors. Each carries the exit code of the CLI contract, so callers never map strings to codes.

Exit codes (README.md, **Exit codes**): 0 ok, 1 refused, 2 usage or bad input, 3 integrity failure, 4 ledger unreachable / I/O.
The message is one line a user can act on; `hint` is an optional second sentence with the fix.
"""

from __future__ import annotations

# The exit codes: the contract for scripts and hooks (README, "Exit codes"). Error classes carry theirs.
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_INTEGRITY, EXIT_UNAVAILABLE = 0, 1, 2, 3, 4


class NotaryError(Exception):
    """Base of every error notary raises on purpose; anything else is a bug."""

    exit_code: int = 2
    kind: str = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message.replace("\n", " ").strip()
        if self.hint:
            text = f"{text} ({self.hint})"
        return text

    def __str__(self) -> str:
        return self.one_line()


class UsageError(NotaryError):
    """The command line or configuration is wrong: nothing was attempted."""

    exit_code = 2
    kind = "usage"


class InputError(NotaryError):
    """Something from outside (archive, manifest, registry response, request) is malformed or unsafe."""

    exit_code = 2
    kind = "bad-input"


class NotFoundError(InputError):
    """A named subject, blob, file or key does not exist."""

    kind = "not-found"


class AbsentError(NotaryError):
    """The ledger proves there is no such record (as of the time asked): an answer, not bad input, so exit 1;
    the absence proofs (docs/proofs.md, "Absence") ride along for --json."""

    exit_code = 1
    kind = "not-found"

    def __init__(self, message: str, *, hint: str | None = None, absence: list[dict[str, object]] | None = None,
                 head: dict[str, object] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.absence = list(absence or [])
        self.head = head


class RefusedError(NotaryError):
    """A well-formed, intact answer that says no: not notarized, revoked, untrusted signer, policy."""

    exit_code = 1
    kind = "refused"


class IntegrityError(NotaryError):
    """Evidence does not hold: a proof, signature or digest fails, or the ledger moved backwards."""

    exit_code = 3
    kind = "integrity"


class DigestMismatchError(IntegrityError):
    """Bytes do not match the digest that names them: never notarize them."""

    kind = "digest-mismatch"


class SignatureError(IntegrityError):
    """An envelope's signature does not verify under the key it claims."""

    kind = "signature"


class ProofError(IntegrityError):
    """An inclusion or consistency proof fails, or a tree head is not signed by the ledger's key."""

    kind = "proof"


class RollbackError(IntegrityError):
    """The ledger is older than, or forked from, the state this client already trusted."""

    kind = "rollback"


class TrustStoreError(IntegrityError):
    """The client's trusted state is unreadable or corrupt: fail closed, never silently re-trust."""

    kind = "trust-store"


class LedgerUnavailableError(NotaryError):
    """The ledger cannot be reached or read (server down, wrong password, timeout, I/O error)."""

    exit_code = 4
    kind = "unavailable"


class SourceUnavailableError(NotaryError):
    """A subject's source (registry, Docker Engine) cannot be reached or answers with a server error."""

    exit_code = 4
    kind = "source-unavailable"
