"""Per-test immudb fixtures the attack modules share: a fresh database and a man in the middle of it.

Imported by name where wanted (`from tests.support.immudb_fixtures import fresh_database  # noqa: F401`),
not a plugin: the fixture names (`url`, `proxy`) are short and a module that means something else by them
keeps its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.grpc_proxy import GrpcProxy
from tests.support.http_proxy import HttpProxy
from tests.support.immudb import ImmudbServer, fresh_immudb_url


@pytest.fixture(name="url")
def fresh_database(immudb_server: ImmudbServer) -> str:
    """A new, empty database of the session's immudb: no test reads another's transactions."""
    return fresh_immudb_url(immudb_server)


@pytest.fixture(name="proxy")
def grpc_man_in_the_middle(immudb_server: ImmudbServer) -> Iterator[GrpcProxy]:
    """A real gRPC proxy in front of immudb that a test can make lie."""
    mitm = GrpcProxy(immudb_server.address).start()
    yield mitm
    mitm.stop()


@pytest.fixture(name="proxy")
def gateway_man_in_the_middle(immudb_server: ImmudbServer) -> Iterator[HttpProxy]:
    """A real HTTP proxy in front of immudb's REST gateway that a test can make lie."""
    mitm = HttpProxy(immudb_server.gateway_url).start()
    yield mitm
    mitm.stop()
