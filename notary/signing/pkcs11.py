"""Signing with a key inside a PKCS#11 token (an HSM, a smart card, SoftHSM2), through python-pkcs11.

The private key never leaves the token: notary sends it the bytes to sign (Ed25519: the whole DSSE PAE,
CKM_EDDSA; ECDSA P-256: their SHA-256, CKM_ECDSA) and reads only the public key object. Keys notary creates
are CKA_SENSITIVE, not CKA_EXTRACTABLE and sign-only, so the token itself refuses to hand them out.

ECDSA: a token returns the raw r||s of CKM_ECDSA; records carry what `cryptography` produces for a key file
(DER, RFC 3279 Ecdsa-Sig-Value), so the signature is re-encoded here and every existing verifier accepts a
token-signed record unchanged. `keys.sign` then checks it under the public key before it reaches the ledger.

Everything is opened eagerly (module, token, login, key) when the key is loaded, before any ledger is
touched: a wrong PIN or a missing module is one line and nothing written, never half a notarization.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, cast

from notary import keys
from notary.environment import Environment, given
from notary.errors import NotaryError, NotFoundError, UsageError
from notary.fsio import read_regular
from notary.signing.pkcs11_uri import Pkcs11Uri, parse

if TYPE_CHECKING:
    import pkcs11
    from pkcs11._pkcs11 import lib as Library

PIN_ENV, PIN_FILE_ENV, MODULE_ENV = "NOTARY_PKCS11_PIN", "NOTARY_PKCS11_PIN_FILE", "NOTARY_PKCS11_MODULE"
MAX_PIN = 1024
_ED25519_PARAMS = (bytes.fromhex("06032b6570"), b"\x13\x0cedwards25519")  # OID 1.3.101.112, or its curve name
_P256_PARAMS = bytes.fromhex("06082a8648ce3d030107")  # OID 1.2.840.10045.3.1.7 (prime256v1)


class TokenUnavailableError(NotaryError):
    """The token or its module fails at run time (device removed, device error, out of sessions): exit 4, like
    an unreachable ledger: the input was right, the service was not there. (Defined here, not in
    notary.errors, so that module stays free of optional backends.)"""

    exit_code = 4
    kind = "unavailable"


def _lib() -> ModuleType:
    """python-pkcs11, imported when a token key is first used (an optional dependency)."""
    try:
        import pkcs11
    except ImportError as exc:
        raise UsageError("PKCS#11 keys need python-pkcs11",
                         hint="pip install 'notary-ledger[pkcs11]'") from exc
    return pkcs11


@contextmanager
def _token_errors(uri: Pkcs11Uri, pin_from: str = "") -> Iterator[None]:
    """python-pkcs11's exceptions as notary's one-line errors. The PIN never reaches a message: only where it
    came from (the variable or file name) does."""
    p11 = _lib()
    try:
        yield
    except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange) as exc:
        raise UsageError(f"wrong PIN for {uri.describe}", hint=f"check {pin_from or 'the PIN'}") from exc
    except p11.PinLocked as exc:
        raise UsageError(f"the user PIN of {uri.describe} is locked", hint="the token's SO must unlock it") from exc
    except (p11.PinExpired, p11.UserPinNotInitialized) as exc:
        raise UsageError(f"the user PIN of {uri.describe} is expired or not set",
                         hint="set it with the token's own tools") from exc
    except (p11.MechanismInvalid, p11.FunctionNotSupported, p11.KeyTypeInconsistent) as exc:
        raise UsageError(f"the token cannot sign with {uri.describe} ({type(exc).__name__})") from exc
    except p11.PKCS11Error as exc:
        raise TokenUnavailableError(f"PKCS#11 token error with {uri.describe}: {type(exc).__name__}") from exc


def read_pin(uri: Pkcs11Uri, env: Environment | None = None) -> tuple[str, str]:
    """(PIN, where it came from). pin-source in the URI first (it belongs to that key), then
    NOTARY_PKCS11_PIN_FILE, then NOTARY_PKCS11_PIN; both variables at once is ambiguous, so refused."""
    if uri.pin_source is not None:
        return _pin_file(_pin_source_path(uri.pin_source)), "the URI's pin-source file"
    settings = given(env)
    file_env, value_env = settings.pkcs11_pin_file, settings.pkcs11_pin
    if file_env and value_env:
        raise UsageError(f"both {PIN_ENV} and {PIN_FILE_ENV} are set", hint="set one of them")
    if file_env:
        return _pin_file(file_env), PIN_FILE_ENV
    if value_env:
        return value_env, PIN_ENV
    raise UsageError(f"no PIN for {uri.describe}",
                     hint=f"set {PIN_ENV} or {PIN_FILE_ENV}, or add pin-source=file:PATH to the URI")


def _pin_source_path(source: str) -> str:
    """pin-source as a file: `file:/abs`, `file:///abs`, `file://localhost/abs` or `/abs` (RFC 7512 leaves its
    form to the application; a relative path would depend on where the job runs, a command is not a file)."""
    path = source
    if source.startswith("file://"):
        host, _, rest = source[len("file://"):].partition("/")
        path = "/" + rest if host in ("", "localhost") else ""
    elif source.startswith("file:"):
        path = source[len("file:"):]
    if not path.startswith("/"):
        raise UsageError("PKCS#11 URI pin-source must name an absolute file", hint="pin-source=file:/run/secrets/pin")
    return path


def _pin_file(path: str) -> str:
    data = read_regular(path, MAX_PIN, "PIN file", error=UsageError)
    try:
        pin = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"PIN file {path} is not UTF-8") from exc
    pin = pin[:-1] if pin.endswith("\n") else pin  # what `echo PIN > file` leaves, and nothing more
    pin = pin[:-1] if pin.endswith("\r") else pin
    if not pin:
        raise UsageError(f"PIN file {path} is empty")
    return pin


def _module(uri: Pkcs11Uri, env: Environment) -> Library:
    """The loaded, initialised module: module-path from the URI, else NOTARY_PKCS11_MODULE."""
    p11 = _lib()
    path = uri.module_path or env.pkcs11_module
    if not path:
        raise UsageError("no PKCS#11 module", hint=f"add ?module-path=/path/to/module.so to the URI or set {MODULE_ENV}")
    if not path.startswith("/"):
        raise UsageError(f"{MODULE_ENV} must be an absolute path")
    if not os.path.isfile(path):
        raise UsageError(f"PKCS#11 module {path} does not exist", hint="install it or fix module-path")
    try:
        library: Library = p11.lib(path)
        return library
    except p11.PKCS11Error as exc:
        raise UsageError(f"PKCS#11 module {path} cannot be loaded: {str(exc).splitlines()[0][:200]}") from exc


def _find_token(lib: Library, uri: Pkcs11Uri) -> pkcs11.Token:
    p11 = _lib()
    wanted = uri.token
    major, minor = lib.library_version
    library = {"library-manufacturer": lib.manufacturer_id.strip(), "library-description": lib.library_description.strip(),
               "library-version": f"{major}.{minor}"}
    if "library-version" in wanted and "." not in wanted["library-version"]:
        wanted = {**wanted, "library-version": wanted["library-version"] + ".0"}  # RFC 7512: MAJOR means MAJOR.0
    if any(library[k] != v for k, v in wanted.items() if k in library):
        raise NotFoundError(f"the PKCS#11 module does not match the URI's library attributes for {uri.describe}")
    found: list[pkcs11.Token] = []
    for slot in lib.get_slots(token_present=True):
        token = slot.get_token()
        if not token.flags & p11.TokenFlag.TOKEN_INITIALIZED:
            continue
        have = {"token": token.label, "manufacturer": token.manufacturer_id.strip(), "model": token.model.strip(),
                "serial": token.serial.decode("ascii", "replace").strip(), "slot-id": str(slot.slot_id),
                "slot-description": slot.slot_description.strip(), "slot-manufacturer": slot.manufacturer_id.strip()}
        if all(have[k] == v for k, v in wanted.items() if k in have):
            found.append(token)
    if len(found) != 1:
        what = "no initialised token matches" if not found else f"{len(found)} tokens match"
        raise NotFoundError(f"{what} the URI for {uri.describe}",
                            hint="name it with token=LABEL (softhsm2-util --show-slots, p11tool --list-tokens)")
    return found[0]


def _public_from_token(kind: str, point: bytes) -> keys.PublicKey:
    """CKA_EC_POINT as DER OCTET STRING (the spec) or raw (some tokens) to a `cryptography` public key."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    size = 32 if kind == "ed25519" else 65
    if len(point) == size + 2 and point[0] == 0x04 and point[1] == size:
        point = point[2:]
    try:
        if len(point) != size:
            raise ValueError(f"{len(point)} bytes")
        if kind == "ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(point)
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError as exc:
        raise UsageError(f"the token's public key is not a valid {kind} point ({exc})") from exc


