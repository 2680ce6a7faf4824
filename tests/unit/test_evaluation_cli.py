"""`finrisk train` / `finrisk evaluate` on small generated data: files, metrics, round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finrisk import features
from finrisk.cli import main
from finrisk.evaluation.outputs import BASELINE_FILE, METRICS_FILE, MODEL_FILE, REPORT_FILE
from finrisk.io import write_dataset
from finrisk.models import load_model
from finrisk.synthetic import generate


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Fraud episodes 5x the default rate so that a small set has frauds in every period.
    tx, users, manifest = generate(120, 40, 11, fraud_episode_rate=0.01)
    out = tmp_path_factory.mktemp("data") / "ds"
    write_dataset(out, tx, users, manifest)
    return out


def _expected_files(out: Path) -> None:
    for name in (MODEL_FILE, BASELINE_FILE, METRICS_FILE, REPORT_FILE):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "plots").iterdir()) == [
        "calibration.png",
        "pr_curve.png",
        "roc_curve.png",
        "score_distribution.png",
    ]
    report = (out / REPORT_FILE).read_text()
    assert report.count("data:image/png;base64,") == 4
    assert "seed-style baseline" in report


def test_train_anomaly_writes_model_metrics_plots_report(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "anomaly"
    assert main(["train", "--model", "anomaly", "--data", str(dataset), "--out", str(out)]) == 0
    _expected_files(out)
    printed = json.loads(capsys.readouterr().out)
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["split"]["kind"] == "time"
    assert set(metrics["models"]) == {"ours", "baseline", "ours_unsupervised"}
    assert printed["summary"]["pr_auc"]["ours"] == metrics["models"]["ours"]["pr_auc"]
    model = load_model(out / MODEL_FILE)
    assert model.feature_names_ == features.TRANSACTION_FEATURES
    assert model.threshold_ == metrics["models"]["ours"]["threshold"]
    baseline = load_model(out / BASELINE_FILE)
    assert baseline.feature_names_ == ("amount", "hour", "balance_after")


def test_train_risk_from_dataset_directory(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "risk"
    code = main(
        [
            "train",
            "--model",
            "risk",
            "--data",
            str(dataset),
            "--out",
            str(out),
            "--band-low",
            "0.3",
            "--band-high",
            "0.6",
        ]
    )
    assert code == 0
    _expected_files(out)
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["bands"] == {"low": 0.3, "high": 0.6}
    confusion = metrics["models"]["ours"]["band_confusion"]
    assert sum(c["n"] for c in confusion.values()) == metrics["models"]["ours"]["n"]
    model = load_model(out / MODEL_FILE)
    assert model.feature_names_ == features.USER_FEATURES
    assert load_model(out / BASELINE_FILE).feature_names_ == features.SEED_USER_FEATURES
    assert "reasons" in (out / REPORT_FILE).read_text()


def test_train_risk_from_own_user_table_with_schema(tmp_path: Path, dataset: Path) -> None:
    tx = pd.read_parquet(dataset / "transactions.parquet")
    users = pd.read_parquet(dataset / "users.parquet")
    table = features.user_features(tx)[list(features.SEED_USER_FEATURES)]
    table = table.join(users.set_index("user_id")["is_risky"]).reset_index()
    table = table.rename(columns={"user_id": "customer", "is_risky": "defaulted"})
    table["segment"] = "retail"  # low-cardinality text column: encoded, a feature
    csv = tmp_path / "users.csv"
    table.to_csv(csv, index=False)
    schema = tmp_path / "schema.yaml"
    schema.write_text("users:\n  user_id_column: customer\n  label_column: defaulted\n")
    out = tmp_path / "own"
    code = main(
        ["train", "--model", "risk", "--data", str(csv), "--schema", str(schema), "--out", str(out)]
    )
    assert code == 0
    model = load_model(out / MODEL_FILE)
    assert model.feature_names_ == (*features.SEED_USER_FEATURES, "segment")
    assert model.categories_ == {"segment": ("retail",)}
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics["ignored_columns"] is None
    assert metrics["categorical_columns"] == "segment"


def test_train_anomaly_without_labels_runs_unsupervised(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tx = pd.read_parquet(dataset / "transactions.parquet").drop(columns=["is_fraud", "fraud_type"])
    file = tmp_path / "unlabelled.parquet"
    tx.to_parquet(file)
    out = tmp_path / "unlabelled"
    assert main(["train", "--model", "anomaly", "--data", str(file), "--out", str(out)]) == 0
    model = load_model(out / MODEL_FILE)
    assert model.metadata_["mode"] == "unsupervised"
    scores = model.anomaly_score(features.transaction_features(tx))
    assert ((scores > 0) & (scores <= 1)).all()
    assert (out / "plots" / "score_distribution.png").is_file()
    assert "note" in json.loads(capsys.readouterr().out)["summary"]


@pytest.mark.parametrize(
    "extra",
    [["--band-low", "0.8", "--band-high", "0.2"], ["--band-high", "1.5"], ["--reasons", "0"]],
)
def test_bad_flags_are_reported_not_raised(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    code = main(
        ["train", "--model", "risk", "--data", str(dataset), "--out", str(tmp_path / "x"), *extra]
    )
    assert code == 2
    assert "finrisk: error:" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_missing_data_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "train",
            "--model",
            "anomaly",
            "--data",
            str(tmp_path / "nope.csv"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "nope.csv" in capsys.readouterr().err


def test_risk_table_with_bad_feature_value_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(40)],
            "is_risky": np.r_[np.ones(10, int), np.zeros(30, int)],
            "income": rng.normal(size=40).astype(object),
        }
    )
    table.loc[7, "income"] = "lots"
    csv = tmp_path / "users.csv"
    table.to_csv(csv, index=False)
    code = main(["train", "--model", "risk", "--data", str(csv), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "'income'" in err and "u7" in err


def test_evaluate_prints_both_models_side_by_side(
    dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--data", str(dataset)]) == 0
    result = json.loads(capsys.readouterr().out)
    for task in ("anomaly", "risk"):
        assert set(result[task]["roc_auc"]) >= {"ours", "baseline"}
    ratio = result["anomaly"]["pr_auc"]["ours"] / result["anomaly"]["pr_auc"]["baseline"]
    assert result["targets"]["detector_pr_auc_ratio"] == pytest.approx(ratio)
    gain = result["risk"]["roc_auc"]["ours"] - result["risk"]["roc_auc"]["baseline"]
    assert result["targets"]["risk_roc_auc_gain"] == pytest.approx(gain)
    # Held-out users' histories cut short: what the bridge's early risk bands are worth.
    short = result["risk_short_histories"]
    assert short, "the dataset's histories go beyond the first cut-off"
    for figures in short.values():
        assert set(figures["roc_auc"]) == {"ours", "baseline"}
        assert sum(figures["ours_band_shares"].values()) == pytest.approx(1.0, abs=0.01)
