"""Signing keys held outside notary's memory: a PKCS#11 token (`pkcs11:` URIs) or AWS KMS (`awskms://` URIs).

What records need from such a key is `notary.keys.Signer` (sign bytes, give the public key; the key id is
derived from that public key, never taken from the backend). `notary.keys.load_private_key` opens these URIs
through `open_signer`, so every place that takes `--key` takes each of them. Another service (a Vault transit
key, a cloud KMS) is one more module with `open_signer(uri)` and a scheme here (docs/keys.md says how).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, cast

from notary.keys import PublicKey

if TYPE_CHECKING:
    from notary.environment import Environment

# scheme -> module under notary.signing; imported only when a key names it (the hook path never pays for one)
SCHEMES = {"pkcs11:": "pkcs11", "awskms://": "awskms"}


class ServiceSigner(Protocol):
    """A `keys.Signer` that also says where its key lives, for `key show` and `key generate` to report."""

    def public_key(self) -> PublicKey: ...

    def sign_bytes(self, data: bytes) -> bytes: ...

    def attributes(self) -> dict[str, object]: ...


def is_service_key(text: str) -> bool:
    return any(text.startswith(scheme) for scheme in SCHEMES)


def open_signer(text: str, env: Environment | None = None) -> ServiceSigner:
    """The `keys.Signer` a `pkcs11:` or `awskms://` URI names, opened (logged in, public key read); env: the
    environment its PIN, module or region come from (None: the process's)."""
    import importlib

    for scheme, module in SCHEMES.items():
        if text.startswith(scheme):
            return cast(ServiceSigner, importlib.import_module(f"notary.signing.{module}").open_signer(text, env))
    raise ValueError("not a service key URI")  # callers ask is_service_key first