def _curve(params: bytes) -> str:
    if params in _ED25519_PARAMS:
        return "ed25519"
    if params == _P256_PARAMS:
        return "ecdsa-p256"
    raise UsageError("the token key is neither Ed25519 nor ECDSA P-256")


class TokenSigner:
    """A private key inside a PKCS#11 token: a `keys.Signer`. One logged-in session for the process, kept
    open so each record costs one C_Sign, not a login (the lock: a session is not for two threads at once)."""

    def __init__(self, uri: Pkcs11Uri, session: pkcs11.Session, private: pkcs11.SignMixin, public: keys.PublicKey,
                 kind: str) -> None:
        self.uri, self.kind = uri, kind
        self._session, self._private, self._public = session, private, public
        self._lock = threading.Lock()

    def public_key(self) -> keys.PublicKey:
        return self._public

    def sign_bytes(self, data: bytes) -> bytes:
        p11 = _lib()
        with self._lock, _token_errors(self.uri):
            if self.kind == "ed25519":
                return bytes(self._private.sign(data, mechanism=p11.Mechanism.EDDSA))
            raw = bytes(self._private.sign(hashlib.sha256(data).digest(), mechanism=p11.Mechanism.ECDSA))
        if len(raw) != 64:
            raise TokenUnavailableError(f"the token returned a {len(raw)}-byte ECDSA P-256 signature, not r||s")
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))

    def attributes(self) -> dict[str, object]:
        """What `key show` reports about the private key object, so an auditor sees it cannot be extracted."""
        p11 = _lib()
        a = p11.Attribute
        with _token_errors(self.uri):
            got = self._private.get_attributes([a.LABEL, a.ID, a.SENSITIVE, a.EXTRACTABLE, a.NEVER_EXTRACTABLE])
        return {"token": self.uri.token.get("token"), "object": got[a.LABEL], "id": bytes(got[a.ID]).hex(),
                "sensitive": bool(got[a.SENSITIVE]), "extractable": bool(got[a.EXTRACTABLE]),
                "never_extractable": bool(got[a.NEVER_EXTRACTABLE])}

    def close(self) -> None:
        with self._lock:
            self._session.close()


