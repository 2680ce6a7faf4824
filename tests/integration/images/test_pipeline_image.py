"""The whole retraining pipeline with every task from the component image: kfp.local
orchestrates the compiled DAG, each task launched by buildah exactly as its container spec
says (finrisk.images.pipeline_runner), against the local MLflow, on small synthetic data.

A good first run must promote its models (registered in MLflow by the image's tasks), and every
task's outputs must be the image user's (10001): written from inside the image, not by this
process (root here)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
import yaml
from kfp.local.status import Status

from finrisk import registry
from finrisk.images.pipeline_runner import BuildahTaskHandler, run_in_images
from finrisk.pipelines.compile import compile_pipeline
from finrisk.stack import Service

pytestmark = pytest.mark.integration

IMAGE_USER = 10001


def test_every_task_runs_from_the_component_image(
    images: dict[str, str], mlflow_server: Service, tmp_path: Path
) -> None:
    compiled = compile_pipeline(tmp_path / "compiled")
    spec = next(yaml.safe_load_all(compiled.ir_path.read_text(encoding="utf-8")))
    executors = spec["deploymentSpec"]["executors"].values()
    assert {e["container"]["image"] for e in executors} == {images["finrisk-components"]}

    suffix = uuid.uuid4().hex[:8]
    detector, risk = f"it-img-detector-{suffix}", f"it-img-risk-{suffix}"
    root = tmp_path / "root"
    started = time.perf_counter()
    result = run_in_images(
        {
            "synthetic_users": 150,
            "synthetic_days": 45,
            "seed": 0,
            "detector_model_name": detector,
            "risk_model_name": risk,
            "mlflow_experiment": f"it-img-pipeline-{suffix}",
            "detector_params": '{"max_iter": 40, "min_positives": 5}',
            "risk_params": '{"max_iter": 40}',
            "detector_floor": 0.3,
            "risk_floor": 0.5,
        },
        pipeline_root=root,
        tracking_uri=mlflow_server.address,
    )
    print(f"\npipeline from the component image: {time.perf_counter() - started:.1f} s")

    assert result.gate_decision == "promote", result.gate_reason
    assert result.champion == {"detector": "1", "risk": "1"}
    version = registry.get_version(detector, "champion", tracking_uri=mlflow_server.address)
    assert version is not None and version.tags["gate_decision"] == "promote"
    (run,) = [p for p in root.iterdir() if p.is_dir()]
    tasks = sorted(p for p in run.iterdir() if p.is_dir())
    assert {"ingest-data", "train-detector", "evaluate-models", "deploy-challenger"} <= {
        t.name for t in tasks
    }
    for task in tasks:
        files = [p for p in task.rglob("*") if p.is_file()]
        assert files and {p.stat().st_uid for p in files} == {IMAGE_USER}, task.name


def test_a_task_writing_outside_its_mounts_fails(images: dict[str, str], tmp_path: Path) -> None:
    """As under a read-only root file system: the write succeeds in the container's own layer
    here, so the runner checks that layer after the task."""
    image = images["finrisk-components"]
    fine = BuildahTaskHandler(image, ["sh", "-c", "echo ok > /tmp/x"], str(tmp_path), None)
    assert fine.run() == Status.SUCCESS
    home = BuildahTaskHandler(image, ["sh", "-c", "echo no > $HOME/x"], str(tmp_path), None)
    assert home.run() == Status.FAILURE
