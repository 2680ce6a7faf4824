"""Fixtures of the image tests: both images built (or found cached) once per run by the same
code as `make images`, and the predictor run from its image on a free loopback port.

The images run under buildah (--isolation chroot, --network host: no container runtime runs
here), as their own user, with a fresh host folder as /tmp (what a pod's emptyDir gives a
read-only root file system). No image tool, no pass: the tests fail saying what to install.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from finrisk.images import build_images, image_ref
from finrisk.images.buildah import Buildah, BuildahContainer
from finrisk.kinds import MODEL_URI_ENV
from finrisk.settings import Settings
from finrisk.stack.process import free_port, spawn, stop_spawned
from tests.integration.conftest import _wait_ready
from tests.support.predictor_process import Served

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def buildah() -> Buildah:
    if not Buildah.works():
        pytest.fail(
            "the image tests need buildah (Debian's package; `make test` and `make images` "
            "install it with scripts/ensure-image-tools.sh): it is not installed here"
        )
    return Buildah()


@pytest.fixture(scope="session")
def images(buildah: Buildah) -> dict[str, str]:
    """name -> image reference, as `make images` builds them (a no-op when it has)."""
    settings = Settings().images
    built = build_images(buildah, settings, ROOT)
    return {image.name: image_ref(settings, image.name) for image in built}


def entrypoint(container: BuildahContainer) -> list[str]:
    """What the image runs when given no command: ENTRYPOINT then CMD."""
    config = container.config()
    return [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]  # type: ignore[misc]


@dataclass
class ImagePredictor:
    url: str
    container: BuildahContainer
    tmp: Path
    log: Path


@contextmanager
def predictor_from_image(
    buildah: Buildah, image: str, tracking_uri: str, detector: str, risk: str, tmp: Path
) -> Iterator[ImagePredictor]:
    """The predictor image's own command serving the champions of `detector` and `risk`."""
    port = free_port()
    (tmp / "tmp").mkdir()
    (tmp / "tmp").chmod(0o1777)  # the image's user (10001) writes there, as in an emptyDir
    log = tmp / "predictor.log"
    env = {
        # The image listens on 0.0.0.0 (a pod's address); on the host network: loopback only.
        "FINRISK_PREDICTOR_HOST": "127.0.0.1",
        "FINRISK_PREDICTOR_HTTP_PORT": str(port),
        "MLFLOW_TRACKING_URI": tracking_uri,
        MODEL_URI_ENV["detector"]: f"models:/{detector}@champion",
        MODEL_URI_ENV["risk"]: f"models:/{risk}@champion",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    }
    with buildah.container(image) as container:
        argv = container.command(entrypoint(container), env=env, volumes={tmp / "tmp": "/tmp"})
        child = spawn(argv, log, {})
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, child, log)
            yield ImagePredictor(url, container, tmp / "tmp", log)
        finally:
            stop_spawned(child)


@pytest.fixture(scope="package")
def image_predictor(
    buildah: Buildah,
    images: dict[str, str],
    served: Served,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ImagePredictor]:
    """The predictor image serving the same champions as `served` does."""
    with predictor_from_image(
        buildah,
        images["finrisk-predictor"],
        served.tracking_uri,
        served.detector,
        served.risk,
        tmp_path_factory.mktemp("predictor-image"),
    ) as predictor:
        yield predictor