def _search(session: pkcs11.Session, uri: Pkcs11Uri, object_class: pkcs11.ObjectClass,
            id_: bytes | None = None) -> list[pkcs11.Object]:
    p11 = _lib()
    attrs: dict[pkcs11.Attribute, object] = {p11.Attribute.CLASS: object_class}
    if uri.object is not None:
        attrs[p11.Attribute.LABEL] = uri.object
    if (id_ or uri.id) is not None:
        attrs[p11.Attribute.ID] = id_ or uri.id
    found = []
    for obj in session.get_objects(attrs):
        found.append(obj)
        if len(found) > 8:
            break
    return found


def _open(text: str, env: Environment, *, rw: bool = False) -> tuple[Pkcs11Uri, pkcs11.Token, pkcs11.Session]:
    """(uri, token, logged-in session): everything before any key is looked at."""
    uri = parse(text)
    if uri.object is None and uri.id is None:
        raise UsageError("the PKCS#11 URI names no key", hint="add object=LABEL (or id=...) to the URI")
    pin, pin_from = read_pin(uri, env)
    lib = _module(uri, env)
    p11 = _lib()
    with _token_errors(uri, pin_from):
        token = _find_token(lib, uri)
        try:
            return uri, token, token.open(rw=rw, user_pin=pin)
        except p11.UserAlreadyLoggedIn:  # login is per process and token: a second key's session shares it
            return uri, token, token.open(rw=rw)


