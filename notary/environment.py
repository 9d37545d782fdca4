"""The process environment, read once at an edge into one typed object that the library is handed.

The edges are the `notary` CLI and the entry points installed hooks name by path (notary.gate.hook_main,
notary.gate.oci_hook, notary.gate.containerd, notary.gate.install's add_hook_main): each reads the
environment once, with `Environment.of_process()`, and passes the result down. No other module reads
os.environ (tests/test_environment_is_read_at_the_edges.py holds every module to that). A library function
called without one (a program using notary as a library, as the package docstring shows) takes the process
environment at that call, through the same `of_process`: the meaning of every variable stays in this module.

Values are kept as given, not checked: a setting is refused where it is used (a malformed
NOTARY_IMMUDB_TIMEOUT matters only when an immudb ledger is opened), so reading the environment never fails.
An empty variable counts as unset, as every reader always did. Secrets (the signing key's PEM text, the key
passphrase, the PKCS#11 PIN, and the whole snapshot with registry and immudb passwords) stay out of repr; a
secret a file holds is carried as that file's name and read only when it is needed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

_EMPTY: Mapping[str, str] = MappingProxyType({})
SECRET_FIELDS = ("variables", "signing_key", "key_passphrase", "pkcs11_pin")


class Environment(NamedTuple):
    """Every environment setting notary reads, by name. `variables` is the whole snapshot, for what reads a
    family of variables by its own rules (CI detection, registry logins, NOTARY_IMMUDB_* in
    notary.ledger.settings) and for child processes that inherit it (credential helpers).

    A NamedTuple rather than a dataclass: the runtime hook reads the environment on every container start,
    and the dataclasses module is not on that path."""

    variables: Mapping[str, str] = _EMPTY  # the whole snapshot, read-only (secrets: never in repr)
    config: str | None = None  # NOTARY_CONFIG: the notary.toml to read
    ledger: str | None = None  # NOTARY_LEDGER: the ledger URL
    state_dir: str | None = None  # NOTARY_STATE_DIR: the client's trusted states
    signing_key: str | None = None  # NOTARY_SIGNING_KEY: PEM text (a secret) or a key URI
    key_passphrase: str | None = None  # NOTARY_KEY_PASSPHRASE (a secret)
    pkcs11_module: str | None = None  # NOTARY_PKCS11_MODULE
    pkcs11_pin: str | None = None  # NOTARY_PKCS11_PIN (a secret)
    pkcs11_pin_file: str | None = None  # NOTARY_PKCS11_PIN_FILE
    aws_region: str | None = None  # AWS_REGION (else botocore's own lookup)
    podman_storage: str | None = None  # NOTARY_PODMAN_STORAGE: podman's storage root for the hooks
    docker_host: str | None = None  # DOCKER_HOST
    xdg_config_home: str | None = None  # XDG_CONFIG_HOME: the user's notary.toml
    xdg_data_home: str | None = None  # XDG_DATA_HOME: the default embedded ledger
    xdg_state_home: str | None = None  # XDG_STATE_HOME: the default state dir

    def __repr__(self) -> str:
        """The settings without a secret: a secret only says whether it is set."""
        shown = [f"{name}={'<set>' if value else None}" if name in SECRET_FIELDS else f"{name}={value!r}"
                 for name, value in zip(self._fields, self, strict=True)]
        return f"Environment({', '.join(shown)})"

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Environment:
        """The settings a mapping of variables holds (a copy: later changes to env are not seen)."""
        snapshot = MappingProxyType(dict(env))

        def get(name: str) -> str | None:
            return snapshot.get(name) or None

        return cls(variables=snapshot, config=get("NOTARY_CONFIG"), ledger=get("NOTARY_LEDGER"),
                   state_dir=get("NOTARY_STATE_DIR"), signing_key=get("NOTARY_SIGNING_KEY"),
                   key_passphrase=get("NOTARY_KEY_PASSPHRASE"), pkcs11_module=get("NOTARY_PKCS11_MODULE"),
                   pkcs11_pin=get("NOTARY_PKCS11_PIN"), pkcs11_pin_file=get("NOTARY_PKCS11_PIN_FILE"),
                   aws_region=get("AWS_REGION"), podman_storage=get("NOTARY_PODMAN_STORAGE"),
                   docker_host=get("DOCKER_HOST"), xdg_config_home=get("XDG_CONFIG_HOME"),
                   xdg_data_home=get("XDG_DATA_HOME"), xdg_state_home=get("XDG_STATE_HOME"))

    @classmethod
    def of_process(cls) -> Environment:
        """This process's environment now: what an edge reads once (or a library call given none)."""
        return cls.from_mapping(os.environ)


def given(env: Environment | None) -> Environment:
    """env, or the process environment for a library caller that passed none."""
    return env if env is not None else Environment.of_process()
