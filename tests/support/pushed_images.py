"""Three distinct real images in the loopback registry, for the control-plane tests (Kubernetes, containerd).

`pushed_images` (session): busybox images built with umoci (each with its own /marker.txt, so each has its
own manifest digest) and pushed with skopeo to the session `registry` as `notary-test/app:<role>`, for the
roles "good" (to be notarized), "unsigned" (never notarized) and "revoked" (notarized, then revoked). Every
module keeps its own ledger: `gate_world(root, images, reason)` is a GateWorld in which they play those roles.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from notary.sources.base import Subject
from tests.support.images import build_busybox_layout
from tests.support.registry import RegistryServer
from tests.support.runtimes import GateWorld, image_subject

ROLES = ("good", "unsigned", "revoked")
REPO_PATH = "notary-test/app"


@dataclass(frozen=True)
class PushedImage:
    role: str
    registry: str  # host:port
    layout: Path
    digest: str  # manifest digest, as the registry serves it

    @property
    def tag_ref(self) -> str:
        """HOST:PORT/notary-test/app:ROLE: a tag the gate must resolve through the registry."""
        return f"{self.registry}/{REPO_PATH}:{self.role}"

    @property
    def digest_ref(self) -> str:
        return f"{self.registry}/{REPO_PATH}@{self.digest}"

    @property
    def name(self) -> str:
        return f"{self.registry}/{REPO_PATH}"

    def subject(self) -> Subject:
        """The record `notary notarize` would write for it (manifest, config and layers)."""
        return image_subject(self.layout, self.role, name=self.tag_ref, names=(self.name,))


@pytest.fixture(scope="session")
def pushed_images(registry: RegistryServer,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PushedImage]]:
    layout = tmp_path_factory.mktemp("pushed") / "layout"
    images = {}
    for role in ROLES:
        build_busybox_layout(layout, tag=role, marker=f"{role}-image")
        digest = registry.push(layout, role, f"{REPO_PATH}:{role}", all_platforms=False)
        images[role] = PushedImage(role, str(registry), layout, digest)
    assert len({image.digest for image in images.values()}) == len(ROLES)
    assert all(images[r].subject().digest == images[r].digest for r in ROLES), "skopeo rewrote a manifest"
    yield images


def gate_world(root: Path, images: dict[str, PushedImage], reason: str) -> GateWorld:
    """A GateWorld under root whose ledger notarizes "good" and "revoked", then revokes "revoked" for reason."""
    world = GateWorld(root)
    world.notarize(images["good"].subject())
    world.notarize(images["revoked"].subject())
    world.revoke(images["revoked"].digest, reason)
    return world