def open_signer(text: str, env: Environment | None = None) -> TokenSigner:
    """The token key text names, logged in and checked: exactly one private key, Ed25519 or P-256, with its
    public key object (same CKA_ID, else same label). env: where NOTARY_PKCS11_* come from (None: the process)."""
    uri, _, session = _open(text, given(env))
    p11 = _lib()
    a = p11.Attribute
    if uri.type not in (None, "private"):
        raise UsageError(f"type={uri.type} cannot sign", hint="name the private key: type=private or no type")
    with _token_errors(uri):
        privates = _search(session, uri, p11.ObjectClass.PRIVATE_KEY)
        if len(privates) != 1:
            what = "no private key" if not privates else "more than one private key"
            raise NotFoundError(f"{what} matches {uri.describe}", hint="check object= and id= in the URI")
        private = privates[0]
        if private[a.KEY_TYPE] not in (p11.KeyType.EC, p11.KeyType.EC_EDWARDS):
            raise UsageError(f"{uri.describe} is neither an Ed25519 nor an ECDSA P-256 key")
        kind = _curve(bytes(private[a.EC_PARAMS]))
        key_id = bytes(private[a.ID])
        publics = _search(session, uri, p11.ObjectClass.PUBLIC_KEY, key_id or None)
        if len(publics) != 1:
            raise NotFoundError(f"{uri.describe} has {'no' if not publics else 'more than one'} public key object",
                                hint="notary reads the public key from the token's public key object")
        public = _public_from_token(kind, bytes(publics[0][a.EC_POINT]))
    # python-pkcs11 builds a private key object (CKO_PRIVATE_KEY, searched above) as a key that signs
    return TokenSigner(uri, session, cast("pkcs11.SignMixin", private), public, kind)


def generate(text: str, kind: str | None = None, env: Environment | None = None) -> TokenSigner:
    """Create a key pair inside the token and return it opened. kind None: Ed25519 where the token offers
    CKM_EC_EDWARDS_KEY_PAIR_GEN and CKM_EDDSA, else ECDSA P-256. An object with that label or id is never
    replaced: destroying a key in a token is for the token's own tools, on purpose."""
    env = given(env)
    uri, token, session = _open(text, env, rw=True)
    p11 = _lib()
    a, m = p11.Attribute, p11.Mechanism
    with _token_errors(uri):
        offered = token.slot.get_mechanisms()
        can = {"ed25519": {m.EC_EDWARDS_KEY_PAIR_GEN, m.EDDSA} <= offered,
               "ecdsa-p256": {m.EC_KEY_PAIR_GEN, m.ECDSA} <= offered}
        chosen = kind or ("ed25519" if can["ed25519"] else "ecdsa-p256")
        if chosen not in can:
            raise UsageError(f"unknown key type {chosen!r}", hint="use ed25519 or ecdsa-p256")
        if not can[chosen]:
            raise UsageError(f"the token does not offer {chosen} key generation",
                             hint="use --type ecdsa-p256" if chosen == "ed25519" else None)
        for cls in (p11.ObjectClass.PRIVATE_KEY, p11.ObjectClass.PUBLIC_KEY):
            if _search(session, uri, cls):
                raise UsageError(f"the token already holds a key for {uri.describe}",
                                 hint="choose another object= label: notary never replaces a token key")
        id_ = uri.id if uri.id is not None else os.urandom(16)
        label = uri.object if uri.object is not None else id_.hex()
        params = _ED25519_PARAMS[0] if chosen == "ed25519" else _P256_PARAMS
        common = {a.TOKEN: True, a.LABEL: label, a.ID: id_}
        session.generate_keypair(
            p11.KeyType.EC_EDWARDS if chosen == "ed25519" else p11.KeyType.EC,
            mechanism=m.EC_EDWARDS_KEY_PAIR_GEN if chosen == "ed25519" else m.EC_KEY_PAIR_GEN,
            store=True,
            public_template={**common, a.EC_PARAMS: params, a.VERIFY: True, a.PRIVATE: False,
                             a.ENCRYPT: False, a.WRAP: False, a.DERIVE: False},
            private_template={**common, a.PRIVATE: True, a.SENSITIVE: True, a.EXTRACTABLE: False, a.SIGN: True,
                              a.DECRYPT: False, a.UNWRAP: False, a.DERIVE: False},
        )
        session.close()  # the key is opened again the way every later command opens it
    return open_signer(text, env)
