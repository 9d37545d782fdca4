"""The OCI hook in a real `runc run` and `crun run`: a refused image never starts (its command leaves no trace).

Every test runs once per low-level runtime (Debian's runc and crun), with the same umoci bundle and hook.
crun discards a hook's output unless the bundle's `run.oci.hooks.stderr` annotation names a file: the tests
set it, as a crun user wanting notary's reason would (tests/support/oci_runtimes.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.oci_runtimes import RUNTIMES, hook_output_annotations, run_bundle
from tests.support.runtimes import GateWorld, image_subject, runc_bundle


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _bundle(runtime: str, layout: Path, tmp_path: Path, hook: dict[str, object], *,
            annotations: dict[str, str] | None = None, stage: str = "createRuntime") -> tuple[Path, Path]:
    """(bundle, trace dir) of the layout's v1 image with hook; crun is told where to keep the hook's stderr."""
    trace = tmp_path / "trace"
    notes = {**hook_output_annotations(runtime, tmp_path), **(annotations or {})}
    bundle = runc_bundle(layout, "v1", tmp_path / "bundle", trace, hook, stage=stage, annotations=notes)
    return bundle, trace


def _run(world: GateWorld, layout: Path, tmp_path: Path, runtime: str, *, annotations: dict[str, str] | None = None,
         stage: str = "createRuntime") -> tuple[int, str, Path]:
    bundle, trace = _bundle(runtime, layout, tmp_path, world.hook_spec(), annotations=annotations, stage=stage)
    proc = run_bundle(runtime, bundle, tmp_path / f"{runtime}-state")
    return proc.returncode, proc.stdout + proc.stderr, trace / "ran"


def test_notarized_image_runs_through_the_hook(world: GateWorld, busybox_layout: Path, tmp_path: Path,
                                               runtime: str) -> None:
    world.notarize(image_subject(busybox_layout))
    code, output, ran = _run(world, busybox_layout, tmp_path, runtime)
    assert code == 0, output
    assert "hello" in output and ran.exists()
    line = world.decisions()[-1]
    assert line["decision"] == "allow" and line["front_end"] == "oci-hook" and line["identified_by"] == "umoci"


def test_never_notarized_image_never_starts(world: GateWorld, busybox_layout: Path, tmp_path: Path,
                                            runtime: str) -> None:
    code, output, ran = _run(world, busybox_layout, tmp_path, runtime)
    assert code != 0 and not ran.exists()
    assert "notary: refused" in output and "not notarized" in output


def test_revoked_image_never_starts(world: GateWorld, busybox_layout: Path, tmp_path: Path,
                                    runtime: str) -> None:
    subject = image_subject(busybox_layout)
    world.notarize(subject)
    world.revoke(subject.digest, "CVE-2026-1111")
    code, output, ran = _run(world, busybox_layout, tmp_path, runtime)
    assert code != 0 and not ran.exists()
    assert "revoked" in output and "CVE-2026-1111" in output


def test_image_signed_by_an_untrusted_key_never_starts(world: GateWorld, busybox_layout: Path,
                                                       tmp_path: Path, runtime: str) -> None:
    world.notarize(image_subject(busybox_layout), trusted=False)
    code, output, ran = _run(world, busybox_layout, tmp_path, runtime)
    assert code != 0 and not ran.exists()
    assert "not notarized by any trusted key" in output


def test_tampered_ledger_stops_the_container_with_an_integrity_failure(world: GateWorld, busybox_layout: Path,
                                                                       tmp_path: Path, runtime: str) -> None:
    world.notarize(image_subject(busybox_layout))
    world.tamper()
    code, output, ran = _run(world, busybox_layout, tmp_path, runtime)
    assert code != 0 and not ran.exists()
    assert "integrity failure" in output
    assert world.decisions()[-1]["exit_code"] == 3


def test_prestart_stage_and_explicit_annotation_are_honoured(world: GateWorld, busybox_layout: Path,
                                                             tmp_path: Path, runtime: str) -> None:
    subject = image_subject(busybox_layout)
    world.notarize(subject)
    world.config.write_text(world.config.read_text().replace('images = ["*"]', 'images = ["registry.example/*"]'))
    annotations = {"dev.notary.image.digest": subject.digest, "dev.notary.image.name": "registry.example/bb:v1"}
    code, output, ran = _run(world, busybox_layout, tmp_path, runtime, stage="prestart", annotations=annotations)
    assert code == 0, output
    assert ran.exists()
    line = world.decisions()[-1]
    # the bundle was unpacked by umoci: its umoci.json states the image, the annotation chose among it
    assert line["identified_by"] == "umoci" and line["digest"] == subject.digest


def test_digest_annotation_cannot_claim_a_notarized_image_for_an_unnotarized_bundle(
        world: GateWorld, busybox_layout: Path, tmp_path: Path, runtime: str) -> None:
    """The bundle runs image A (never notarized, as umoci.json states); its annotation claims notarized B.
    Annotations can come from a Pod's author (CRI pass-through), so the claim must not win."""
    from tests.support.images import build_busybox_layout

    notarized = build_busybox_layout(tmp_path / "notarized", tag="v1", marker="signed")
    world.notarize(image_subject(notarized))
    claimed = image_subject(notarized).digest
    annotations = {"dev.notary.image.digest": claimed, "dev.notary.image.name": "registry.example/bb:v1"}
    code, output, ran = _run(world, busybox_layout, tmp_path, runtime, annotations=annotations)
    assert code != 0 and not ran.exists(), output
    assert "annotation dev.notary.image.digest names" in output and "umoci" in output


