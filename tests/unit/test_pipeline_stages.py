"""The retraining stages behind the components (finrisk.retraining), without KFP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finrisk import features
from finrisk.compiled import compile_model
from finrisk.errors import FinriskError
from finrisk.evaluation.runs import AnomalyRun, RiskRun
from finrisk.features.snapshots import HISTORY_CUTOFF
from finrisk.gate import DETECTOR, RISK
from finrisk.retraining import data, evaluation, training
from finrisk.retraining.dataset import (
    Dataset,
    fingerprint,
    read_dataset,
    user_labels,
    write_dataset,
)
from finrisk.schema import AMOUNT, IS_FRAUD, IS_RISKY, TRANSACTION_ID, USER_ID

FAST_DETECTOR = {"max_iter": 40, "min_positives": 5}
FAST_RISK = {"max_iter": 40}


def _options(params: dict[str, object]) -> training.TrainingOptions:
    return training.TrainingOptions(params=dict(params))


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("stages")
    paths = {
        "raw": root / "raw",
        "dataset": root / "dataset",
        "tx": root / "tx.parquet",
        "users": root / "users.parquet",
        "det_model": root / "det.joblib",
        "det_run": root / "det.run",
        "risk_model": root / "risk.joblib",
        "risk_run": root / "risk.run",
    }
    data.ingest(data.IngestRequest(synthetic_users=150, synthetic_days=45, seed=0), paths["raw"])
    assert data.validate(paths["raw"], paths["dataset"]).passed
    training.build_features(paths["dataset"], paths["tx"], paths["users"])
    training.train_detector(
        paths["dataset"], paths["det_model"], paths["det_run"], _options(FAST_DETECTOR)
    )
    training.train_risk(paths["users"], paths["risk_model"], paths["risk_run"], _options(FAST_RISK))
    return paths


def test_synthetic_ingest_writes_a_dataset_folder(stages: dict[str, Path]) -> None:
    raw = read_dataset(stages["raw"])
    assert raw.manifest["source"] == "synthetic" and raw.manifest["rows"] == len(raw.transactions)
    assert raw.users is not None and set(raw.users[USER_ID]) >= set(raw.transactions[USER_ID])


def test_uri_ingest_reads_csv_files_as_text(stages: dict[str, Path], tmp_path: Path) -> None:
    source = read_dataset(stages["dataset"])
    source.transactions.head(200).to_csv(tmp_path / "tx.csv", index=False)
    assert source.users is not None
    source.users.to_csv(tmp_path / "users.csv", index=False)
    request = data.IngestRequest(
        source="uri", uri=str(tmp_path / "tx.csv"), users_uri=f"file://{tmp_path / 'users.csv'}"
    )
    manifest = data.ingest(request, tmp_path / "raw")
    raw = read_dataset(tmp_path / "raw")
    assert manifest["rows"] == 200 and raw.transactions[AMOUNT].dtype == object
    outcome = data.validate(tmp_path / "raw", tmp_path / "clean")
    assert outcome.passed, outcome.summary
    clean = read_dataset(tmp_path / "clean").transactions
    assert clean[AMOUNT].dtype == np.float64 and len(clean) == 200


def test_uri_ingest_of_a_dataset_folder(stages: dict[str, Path], tmp_path: Path) -> None:
    request = data.IngestRequest(source="uri", uri=str(stages["dataset"]))
    data.ingest(request, tmp_path / "raw")
    assert read_dataset(tmp_path / "raw").manifest["uri"] == str(stages["dataset"])


@pytest.mark.parametrize(
    ("request_kwargs", "message"),
    [
        ({"source": "kafka"}, "data source 'kafka' is unknown"),
        ({"source": "uri"}, "needs data_uri"),
        ({"source": "bigquery"}, "needs bigquery_table"),
    ],
)
def test_bad_ingest_requests(request_kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(FinriskError, match=message):
        data.IngestRequest(**request_kwargs)  # type: ignore[arg-type]


def test_missing_uri_and_bad_table_name(tmp_path: Path) -> None:
    with pytest.raises(FinriskError, match="does not exist"):
        data.ingest(data.IngestRequest(source="uri", uri=str(tmp_path / "nope.csv")), tmp_path)
    with pytest.raises(FinriskError, match=r"must be project\.dataset\.table"):
        data.ingest(data.IngestRequest(source="bigquery", bigquery_table="just_a_table"), tmp_path)


def test_validation_failure_names_the_problem(stages: dict[str, Path], tmp_path: Path) -> None:
    raw = read_dataset(stages["raw"])
    raw.transactions.loc[raw.transactions.index[:3], AMOUNT] = -5.0
    write_dataset(tmp_path / "raw", raw)
    outcome = data.validate(tmp_path / "raw", tmp_path / "out")
    assert not outcome.passed and outcome.fingerprint == ""
    assert "non_positive_amount [amount]" in outcome.summary
    assert (tmp_path / "out").is_dir()  # the declared output exists even on failure
    data.write_report(outcome, tmp_path / "report.md", tmp_path / "report.json")
    assert "# Data validation FAILED" in (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "report.json").read_text())["passed"] is False


def test_validation_needs_labelled_users(stages: dict[str, Path], tmp_path: Path) -> None:
    raw = read_dataset(stages["raw"])
    write_dataset(tmp_path / "no-users", Dataset(raw.transactions, None, {}))
    outcome = data.validate(tmp_path / "no-users", tmp_path / "o1")
    assert not outcome.passed and "no users table" in outcome.summary
    assert raw.users is not None
    write_dataset(tmp_path / "few-users", Dataset(raw.transactions, raw.users.iloc[1:], {}))
    outcome = data.validate(tmp_path / "few-users", tmp_path / "o2")
    assert not outcome.passed and "missing from the users table" in outcome.summary


def test_fingerprint_ignores_row_order_but_not_values(stages: dict[str, Path]) -> None:
    ds = read_dataset(stages["dataset"])
    base = fingerprint(ds.transactions, ds.users)
    shuffled = ds.transactions.sample(frac=1.0, random_state=1)
    assert fingerprint(shuffled, ds.users) == base
    changed = ds.transactions.copy()
    changed.loc[changed.index[0], AMOUNT] += 0.01
    assert fingerprint(changed, ds.users) != base
    assert fingerprint(ds.transactions, None) != base
    assert ds.manifest["fingerprint"] == base


def test_feature_tables(stages: dict[str, Path]) -> None:
    tx = pd.read_parquet(stages["tx"])
    ds = read_dataset(stages["dataset"])
    assert list(tx[TRANSACTION_ID]) == list(ds.transactions[TRANSACTION_ID])
    assert set(features.TRANSACTION_FEATURES) <= set(tx.columns) and IS_FRAUD in tx.columns
    users, labels = training.read_user_features(stages["users"])
    assert list(users.columns) == list(features.USER_FEATURES)
    assert set(np.unique(labels)) == {0, 1}
    assert users.index.is_unique and set(users.index) == set(ds.transactions[USER_ID])
    # Point-in-time snapshots ride along for training; the whole-history rows stay one a user.
    snapshots = training.read_history_snapshots(stages["users"])
    assert snapshots is not None
    assert list(snapshots.columns) == [*features.USER_FEATURES, HISTORY_CUTOFF]
    assert set(snapshots[HISTORY_CUTOFF]) == {7, 14, 30}  # a 45-day stream
    assert set(snapshots.index) <= set(users.index) and len(snapshots) > len(users)
    run = training.load_run(stages["risk_run"], training.RiskRun)
    assert run.facts["history_snapshot_rows"] == (~snapshots.index.isin(run.test_users)).sum() > 0
    assert set(run.facts["short_histories"]) == {"7", "14", "30"}


def test_user_labels_names_missing_users() -> None:
    users = pd.DataFrame({USER_ID: ["a"], IS_RISKY: [1]})
    with pytest.raises(FinriskError, match="1 users with transactions have no 'is_risky' label"):
        user_labels(users, pd.Index(["a", "b"]))


def test_unknown_model_parameter_is_named(stages: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(
        FinriskError,
        match=r"unknown TransactionAnomalyDetector parameter\(s\) "
        r"\['trees'\]",
    ):
        training.train_detector(
            stages["dataset"], tmp_path / "m", tmp_path / "r", _options({"trees": 3})
        )


def test_training_profiles_the_data_each_model_was_trained_on(stages: dict[str, Path]) -> None:
    detector = training.load_run(stages["det_run"], AnomalyRun).ours
    risk = training.load_run(stages["risk_run"], RiskRun).ours
    assert list(detector.profile_["features"]) == list(features.TRANSACTION_FEATURES)
    assert set(detector.profile_["categories"]) == {"category", "channel"}
    assert 0 <= detector.profile_["alert_rate"] <= 1
    assert list(risk.profile_["features"]) == list(features.USER_FEATURES)
    assert abs(sum(risk.profile_["band_mix"].values()) - 1) < 1e-9


def test_the_pipelines_risk_params_set_the_band_edges(
    stages: dict[str, Path], tmp_path: Path
) -> None:
    # Both edges as risk_params (the pipeline's parameter): a duplicate keyword before.
    run = training.train_risk(
        stages["users"],
        tmp_path / "m",
        tmp_path / "r",
        _options({**FAST_RISK, "band_low": 0.2, "band_high": 0.5}),
    )
    assert (run.bands.low, run.bands.high) == (0.2, 0.5)
    assert (run.ours.band_low, run.baseline.band_high) == (0.2, 0.5)
    with pytest.raises(FinriskError, match="'random_state' is set by the run's seed"):
        training.train_risk(
            stages["users"], tmp_path / "m", tmp_path / "r", _options({"random_state": 3})
        )
    with pytest.raises(FinriskError, match="risk band edges must satisfy low <= high"):
        training.train_risk(
            stages["users"], tmp_path / "m", tmp_path / "r", _options({"band_low": 0.9})
        )


def test_evaluation_compares_with_the_champion_on_the_same_rows(
    stages: dict[str, Path], tmp_path: Path
) -> None:
    det = training.load_run(stages["det_run"], AnomalyRun)
    risk = training.load_run(stages["risk_run"], RiskRun)
    champions = {
        DETECTOR: evaluation.ChampionModel(compile_model(det.ours), "4"),
        RISK: evaluation.ChampionModel(compile_model(risk.ours), "2"),
    }
    result = evaluation.evaluate(
        det,
        risk,
        tmp_path,
        transaction_features_path=stages["tx"],
        user_features_path=stages["users"],
        champions=champions,
    )
    # The same model scored on the same rows gives the same metrics.
    for kind in (DETECTOR, RISK):
        champion = result.champion[kind]
        assert champion["source"] == evaluation.RESCORED
        for name, value in result.challenger[kind].items():
            assert champion[name] == pytest.approx(value)
    assert result.reports[DETECTOR].read_text().startswith("<!doctype html>")
    flat = evaluation.flat_metrics(result)
    assert flat["challenger_detector_pr_auc"] == result.challenger[DETECTOR]["pr_auc"]
    assert "champion_risk_roc_auc" in flat
    summary = evaluation.summary_markdown(result)
    assert "Champion: version 4, rescored" in summary
    curves = evaluation.classification_data(det, risk)
    assert det.test_labels is not None
    assert sum(map(sum, curves[DETECTOR].matrix)) == len(det.test_labels)
    assert sum(map(sum, curves[RISK].matrix)) == len(risk.test_labels)
    assert curves[DETECTOR].classes == ["legitimate", "fraud"]


def test_unscorable_champion_falls_back_to_recorded_metrics(
    stages: dict[str, Path], tmp_path: Path
) -> None:
    det = training.load_run(stages["det_run"], AnomalyRun)
    risk = training.load_run(stages["risk_run"], RiskRun)
    tx = pd.read_parquet(stages["tx"]).drop(columns=[features.TRANSACTION_FEATURES[0]])
    tx.to_parquet(tmp_path / "tx.parquet")
    compiled = compile_model(det.ours)
    recorded = evaluation.ChampionModel(compiled, "4", {"pr_auc": 0.42, "roc_auc": 0.9})
    result = evaluation.champion_detector_metrics(recorded, det, tx)
    assert result["pr_auc"] == 0.42 and result["source"].startswith(evaluation.RECORDED)
    with pytest.raises(FinriskError, match="cannot be scored on this data"):
        evaluation.champion_detector_metrics(evaluation.ChampionModel(compiled, "4"), det, tx)
    assert risk.test_labels.size > 0


def test_roc_points_and_confusion_matrix() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 5000)
    scores = rng.random(5000)
    fpr, tpr, thresholds = evaluation.roc_points(labels, scores, max_points=50)
    assert len(fpr) <= 50 and fpr[0] == 0.0 and fpr[-1] == 1.0
    assert all(np.isfinite(thresholds)) and fpr == sorted(fpr) and tpr == sorted(tpr)
    matrix = evaluation.confusion_matrix([0, 0, 1, 1, 1], [0.1, 0.8, 0.9, 0.2, 0.7], 0.5)
    assert matrix == [[1, 1], [1, 2]]
