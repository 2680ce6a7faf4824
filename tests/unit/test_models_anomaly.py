"""Anomaly detectors on small hand-made feature frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finrisk.errors import FinriskError
from finrisk.evaluation.metrics import roc_auc
from finrisk.models import (
    SeedIsolationForestDetector,
    TransactionAnomalyDetector,
    load_model,
    save_model,
    seed_transaction_frame,
)
from finrisk.models.anomaly import ISOLATION, PROBABILITY


def _frame(n: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Frauds (3%) are far out on 'spike' and slightly out on 'novelty'; 'noise' is noise."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.03).astype(int)
    x = pd.DataFrame(
        {
            "spike": rng.normal(0, 1, n) + 4 * y,
            "novelty": rng.normal(0, 1, n) + 1 * y,
            "noise": rng.normal(0, 1, n),
        }
    )
    return x, y


def test_supervised_detector_learns_the_fraud_signal() -> None:
    x, y = _frame()
    model = TransactionAnomalyDetector(max_iter=50).fit(x.iloc[:1000], y[:1000])
    assert model.score_kind_ == PROBABILITY
    assert model.metadata_["mode"] == "supervised"
    scores = model.anomaly_score(x.iloc[1000:])
    assert scores.min() >= 0 and scores.max() <= 1
    assert roc_auc(y[1000:], scores) > 0.9


def test_detector_without_labels_falls_back_to_isolation_forest() -> None:
    x, y = _frame()
    model = TransactionAnomalyDetector(n_estimators=50).fit(x.iloc[:1000])
    assert model.score_kind_ == ISOLATION
    assert model.metadata_["mode"] == "unsupervised"
    assert model.metadata_["threshold_strategy"] == "alert_rate"
    scores = model.anomaly_score(x.iloc[1000:])
    assert scores.min() > 0 and scores.max() <= 1
    # Frauds are outliers on 'spike', so even without labels they rank high.
    assert roc_auc(y[1000:], scores) > 0.8
    flags = model.predict(x.iloc[:1000])
    assert 0 < flags.mean() <= 0.02  # ~1% alert rate on the rows it chose the threshold on


def test_too_few_labelled_frauds_fall_back_to_unsupervised() -> None:
    x, _ = _frame(300)
    y = np.zeros(300, dtype=int)
    y[:3] = 1
    model = TransactionAnomalyDetector(min_positives=20, n_estimators=20).fit(x, y)
    assert model.metadata_["mode"] == "unsupervised"


def test_threshold_chosen_on_validation_rows() -> None:
    x, y = _frame()
    model = TransactionAnomalyDetector(max_iter=30).fit(x.iloc[:1000], y[:1000])
    threshold = model.choose_threshold(x.iloc[1000:], y[1000:])
    assert model.threshold_ == threshold == model.metadata_["threshold"]
    assert model.metadata_["threshold_strategy"] == "best_f1"
    assert model.metadata_["threshold_rows"] == 500
    fpr_model = TransactionAnomalyDetector(max_iter=30, threshold_strategy="target_fpr").fit(
        x.iloc[:1000], y[:1000]
    )
    fpr_model.choose_threshold(x.iloc[1000:], y[1000:])
    negatives = x.iloc[1000:][y[1000:] == 0]
    assert fpr_model.predict(negatives).mean() <= 0.01


@pytest.mark.parametrize("labelled", [True, False])
def test_round_trip_gives_identical_scores(tmp_path: Path, labelled: bool) -> None:
    x, y = _frame(600)
    model = TransactionAnomalyDetector(max_iter=30, n_estimators=30)
    model.fit(x, y if labelled else None)
    path = save_model(model, tmp_path / "detector.joblib")
    loaded = load_model(path)
    assert np.array_equal(loaded.anomaly_score(x), model.anomaly_score(x))
    assert loaded.threshold_ == model.threshold_
    assert loaded.metadata_ == model.metadata_
    assert loaded.feature_names_ == ("spike", "novelty", "noise")


def test_seed_detector_uses_amount_hour_balance() -> None:
    rng = np.random.default_rng(1)
    tx = pd.DataFrame(
        {
            "timestamp": pd.date_range("2025-01-01", periods=200, freq="37min", tz="UTC"),
            "amount": rng.lognormal(3, 1, 200),
            "balance_after": rng.normal(1000, 300, 200),
            "merchant": "m",
        }
    )
    frame = seed_transaction_frame(tx)
    assert list(frame.columns) == ["amount", "hour", "balance_after"]
    assert frame["hour"].tolist() == tx["timestamp"].dt.hour.tolist()
    model = SeedIsolationForestDetector(n_estimators=20).fit(frame)
    scores = model.anomaly_score(frame)
    assert scores.shape == (200,)
    assert scores.min() > 0
    assert scores.max() <= 1


def test_fit_is_repeatable() -> None:
    x, y = _frame(500)
    a = TransactionAnomalyDetector(max_iter=20).fit(x, y).anomaly_score(x)
    b = TransactionAnomalyDetector(max_iter=20).fit(x, y).anomaly_score(x)
    assert np.array_equal(a, b)


def test_missing_or_bad_feature_is_named() -> None:
    x, _ = _frame(300)
    model = TransactionAnomalyDetector(n_estimators=10).fit(x)
    with pytest.raises(FinriskError, match="novelty"):
        model.anomaly_score(x.drop(columns="novelty"))
    broken = x.copy()
    broken.loc[5, "noise"] = np.nan
    with pytest.raises(FinriskError, match="noise"):
        model.anomaly_score(broken)


def test_scoring_before_fit_is_a_user_error() -> None:
    x, _ = _frame(10)
    with pytest.raises(FinriskError, match="not trained"):
        TransactionAnomalyDetector().anomaly_score(x)


def test_load_model_refuses_other_files(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.joblib"
    bogus.write_text("not a pickle")
    with pytest.raises(FinriskError):
        load_model(bogus)
    with pytest.raises(FinriskError):
        load_model(tmp_path / "absent.joblib")
