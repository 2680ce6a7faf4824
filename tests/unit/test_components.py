"""The KFP components: defined in files, thin, in the component image, no pip; their bodies
run as plain functions with artifacts on disk (the same code a pod or kfp.local runs)."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
from kfp.dsl import Artifact, Dataset, Markdown
from kfp.dsl.base_component import BaseComponent

import finrisk.components as components
from finrisk.components.image import DEFAULT_IMAGE
from finrisk.retraining import data
from finrisk.retraining.dataset import read_dataset

REPO = Path(__file__).resolve().parents[2]
ALL = [
    getattr(components, name)
    for name in components.__all__
    if isinstance(getattr(components, name), BaseComponent)
]


def artifact(kind: type[Artifact], path: Path) -> Any:
    return kind(uri=str(path))


def test_one_component_per_stage() -> None:
    names = {c.component_spec.name for c in ALL}
    assert names == {
        "check-drift",
        "ingest-data",
        "validate-data",
        "fail-run",
        "build-features",
        "train-detector",
        "train-risk-model",
        "evaluate-models",
        "gate-decision",
        "register-challenger",
        "promote-champion",
        "keep-champion",
        "shadow-challenger",
        "deploy-challenger",
    }


@pytest.mark.parametrize("component", ALL, ids=lambda c: c.component_spec.name)
def test_component_runs_the_project_image_with_no_pip(component: BaseComponent) -> None:
    container = component.component_spec.implementation.container
    assert container.image == components.COMPONENT_IMAGE
    command = " ".join(container.command + container.args)
    assert "pip install" not in command  # no packages_to_install, no kfp bootstrap install
    source = Path(inspect.getsourcefile(component.python_func) or "")
    assert source.parent.resolve() == (REPO / "components" / "finrisk" / "components").resolve()


@pytest.mark.parametrize("component", ALL, ids=lambda c: c.component_spec.name)
def test_component_bodies_stay_thin(component: BaseComponent) -> None:
    body = inspect.getsource(component.python_func)
    statements = [
        line
        for line in body.splitlines()
        if line.strip() and not line.strip().startswith(("#", '"""', "@"))
    ]
    assert len(statements) <= 60, "move logic into finrisk.retraining / finrisk.gate / deploy"
    # The stage logic lives in the finrisk package, which the body imports (the run's last
    # words, keep or shadow, only write the reason).
    assert (
        re.search(r"^\s+from finrisk\.", body, re.MULTILINE)
        or "raise SystemExit" in body
        or component.component_spec.name in ("keep-champion", "shadow-challenger")
    )


def test_default_image_follows_the_package_version() -> None:
    from finrisk.version import __version__

    assert f"ghcr.io/finrisk/finrisk-components:{__version__}" == DEFAULT_IMAGE


def test_ingest_and_validate_bodies(tmp_path: Path) -> None:
    raw = artifact(Dataset, tmp_path / "raw")
    rows = components.ingest_data.python_func(
        raw_data=raw, source="synthetic", synthetic_users=30, synthetic_days=20, seed=3
    )
    assert rows == len(read_dataset(tmp_path / "raw").transactions)
    assert raw.metadata == {"source": "synthetic", "rows": rows}
    dataset = artifact(Dataset, tmp_path / "dataset")
    report = artifact(Markdown, tmp_path / "report.md")
    report_json = artifact(Artifact, tmp_path / "report.json")
    passed, summary, fp = components.validate_data.python_func(
        raw_data=raw, dataset=dataset, report=report, report_json=report_json
    )
    assert passed and fp.startswith("sha256:") and "passed validation" in summary
    assert dataset.metadata["fingerprint"] == fp
    assert json.loads((tmp_path / "report.json").read_text())["passed"] is True


def test_fail_run_stops_with_the_reason() -> None:
    with pytest.raises(SystemExit, match="the run stops: 2 validation error"):
        components.fail_run.python_func(reason="2 validation error(s)")