def test_digest_annotation_cannot_override_what_cri_o_states(world: GateWorld, busybox_layout: Path,
                                                             tmp_path: Path, runtime: str) -> None:
    """CRI-O states the image it runs (ImageRef, set by CRI-O itself); a pass-through Pod annotation naming a
    notarized digest is refused, and the same claim matching CRI-O's statement is admitted."""
    subject = image_subject(busybox_layout)
    world.notarize(subject)
    unnotarized = "sha256:" + "ee" * 32
    forged = {"io.kubernetes.cri-o.ImageName": "registry.example/bb:v1",
              "io.kubernetes.cri-o.ImageRef": unnotarized, "dev.notary.image.digest": subject.digest}
    code, output, ran = _run(world, busybox_layout, tmp_path, runtime, annotations=forged)
    assert code != 0 and not ran.exists(), output
    assert "cri-o states the container's image as " + unnotarized in output
    (tmp_path / "bundle").rename(tmp_path / "bundle-forged")
    honest = {**forged, "io.kubernetes.cri-o.ImageRef": subject.digest}
    code, output, ran = _run(world, busybox_layout, tmp_path, runtime, annotations=honest)
    assert code == 0 and ran.exists(), output
    assert world.decisions()[-1]["identified_by"] == "cri-o"


def test_unreachable_ledger_refuses_the_container(world: GateWorld, busybox_layout: Path, tmp_path: Path,
                                                  runtime: str) -> None:
    world.notarize(image_subject(busybox_layout))
    world.write_policy(ledger_url=(tmp_path / "nowhere" / "ledger.db").as_uri())
    code, output, ran = _run(world, busybox_layout, tmp_path, runtime)
    assert code != 0 and not ran.exists()
    assert "unreachable" in output


def test_unreachable_ledger_with_fail_open_runs_and_is_logged(world: GateWorld, busybox_layout: Path,
                                                             tmp_path: Path, runtime: str) -> None:
    world.write_policy(fail="open", ledger_url=(tmp_path / "nowhere" / "ledger.db").as_uri())
    code, output, ran = _run(world, busybox_layout, tmp_path, runtime)
    assert code == 0, output
    assert ran.exists()
    assert world.decisions()[-1]["via"] == "fail-open"


def test_crio_annotations_identify_the_image_by_its_image_id(world: GateWorld, busybox_layout: Path,
                                                             tmp_path: Path, runtime: str) -> None:
    """CRI-O's ImageRef may be the bare image id (config digest): matched through the signed record's config."""
    subject = image_subject(busybox_layout)
    world.notarize(subject)
    assert subject.image_id is not None
    annotations = {"io.kubernetes.cri-o.ImageName": "registry.example/bb:v1",
                   "io.kubernetes.cri-o.ImageRef": subject.image_id.split(":", 1)[1]}
    code, output, ran = _run(world, busybox_layout, tmp_path, runtime, annotations=annotations)
    assert code == 0, output
    assert ran.exists()
    line = world.decisions()[-1]
    assert line["identified_by"] == "cri-o" and line["digest"] == subject.digest and "image id" in line["reason"]


