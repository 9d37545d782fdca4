"""Signing keys in AWS KMS (or a server that speaks its API): `awskms://[HOST[:PORT]]/KEY`.

KEY is a key id, `alias/NAME`, or a key or alias ARN, as cosign and the AWS CLI write them; HOST, when given,
is the endpoint (`https://HOST`); otherwise botocore's own choice (AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL,
the region's public endpoint). Credentials and region come from botocore's chain, exactly as the AWS CLI finds
them (environment, shared config, OIDC web identity in CI, SSO, instance and container roles); notary never
sees them as arguments and never logs them.

The private key never leaves the service: notary sends the SHA-256 of the bytes to sign (MessageType DIGEST,
so there is no size limit) and checks every signature the service returns against the public key it read
once, when the key was opened (keys.sign does). Each Sign names the key by the ARN that read returned, so an
alias moved mid-run cannot make one run sign with two keys.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol

from notary import keys
from notary.environment import Environment, given
from notary.errors import NotaryError, UsageError

SCHEME = "awskms://"
KEY_SPEC, ALGORITHM = "ECC_NIST_P256", "ECDSA_SHA_256"
MAX_URI = 2048
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})(?::[0-9]{1,5})?")
_KEY_ID = re.compile(r"(?:mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
_ALIAS = re.compile(r"alias/[A-Za-z0-9/_-]{1,250}")
_ARN = re.compile(r"arn:aws[a-z-]{0,20}:kms:(?P<region>[a-z]{2}(?:-[a-z]+)+-[0-9]):[0-9]{12}:"
                  r"(?:key/" + _KEY_ID.pattern + "|" + _ALIAS.pattern + ")")
# what a caller can fix (exit 2) as opposed to a service that failed (exit 4)
_CALLER_CODES = {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
                 "ExpiredTokenException", "IncompleteSignature", "NotFoundException", "DisabledException",
                 "KMSInvalidStateException", "InvalidKeyUsageException", "ValidationException",
                 "InvalidArnException", "AlreadyExistsException", "InvalidAliasNameException"}


class KmsUnavailableError(NotaryError):
    """The KMS fails at run time (unreachable, throttled past the retries, an internal error): exit 4, like an
    unreachable ledger: the request was right, the service was not there."""

    exit_code = 4
    kind = "unavailable"


@dataclass(frozen=True)
class KmsUri:
    host: str  # "" for botocore's endpoint
    key: str

    @property
    def describe(self) -> str:
        return f"{SCHEME}{self.host}/{self.key}"

    @property
    def region(self) -> str | None:
        match = _ARN.fullmatch(self.key)
        return match.group("region") if match else None

    @property
    def is_alias(self) -> bool:
        return bool(_ALIAS.fullmatch(self.key) or (_ARN.fullmatch(self.key) and ":alias/" in self.key))


def parse(text: str) -> KmsUri:
    """The URI checked whole before any request: a typo is one line, never a call to some other endpoint."""
    if len(text) > MAX_URI or not text.startswith(SCHEME):
        raise UsageError(f"not an {SCHEME} URI (or longer than {MAX_URI} characters)",
                         hint=f"e.g. {SCHEME}/alias/notary-ci")
    host, slash, key = text[len(SCHEME):].partition("/")
    if not slash or not key:
        raise UsageError(f"{SCHEME} URI names no key", hint=f"{SCHEME}/alias/NAME, {SCHEME}/KEY-ID or an ARN")
    if host == "alias" or host.startswith("arn:"):
        raise UsageError(f"{SCHEME} URI reads {host[:40]!r} as the endpoint host",
                         hint=f"with no endpoint, three slashes: {SCHEME}/{host[:40]}/...")
    if host and not _HOST.fullmatch(host):
        raise UsageError(f"{SCHEME} URI has a bad endpoint host {host[:80]!r}", hint="HOST or HOST:PORT, or none")
    if not (_KEY_ID.fullmatch(key) or _ALIAS.fullmatch(key) or _ARN.fullmatch(key)):
        raise UsageError(f"{SCHEME} URI has a bad key {key[:80]!r}",
                         hint="a key id, alias/NAME, or arn:aws:kms:REGION:ACCOUNT:key/ID (or :alias/NAME)")
    if key.startswith("alias/aws/"):
        raise UsageError(f"{key} is an AWS managed key", hint="AWS managed keys cannot sign; create a key of your own")
    return KmsUri(host, key)


class _KmsClient(Protocol):
    """The KMS operations notary calls on botocore's client. botocore builds them at run time from the
    service's model and ships no types: answers are the service's JSON documents, read as Mapping[str, object]
    and narrowed where used."""

    def get_public_key(self, *, KeyId: str) -> Mapping[str, object]: ...
    def sign(self, *, KeyId: str, Message: bytes, MessageType: str,
             SigningAlgorithm: str) -> Mapping[str, object]: ...
    def describe_key(self, *, KeyId: str) -> Mapping[str, object]: ...
    def create_key(self, *, KeySpec: str, KeyUsage: str, Description: str) -> Mapping[str, object]: ...
    def create_alias(self, *, AliasName: str, TargetKeyId: str) -> Mapping[str, object]: ...
    def close(self) -> None: ...


def _botocore() -> ModuleType:
    """botocore, imported on first use. It has no type information, so what is reached through it (its
    config, session and exception classes) is untyped; the client it makes is typed as _KmsClient."""
    try:
        import botocore.config
        import botocore.exceptions
        import botocore.session
    except ImportError as exc:
        raise UsageError("AWS KMS keys need botocore", hint="pip install 'notary-ledger[awskms]'") from exc
    module: ModuleType = botocore
    return module


def _client(uri: KmsUri, env: Environment) -> _KmsClient:
    bc = _botocore()
    region = uri.region or env.aws_region  # else botocore's: AWS_DEFAULT_REGION, config
    config = bc.config.Config(connect_timeout=5, read_timeout=15, retries={"mode": "standard"},
                              user_agent_extra="notary")
    with kms_errors(uri):
        client: _KmsClient = bc.session.get_session().create_client(
            "kms", region_name=region, endpoint_url=f"https://{uri.host}" if uri.host else None, config=config)
    return client


@contextmanager
def kms_errors(uri: KmsUri) -> Iterator[None]:
    """botocore's exceptions as notary's one-line errors: the error code and the service's first line, never
    a credential (botocore does not put them in messages; the first line is also cut to 200 characters)."""
    bc = _botocore()
    exc_mod = bc.exceptions
    try:
        yield
    except exc_mod.ClientError as exc:
        error = exc.response.get("Error", {}) if isinstance(exc.response, dict) else {}
        code, message = str(error.get("Code", "?"))[:80], str(error.get("Message", "")).splitlines()
        text = f"AWS KMS refused {uri.describe}: {code}" + (f": {message[0][:200]}" if message else "")
        if code in _CALLER_CODES:
            raise UsageError(text) from exc
        raise KmsUnavailableError(text) from exc
    except (exc_mod.NoCredentialsError, exc_mod.PartialCredentialsError) as exc:
        raise UsageError(f"no AWS credentials for {uri.describe}",
                         hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or a CI OIDC role "
                              "(AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE)") from exc
    except exc_mod.NoRegionError as exc:
        raise UsageError(f"no AWS region for {uri.describe}", hint="set AWS_REGION, or give the key's ARN") from exc
    except exc_mod.BotoCoreError as exc:
        first = (str(exc).splitlines() or [""])[0][:200]
        raise KmsUnavailableError(f"AWS KMS unavailable for {uri.describe}: {type(exc).__name__}: {first}") from exc


def _public_key(uri: KmsUri, answer: Mapping[str, object]) -> keys.PublicKey:
    """The key the service says it holds, held to what notary signs with: a P-256 signing key."""
    spec, usage, algorithms = answer.get("KeySpec"), answer.get("KeyUsage"), answer.get("SigningAlgorithms")
    if (spec != KEY_SPEC or usage != "SIGN_VERIFY" or not isinstance(algorithms, list)
            or ALGORITHM not in algorithms):
        raise UsageError(f"{uri.describe} is a {spec} {usage} key; notary signs with {KEY_SPEC} SIGN_VERIFY "
                         f"({ALGORITHM})", hint="create one: notary key generate --kms awskms:///alias/NAME")
    der = answer.get("PublicKey")
    if not isinstance(der, bytes) or len(der) > 1024:
        raise KmsUnavailableError(f"AWS KMS returned no usable public key for {uri.describe}")
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        public = load_der_public_key(der)
    except ValueError as exc:
        raise KmsUnavailableError(f"AWS KMS returned a public key that does not parse for {uri.describe}") from exc
    keys.check_supported(public, f"the public key of {uri.describe}")
    return public  # type: ignore[return-value]  # check_supported narrowed it to P-256


class KmsSigner:
    """A private key in AWS KMS: a `keys.Signer`. One client per process (botocore's are thread-safe), one
    Sign request per signature."""

    kind = "ecdsa-p256"

    def __init__(self, uri: KmsUri, client: _KmsClient, arn: str, public: keys.PublicKey,
                 details: dict[str, object]) -> None:
        self.uri, self.arn, self._client, self._public, self._details = uri, arn, client, public, details
        self._lock = threading.Lock()  # only for close; Sign calls run concurrently

    def public_key(self) -> keys.PublicKey:
        return self._public

    def sign_bytes(self, data: bytes) -> bytes:
        with kms_errors(self.uri):
            answer = self._client.sign(KeyId=self.arn, Message=hashlib.sha256(data).digest(), MessageType="DIGEST",
                                       SigningAlgorithm=ALGORITHM)
        signature = answer.get("Signature")
        if not isinstance(signature, bytes) or not 8 <= len(signature) <= 72:
            raise KmsUnavailableError(f"AWS KMS returned no ECDSA P-256 signature for {self.uri.describe}")
        return signature  # keys.sign verifies it against the public key before anything uses it

    def attributes(self) -> dict[str, object]:
        """What `key show` reports: where the key lives and that it is the service's, not a file's."""
        return dict(self._details)

    def close(self) -> None:
        with self._lock:
            self._client.close()


def open_signer(text: str, env: Environment | None = None) -> KmsSigner:
    """env: where AWS_REGION comes from (None: the process; botocore reads its credentials itself)."""
    uri = parse(text)
    client = _client(uri, given(env))
    with kms_errors(uri):
        answer = client.get_public_key(KeyId=uri.key)
    public = _public_key(uri, answer)
    arn = answer.get("KeyId")
    if not isinstance(arn, str) or not _ARN.fullmatch(arn):
        raise KmsUnavailableError(f"AWS KMS answered for {uri.describe} without the key's ARN")
    details: dict[str, object] = {"uri": uri.describe, "arn": arn, "key_spec": KEY_SPEC, "signing_algorithm": ALGORITHM,
               "origin": "aws-kms"}
    return KmsSigner(uri, client, arn, public, details)


def generate(text: str, description: str = "notary signing key", env: Environment | None = None) -> KmsSigner:
    """A new P-256 signing key in the KMS under the alias the URI names (an alias only: a key id is the
    service's to choose). An alias that exists is refused before any key is created."""
    uri = parse(text)
    if not uri.is_alias:
        raise UsageError("key generate --kms needs an alias URI", hint=f"e.g. {SCHEME}/alias/notary-ci")
    alias = uri.key if uri.key.startswith("alias/") else "alias/" + uri.key.split(":alias/", 1)[1]
    env = given(env)
    client = _client(uri, env)
    bc = _botocore()
    with kms_errors(uri):
        try:
            client.describe_key(KeyId=uri.key)
        except bc.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NotFoundException":
                raise
        else:
            raise UsageError(f"{alias} already names a key in AWS KMS", hint="pick another alias, or use it as --key")
        created = client.create_key(KeySpec=KEY_SPEC, KeyUsage="SIGN_VERIFY", Description=description)
        metadata = created.get("KeyMetadata")
        key_id = metadata.get("KeyId") if isinstance(metadata, Mapping) else None
        if not isinstance(key_id, str):
            raise KmsUnavailableError(f"AWS KMS created a key for {alias} but answered without its id")
        client.create_alias(AliasName=alias, TargetKeyId=key_id)
    return open_signer(text, env)
