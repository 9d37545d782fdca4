"""pytest plugin for `make test`: run the tests that need a Go-built component (containerd, etcd, kube-apiserver)
last, so the rest of the suite runs while scripts/components.sh still builds them in the background.

Loaded with `-p tests.support.late_components` (the Makefile does); the order of everything else is unchanged.
Which modules wait is read from their imports of tests.support.components' users (kube, containerd), not
from a list kept by hand.
"""

from __future__ import annotations

import pytest

from tests.support.components import WAIT_FOR_BUILD

# in the order scripts/components.sh builds what they need: containerd first, etcd + kube-apiserver last
NEEDS_COMPONENTS = ("tests.support.containerd", "tests.support.kube")


def _build_rank(item: pytest.Item) -> int:
    """0 for a test that needs no Go-built component; else 1 + the position of the last one it waits for."""
    module = getattr(item, "module", None)
    if module is None:
        return 0
    used = {getattr(value, "__module__", None) for value in vars(module).values()}
    ranks = [i + 1 for i, name in enumerate(NEEDS_COMPONENTS) if name in used]
    return max(ranks, default=0)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_build_rank)  # stable: the order within each rank (and module grouping) is kept
    for item in items:
        if _build_rank(item):  # its first test's fixtures may wait for the background build
            item.add_marker(pytest.mark.timeout(WAIT_FOR_BUILD + 900))
