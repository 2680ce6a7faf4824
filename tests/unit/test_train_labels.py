"""`finrisk train --labels`: the detector reads the merchant risk the bridge serves, trained
with the label delay; the flag is refused where it has no meaning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finrisk import features
from finrisk.cli import main
from finrisk.evaluation.outputs import METRICS_FILE, MODEL_FILE
from finrisk.evaluation.split import FRAUD_LABEL_DELAY_DAYS
from finrisk.features.definitions import SERVED_MERCHANT_FEATURES
from finrisk.io import write_dataset
from finrisk.models import load_model
from finrisk.synthetic import generate
from finrisk.synthetic.labels import synthetic_labels, write_labels


@pytest.fixture(scope="module")
def hard(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("hard")
    transactions, users, manifest = generate(users=200, days=45, seed=5, scenario="hard")
    write_dataset(root / "data", transactions, users, manifest)
    write_labels(root / "labels.jsonl", synthetic_labels(transactions, 5))
    return root / "data", root / "labels.jsonl"


def test_train_with_labels_reads_the_served_merchant_risk(
    hard: tuple[Path, Path], tmp_path: Path
) -> None:
    data, labels = hard
    out = tmp_path / "anomaly"
    argv = ["train", "--model", "anomaly", "--data", str(data), "--out", str(out)]
    assert main([*argv, "--labels", str(labels)]) == 0
    model = load_model(out / MODEL_FILE)
    assert model.feature_names_ == (*features.TRANSACTION_FEATURES, *SERVED_MERCHANT_FEATURES)
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["split"]["label_delay_days"] == FRAUD_LABEL_DELAY_DAYS
    assert "ours_no_merchant" in metrics["models"]


def test_labels_are_for_the_detector_only(
    hard: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, labels = hard
    argv = ["train", "--model", "risk", "--data", str(data), "--out", str(tmp_path / "r")]
    assert main([*argv, "--labels", str(labels)]) != 0
    assert "--labels applies to --model anomaly only" in capsys.readouterr().err


def test_a_bad_label_file_names_its_line(
    hard: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = hard
    bad = tmp_path / "labels.jsonl"
    bad.write_text('{"transaction_id": 3}\n')
    argv = ["train", "--model", "anomaly", "--data", str(data), "--out", str(tmp_path / "a")]
    assert main([*argv, "--labels", str(bad)]) != 0
    assert f"{bad}, line 1: missing fields" in capsys.readouterr().err
