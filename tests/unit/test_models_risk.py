"""Risk classifiers: probabilities, bands, reasons and round-trips on hand-made users."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finrisk.errors import FinriskError
from finrisk.evaluation.metrics import roc_auc
from finrisk.models import RiskModel, SeedLogisticRiskModel, load_model, save_model
from finrisk.models.bands import BAND_NAMES


def _users(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Risk rises with 'overdraft_freq' and falls with 'income'; 'noise' carries nothing."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "income": rng.lognormal(8, 0.5, n),
            "overdraft_freq": rng.beta(1, 5, n),
            "noise": rng.normal(0, 1, n),
        },
        index=pd.Index([f"u{i:04d}" for i in range(n)], name="user_id"),
    )
    logit = -1.0 + 8 * (x["overdraft_freq"] - 0.17) - 1.5 * (np.log(x["income"]) - 8)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y.to_numpy()


@pytest.mark.parametrize("estimator", ["hgb", "logistic"])
def test_risk_model_ranks_and_bands(estimator: str) -> None:
    x, y = _users()
    model = RiskModel(estimator=estimator, cv=3, max_iter=50).fit(x.iloc[:400], y[:400])
    p = model.risk_probability(x.iloc[400:])
    assert p.min() >= 0 and p.max() <= 1
    assert roc_auc(y[400:], p) > 0.7
    bands = model.predict_band(x.iloc[400:])
    assert set(bands) <= set(BAND_NAMES)
    assert model.metadata_["bands"] == {"low": 0.40, "high": 0.70}
    assert model.metadata_["feature_names"] == ["income", "overdraft_freq", "noise"]


def test_bands_follow_the_probability_and_custom_edges() -> None:
    x, y = _users()
    model = RiskModel(cv=3, max_iter=30, band_low=0.2, band_high=0.3).fit(x, y)
    p = model.risk_probability(x)
    bands = model.predict_band(x)
    assert (bands[p < 0.2] == "LOW").all()
    assert (bands[(p >= 0.2) & (p <= 0.3)] == "MEDIUM").all()
    assert (bands[p > 0.3] == "HIGH").all()


def test_invalid_band_edges_rejected_at_fit() -> None:
    x, y = _users(100)
    with pytest.raises(FinriskError):
        SeedLogisticRiskModel(band_low=0.8, band_high=0.3).fit(x, y)


def test_reasons_are_deterministic_and_name_real_features() -> None:
    x, y = _users()
    model = RiskModel(estimator="logistic", cv=3).fit(x, y)
    first = model.explain(x.iloc[:50], k=2)
    second = model.explain(x.iloc[:50], k=2)
    assert first == second
    assert all(len(row) <= 2 for row in first)
    assert {r.feature for row in first for r in row} <= set(x.columns)
    # A user with an extreme overdraft frequency: that is the top reason, raising the risk.
    extreme = x.iloc[[0]].copy()
    extreme["overdraft_freq"] = 0.95
    extreme["income"] = model.reference_[0]
    extreme["noise"] = model.reference_[2]
    top = model.explain(extreme, k=3)[0]
    assert top[0].feature == "overdraft_freq"
    assert top[0].contribution > 0
    assert top[0].reference == pytest.approx(float(np.median(x["overdraft_freq"])))
    # Features at their median contribute nothing and are left out.
    assert [r.feature for r in top] == ["overdraft_freq"]


def test_assess_returns_probability_band_reasons_per_user() -> None:
    x, y = _users(300)
    model = SeedLogisticRiskModel().fit(x, y)
    table = model.assess(x.iloc[:5], k=1)
    assert list(table.columns) == ["probability", "band", "reasons"]
    assert table.index.equals(x.index[:5])
    assert all(len(r) <= 1 for r in table["reasons"])


@pytest.mark.parametrize(
    "make", [lambda: SeedLogisticRiskModel(), lambda: RiskModel(cv=3, max_iter=30)]
)
def test_round_trip_gives_identical_outputs(tmp_path: Path, make: object) -> None:
    x, y = _users(300)
    model = make().fit(x, y)  # type: ignore[operator]
    loaded = load_model(save_model(model, tmp_path / "risk.joblib"))
    assert np.array_equal(loaded.risk_probability(x), model.risk_probability(x))
    assert loaded.explain(x.iloc[:20]) == model.explain(x.iloc[:20])
    assert loaded.metadata_ == model.metadata_


def test_seed_model_uses_only_its_named_features() -> None:
    x, y = _users(200)
    model = SeedLogisticRiskModel(feature_names=["income"]).fit(x, y)
    assert model.feature_names_ == ("income",)
    # Other columns may be absent when scoring.
    assert model.risk_probability(x[["income"]]).shape == (200,)


def test_single_class_label_is_a_user_error() -> None:
    x, _ = _users(50)
    with pytest.raises(FinriskError, match="single class"):
        RiskModel().fit(x, np.zeros(50, dtype=int))


def test_near_ties_from_float_noise_keep_the_feature_order() -> None:
    from finrisk.models.reasons import top_reasons

    # The same row scored in two batches: the last bits of two equal-weight reasons differ.
    noisy = np.array([[0.1, 0.3, 0.3 + 1e-16 * 2, 0.05], [0.1, 0.3 + 1e-16 * 2, 0.3, 0.05]])
    values = np.zeros_like(noisy)
    reasons = top_reasons(noisy, values, np.zeros(4), ["a", "b", "c", "d"], k=2)
    assert [[r.feature for r in row] for row in reasons] == [["b", "c"], ["b", "c"]]
    # A real difference still ranks first.
    clear = top_reasons(np.array([[0.1, 0.3, 0.3001, 0.0]]), values[:1], np.zeros(4), "abcd", 2)
    assert [r.feature for r in clear[0]] == ["c", "b"]
