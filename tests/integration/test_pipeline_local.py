"""`finrisk pipeline run --local`: the whole DAG with kfp.local against the real MLflow server.

Run 1 (good synthetic data, no champion yet) must register the challenger and promote it to
champion, and deploy (dry run) writes a valid InferenceService. Run 2 reads worse data from a
file (the same data with shuffled labels): the challenger is registered with alias
`challenger`, the gate keeps the champion, and the run ends cleanly saying why. Run 3 passes
with promotion "shadow": registered as `challenger`, shadowed, not promoted.
Small data keeps this the slowest test at about a minute or two; the durations are printed.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from finrisk.cli import main
from finrisk.retraining.dataset import Dataset, write_dataset
from finrisk.schema import FRAUD_TYPE, IS_FRAUD, IS_RISKY
from finrisk.stack import Service
from finrisk.synthetic import generate

pytestmark = pytest.mark.integration

USERS, DAYS, SEED = 150, 45, 0


def _run(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    started = time.perf_counter()
    code = main(["pipeline", "run", "--local", "--json", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err[-4000:]
    result: dict[str, Any] = json.loads(out)
    with capsys.disabled():
        print(
            f"\nlocal pipeline run: {time.perf_counter() - started:.1f} s "
            f"(DAG {result['seconds']:.1f} s)"
        )
    return result


def _task_dir(root: Path, task: str) -> Path | None:
    (run,) = [p for p in root.iterdir() if p.is_dir()]
    path = run / task
    return path if path.exists() else None


def _worse_data(folder: Path) -> Path:
    """The same customers with labels shuffled: nothing left for a model to learn."""
    transactions, users, manifest = generate(USERS, DAYS, SEED)
    rng = np.random.default_rng(1)
    order = rng.permutation(len(transactions))
    transactions[[IS_FRAUD, FRAUD_TYPE]] = transactions[[IS_FRAUD, FRAUD_TYPE]].to_numpy()[order]
    users[IS_RISKY] = rng.permutation(users[IS_RISKY].to_numpy())
    return write_dataset(folder, Dataset(transactions, users, {**manifest, "labels": "shuffled"}))


def test_local_runs_promote_then_keep_the_champion(
    mlflow_server: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from finrisk import registry

    suffix = uuid.uuid4().hex[:8]
    detector, risk = f"it-detector-{suffix}", f"it-risk-{suffix}"
    common = [
        "--tracking-uri",
        mlflow_server.address,
        "-p",
        f"detector_model_name={detector}",
        "-p",
        f"risk_model_name={risk}",
        "-p",
        f"mlflow_experiment=it-pipeline-{suffix}",
        "-p",
        f"seed={SEED}",
        "-p",
        'detector_params={"max_iter": 40, "min_positives": 5}',
        "-p",
        'risk_params={"max_iter": 40}',
        "-p",
        "detector_floor=0.3",
        "-p",
        "risk_floor=0.5",
    ]

    # Run 1: good data, no champion yet -> promoted and (dry-run) deployed.
    root1 = tmp_path / "run1"
    first = _run(
        [
            *common,
            "--pipeline-root",
            str(root1),
            "-p",
            f"synthetic_users={USERS}",
            "-p",
            f"synthetic_days={DAYS}",
        ],
        capsys,
    )
    assert first["gate_decision"] == "promote", first["gate_reason"]
    assert first["champion"] == first["challenger"] == {"detector": "1", "risk": "1"}
    version = registry.get_version(detector, "champion", tracking_uri=mlflow_server.address)
    assert version is not None
    tags = version.tags
    assert tags["data_fingerprint"].startswith("sha256:")
    assert tags["code_version"] and tags["pipeline_run_id"]
    assert float(tags["metric.pr_auc"]) >= 0.3 and tags["gate_decision"] == "promote"
    # The training data's reference profile is data in the version's verified artifacts.
    for name, kind_profile in ((detector, "alert_rate"), (risk, "band_mix")):
        loaded = registry.load(name, "champion", tracking_uri=mlflow_server.address)
        assert loaded.profile is not None and loaded.profile[kind_profile] is not None
        assert set(loaded.profile["features"]) == set(loaded.compiled.feature_names)
    manifest_dir = _task_dir(root1, "deploy-challenger")
    assert manifest_dir is not None
    # Locally a dry run without a cluster: what the rollout would change on the base's object.
    planned = yaml.safe_load((manifest_dir / "manifest").read_text())
    assert planned["changes"]["env"]["FINRISK_DETECTOR_MODEL_URI"] == f"models:/{detector}/1"
    assert planned["metadata"]["annotations"]["finrisk.io/detector-version"] == f"{detector}/1"
    evaluate_dir = _task_dir(root1, "evaluate-models")
    assert evaluate_dir is not None
    assert (evaluate_dir / "detector_report").read_text().startswith("<!doctype html>")
    assert json.loads((evaluate_dir / "evaluation").read_text())["champion"] == {}

    # Run 2: worse data from a file -> registered as challenger, champion unchanged.
    root2 = tmp_path / "run2"
    worse = _worse_data(tmp_path / "worse")
    second = _run(
        [
            *common,
            "--pipeline-root",
            str(root2),
            "-p",
            "data_source=uri",
            "-p",
            f"data_uri={worse}",
        ],
        capsys,
    )
    assert second["challenger"] == {"detector": "2", "risk": "2"}
    assert second["champion"] == {"detector": "1", "risk": "1"}
    assert second["gate_decision"] == "keep_champion"
    assert "detector pr_auc" in second["gate_reason"] and "below the floor" in second["gate_reason"]
    assert _task_dir(root2, "deploy-challenger") is None
    kept = _task_dir(root2, "keep-champion")
    assert kept is not None and "below the floor" in (kept / "decision").read_text()
    evaluate_dir = _task_dir(root2, "evaluate-models")
    assert evaluate_dir is not None
    champion = json.loads((evaluate_dir / "evaluation").read_text())["champion"]
    assert champion["detector"]["version"] == "1"
    assert champion["detector"]["source"] == "rescored on this run's test data"

    # Run 3: good data again with promotion "shadow" (any gain will do): the pair passes,
    # stays `challenger` for the bridge to shadow, and nothing is rolled out or promoted.
    root3 = tmp_path / "run3"
    third = _run(
        [
            *common,
            "--pipeline-root",
            str(root3),
            "-p",
            f"synthetic_users={USERS}",
            "-p",
            f"synthetic_days={DAYS}",
            "-p",
            "promotion=shadow",
            "-p",
            "min_improvement=-1",
        ],
        capsys,
    )
    assert third["gate_decision"] == "shadow", third["gate_reason"]
    assert third["challenger"] == {"detector": "3", "risk": "3"}
    assert third["champion"] == {"detector": "1", "risk": "1"}
    assert _task_dir(root3, "deploy-challenger") is None
    assert _task_dir(root3, "promote-champion") is None
    shadowed = _task_dir(root3, "shadow-challenger")
    assert shadowed is not None
    assert (
        (shadowed / "decision")
        .read_text()
        .startswith("# The challenger is shadowed\n\nshadow the challenger: detector pr_auc")
    )
    tags = registry.get_version(detector, "challenger", tracking_uri=mlflow_server.address).tags
    assert tags["gate_decision"] == "shadow" and tags["gate_champion_version"] == "1"


def test_invalid_data_fails_the_run_with_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    transactions, users, manifest = generate(20, 7, SEED)
    transactions.loc[transactions.index[:3], "amount"] = -5.0
    bad = write_dataset(tmp_path / "bad", Dataset(transactions, users, manifest))
    root = tmp_path / "run"
    code = main(
        [
            "pipeline",
            "run",
            "--local",
            "--pipeline-root",
            str(root),
            "-p",
            "data_source=uri",
            "-p",
            f"data_uri={bad}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    message = err.strip().splitlines()[-1]
    assert message.startswith("finrisk: error: the data failed validation: 1 validation error")
    assert "non_positive_amount [amount]" in message
    report = _task_dir(root, "validate-data")
    assert report is not None and "FAILED" in (report / "report").read_text()
    assert _task_dir(root, "build-features") is None