def test_gate_body_decides_from_the_evaluation(tmp_path: Path) -> None:
    evaluation = {
        "challenger": {"detector": {"pr_auc": 0.91}, "risk": {"roc_auc": 0.71}},
        "champion": {
            "detector": {"pr_auc": 0.9, "version": "3"},
            "risk": {"roc_auc": 0.75, "version": "3"},
        },
    }
    (tmp_path / "evaluation.json").write_text(json.dumps(evaluation))
    decision = artifact(Markdown, tmp_path / "decision.md")
    action, reason = components.gate_decision.python_func(
        evaluation=artifact(Artifact, tmp_path / "evaluation.json"),
        decision=decision,
        detector_metric="pr_auc",
        risk_metric="roc_auc",
        min_improvement=0.0,
        detector_floor=0.5,
        risk_floor=0.6,
    )
    assert action == "keep_champion"
    assert reason.startswith("keep the champion: risk roc_auc 0.7100 does not beat")
    assert "# Gate: Keep the champion" in (tmp_path / "decision.md").read_text()

    # A pair that passes, with promotion "shadow": shadowed, not promoted.
    evaluation["challenger"]["risk"]["roc_auc"] = 0.76
    (tmp_path / "evaluation.json").write_text(json.dumps(evaluation))
    action, reason = components.gate_decision.python_func(
        evaluation=artifact(Artifact, tmp_path / "evaluation.json"),
        decision=decision,
        promotion="shadow",
    )
    assert action == "shadow"
    assert reason.startswith("shadow the challenger: detector pr_auc 0.9100 beats")
    assert "# Gate: Shadow the challenger" in (tmp_path / "decision.md").read_text()


def test_shadow_challenger_body_writes_the_reason(tmp_path: Path) -> None:
    out = artifact(Markdown, tmp_path / "shadowed.md")
    assert components.shadow_challenger.python_func(reason="passes", decision=out) == "passes"
    assert (tmp_path / "shadowed.md").read_text() == "# The challenger is shadowed\n\npasses\n"


def test_keep_champion_body_writes_the_reason(tmp_path: Path) -> None:
    out = artifact(Markdown, tmp_path / "kept.md")
    assert components.keep_champion.python_func(reason="not better", decision=out) == "not better"
    assert (tmp_path / "kept.md").read_text() == "# The champion stays\n\nnot better\n"


def test_deploy_body_dry_run_writes_what_would_change(tmp_path: Path) -> None:
    import yaml

    manifest = artifact(Artifact, tmp_path / "isvc.yaml")
    outcome = components.deploy_challenger.python_func(
        detector_version="5",
        risk_version="6",
        manifest=manifest,
        detector_model_name="d-model",
        risk_model_name="r-model",
        pipeline_run_id="run-1",
        inference_service="finrisk",
        namespace="finrisk",
        predictor_image="",
        canary_traffic_percent=20,
        timeout_seconds=60,
        dry_run=True,
    )
    assert outcome == "dry run (client): InferenceService finrisk/finrisk"
    written = yaml.safe_load((tmp_path / "isvc.yaml").read_text())
    assert written["changes"]["canaryTrafficPercent"] == 20
    assert written["changes"]["env"]["FINRISK_DETECTOR_MODEL_URI"] == "models:/d-model/5"
    assert written["changes"]["image"] is None  # the base's is kept
    assert written["metadata"]["annotations"]["finrisk.io/pipeline-run-id"] == "run-1"


def test_component_docstrings_describe_the_stage() -> None:
    for component in ALL:
        assert component.python_func.__doc__, component.component_spec.name
    assert data.SOURCES == ("synthetic", "uri", "bigquery")


def test_dockerfile_builds_a_non_root_image_from_its_locks() -> None:
    text = (REPO / "components" / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert instructions[:2] == ["ARG BASE_IMAGE=python:3.11-slim", "FROM ${BASE_IMAGE}"]
    for lock in ("requirements.core.lock", "requirements.components.lock"):
        assert f"COPY {lock} ./" in text
        assert f"--no-deps \\\n        -r {lock}" in text
    users = [line for line in instructions if line.startswith("USER ")]
    assert users and users[-1].split()[1].split(":")[0] not in ("0", "root")
