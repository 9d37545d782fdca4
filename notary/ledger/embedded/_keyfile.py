"""The embedded ledger's signing key, in `<ledger>.key` beside the file (0600): loaded only to write or to sign
a checkpoint, and refused unless it is the key the ledger's identity names."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from notary.errors import InputError, IntegrityError, LedgerUnavailableError
from notary.ledger.embedded import _codec as codec


class LedgerKey:
    def __init__(self, ledger_path: Path, public_raw: bytes, ledger_id: str) -> None:
        self.ledger_path = ledger_path
        self.path = Path(f"{ledger_path}.key")
        self.public_raw = public_raw
        self.ledger_id = ledger_id
        self._key: Ed25519PrivateKey | None = None

    def private(self) -> Ed25519PrivateKey:
        """The key, read once; LedgerUnavailableError (exit 4) when it is missing or unreadable."""
        if self._key is None:
            try:
                text = self.path.read_text(encoding="ascii")
            except FileNotFoundError:
                raise LedgerUnavailableError(
                    f"cannot write to ledger {self.ledger_path}: its signing key {self.path} is missing"
                ) from None
            except (OSError, UnicodeDecodeError) as exc:
                raise LedgerUnavailableError(f"cannot read ledger signing key {self.path}: {exc}") from exc
            key = Ed25519PrivateKey.from_private_bytes(codec.parse_private_pem(text, str(self.path)))
            if key.public_key().public_bytes_raw() != self.public_raw:
                raise IntegrityError(f"signing key {self.path} does not belong to ledger {self.ledger_id}")
            self._key = key
        return self._key

    def sign_checkpoint(self, text: str) -> bytes:
        """The ledger key's Ed25519 signature of a C2SP checkpoint body of this ledger (notary.audit.checkpoints).
        Only text whose origin line is this ledger's id is signed: it cannot be mistaken for a head message
        (those start with the notary-head magic), so the key never signs anything else through here."""
        if not text.startswith(self.ledger_id + "\n"):
            raise InputError(f"a checkpoint of ledger {self.ledger_id} starts with its origin line")
        return self.private().sign(text.encode())
