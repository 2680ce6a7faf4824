"""The bridge from the serving image scores every transaction of a small topic through the
predictor image, as its own user, writing nothing outside /tmp."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from finrisk.bench.local_processes import bridge_environment, register_champions, train_models
from finrisk.images.buildah import Buildah
from finrisk.serving.bridge.producer import produce, synthetic_records
from finrisk.settings import Settings
from finrisk.stack import Service
from tests.integration.images.conftest import predictor_from_image
from tests.support.kafka_reading import read_topic

pytestmark = pytest.mark.integration

N = 150


def test_bridge_image_scores_every_transaction(
    buildah: Buildah,
    images: dict[str, str],
    kafka: Service,
    mlflow_server: Service,
    stack_settings: Settings,
    tmp_path: Path,
) -> None:
    # Champions with the features the bridge computes (the predictor tests' models have others).
    suffix = uuid.uuid4().hex[:8]
    tracking_uri = stack_settings.mlflow.tracking_uri
    models = register_champions(
        tracking_uri, f"test-image-det-{suffix}", f"test-image-risk-{suffix}", *train_models()
    )
    bootstrap = stack_settings.kafka.bootstrap_servers
    name = f"test.image-bridge.{suffix}"
    produce({"bootstrap.servers": bootstrap}, name, synthetic_records(N, users=40, days=20, seed=3))
    image = images["finrisk-predictor"]
    (tmp_path / "predictor").mkdir()
    tmp = tmp_path / "bridge-tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)  # the image's user (10001) writes there, as in an emptyDir
    with predictor_from_image(
        buildah, image, tracking_uri, models.detector, models.risk, tmp_path / "predictor"
    ) as predictor:
        env = {
            **bridge_environment(bootstrap, predictor.url, models, name, name),
            "FINRISK_HOME": "/tmp/finrisk",
            # Anomalies in a SQLite file under $FINRISK_HOME: it writes there, and only there.
            "FINRISK_BRIDGE__SINK": "local",
            # Its health and metrics server on loopback (the image's pods set 0.0.0.0).
            "FINRISK_BRIDGE__HTTP_HOST": "127.0.0.1",
        }
        with buildah.container(image) as container:
            argv = container.command(
                ["finrisk", "bridge", "--idle-exit", "5"], env=env, volumes={tmp: "/tmp"}
            )
            done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            assert container.config()["User"] == "10001:10001"
            assert container.changed_files(ignore=("/tmp",)) == []
    scored = read_topic(bootstrap, f"{name}.scored", until=lambda r: len(r) >= N)
    assert len(scored) == N
    assert not read_topic(bootstrap, f"{name}.dlq")
    assert (tmp / "finrisk" / "anomalies.sqlite").is_file()
