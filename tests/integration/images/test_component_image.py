"""One retraining task from the component image, launched as Kubeflow's launcher would: the
compiled pipeline's container spec for the ingest task (image, command, args), its `{{$}}`
placeholder replaced by an executor input, outputs written where the launcher collects them
(the artifact under /minio/<bucket>/..., the executor output file under /tmp)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from finrisk.images.buildah import Buildah
from finrisk.pipelines.compile import compile_pipeline

pytestmark = pytest.mark.integration

TASK = "ingest-data"
ARTIFACT_URI = "minio://mlpipeline/v2/artifacts/finrisk-retraining/run-1/ingest-data/raw_data"
OUTPUT_FILE = "/tmp/kfp_outputs/output_metadata.json"


def _executor_input(component: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """What the driver hands the launcher: every input parameter's value (the compiled default
    unless overridden), each output artifact's URI, the output file."""
    parameters = component["inputDefinitions"]["parameters"]
    values = {name: spec.get("defaultValue") for name, spec in parameters.items()}
    (artifact,) = component["outputDefinitions"]["artifacts"]
    artifact_type = component["outputDefinitions"]["artifacts"][artifact]["artifactType"]
    described = {"name": artifact, "type": artifact_type, "uri": ARTIFACT_URI, "metadata": {}}
    return {
        "inputs": {"parameterValues": {**values, **overrides}},
        "outputs": {
            "artifacts": {artifact: {"artifacts": [described]}},
            "parameters": {"Output": {"outputFile": "/tmp/kfp_outputs/Output"}},
            "outputFile": OUTPUT_FILE,
        },
    }


def test_ingest_task_runs_as_the_compiled_spec_says(
    buildah: Buildah, images: dict[str, str], tmp_path: Path
) -> None:
    compiled = compile_pipeline(tmp_path / "compiled")
    # The IR: the pipeline spec, then the platform spec (kfp-kubernetes settings).
    spec = next(yaml.safe_load_all(compiled.ir_path.read_text(encoding="utf-8")))
    executor = spec["deploymentSpec"]["executors"][f"exec-{TASK}"]["container"]
    # The compiled image is what `make images` tagged: no retagging between build and pipeline.
    assert executor["image"] == images["finrisk-components"]
    component = spec["components"][f"comp-{TASK}"]
    executor_input = _executor_input(
        component, {"source": "synthetic", "synthetic_users": 30, "synthetic_days": 10, "seed": 5}
    )
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in executor["args"]]
    tmp, minio = tmp_path / "tmp", tmp_path / "minio"
    for folder in (tmp, minio):
        folder.mkdir()
        folder.chmod(0o1777)  # emptyDir volumes, writable by the image's user

    with buildah.container(executor["image"]) as container:
        argv = container.command(
            [*executor["command"], *args], volumes={tmp: "/tmp", minio: "/minio"}
        )
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert container.changed_files(ignore=("/tmp", "/minio")) == []

    output = json.loads((tmp / "kfp_outputs" / "output_metadata.json").read_text())
    rows = output["parameterValues"]["Output"]
    dataset = minio / "mlpipeline/v2/artifacts/finrisk-retraining/run-1/ingest-data/raw_data"
    assert dataset.exists(), sorted(str(p) for p in minio.rglob("*"))
    (artifact,) = output["artifacts"]["raw_data"]["artifacts"]
    assert artifact["metadata"]["rows"] == rows > 0
    files = [p for p in dataset.rglob("*") if p.is_file()] if dataset.is_dir() else [dataset]
    assert files and {p.stat().st_uid for p in files} == {10001}  # the image's user, not root
    parquet = [p for p in files if p.suffix == ".parquet"]
    if parquet:
        assert len(pd.read_parquet(parquet[0])) > 0