def test_crio_image_id_of_a_revoked_image_is_refused(world: GateWorld, busybox_layout: Path,
                                                     tmp_path: Path, runtime: str) -> None:
    subject = image_subject(busybox_layout)
    world.notarize(subject)
    world.revoke(subject.digest, "pulled from prod")
    assert subject.image_id is not None
    annotations = {"io.kubernetes.cri-o.ImageName": "registry.example/bb:v1",
                   "io.kubernetes.cri-o.ImageRef": subject.image_id.split(":", 1)[1]}
    code, output, ran = _run(world, busybox_layout, tmp_path, runtime, annotations=annotations)
    assert code != 0 and not ran.exists() and "pulled from prod" in output


def test_containerd_annotations_identify_the_image(world: GateWorld, busybox_layout: Path,
                                                   tmp_path: Path, runtime: str) -> None:
    subject = image_subject(busybox_layout)
    annotations = {"io.kubernetes.cri.image-name": f"registry.example/bb@{subject.digest}",
                   "io.kubernetes.cri.container-type": "container"}
    code, output, ran = _run(world, busybox_layout, tmp_path, runtime, annotations=annotations)
    assert code != 0 and not ran.exists()  # not notarized yet
    world.notarize(subject)
    (tmp_path / "bundle").rename(tmp_path / "bundle-old")
    code, output, ran = _run(world, busybox_layout, tmp_path, runtime, annotations=annotations)
    assert code == 0, output
    assert world.decisions()[-1]["identified_by"] == "containerd"


def test_bundle_without_any_image_identity_is_refused(world: GateWorld, busybox_layout: Path,
                                                      tmp_path: Path, runtime: str) -> None:
    world.notarize(image_subject(busybox_layout))
    bundle, trace = _bundle(runtime, busybox_layout, tmp_path, world.hook_spec())
    (bundle / "umoci.json").unlink()
    proc = run_bundle(runtime, bundle, tmp_path / f"{runtime}-state")
    assert proc.returncode != 0 and not (trace / "ran").exists()
    assert "no image digest known" in proc.stderr


def test_cli_subcommand_works_as_the_hook(world: GateWorld, busybox_layout: Path, tmp_path: Path,
                                          runtime: str) -> None:
    """`notary gate oci-hook` (the CLI form) decides exactly like the light entry point."""
    import sys

    world.notarize(image_subject(busybox_layout), trusted=False)
    hook = world.hook_spec()
    hook["args"] = [sys.executable, "-m", "notary.cli.main", "gate", "oci-hook"]
    bundle, trace = _bundle(runtime, busybox_layout, tmp_path, hook)
    proc = run_bundle(runtime, bundle, tmp_path / f"{runtime}-state")
    assert proc.returncode != 0 and not (trace / "ran").exists()
    assert "not notarized by any trusted key" in proc.stderr


def test_revoked_image_id_refuses_the_container_run_by_manifest_digest(world: GateWorld, busybox_layout: Path,
                                                                      tmp_path: Path, runtime: str) -> None:
    """Revoking the image id (e.g. the `docker save` archive of the same image) stops the container that a
    runtime identifies by its manifest digest: the signed record ties the two."""
    subject = image_subject(busybox_layout)
    world.notarize(subject)
    annotations = {"dev.notary.image.digest": subject.digest, "dev.notary.image.name": "registry.example/bb:v1"}
    code, output, ran = _run(world, busybox_layout, tmp_path, runtime, annotations=annotations)
    assert code == 0, output
    assert subject.image_id is not None
    world.revoke(subject.image_id, "CVE-2026-7777 in the base layer")
    (tmp_path / "bundle").rename(tmp_path / "bundle-old")
    ran.unlink()
    code, output, ran = _run(world, busybox_layout, tmp_path, runtime, annotations=annotations)
    assert code != 0 and not ran.exists()
    assert "its image id" in output and "CVE-2026-7777" in output
    assert world.decisions()[-1]["revocation"]["digest"] == subject.image_id
