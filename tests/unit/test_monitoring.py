"""The reference profile logged with a model, and drift measured against it (PSI)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from finrisk.monitoring import drift, profile


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3.0 + shift, 1.0, n),
            "constant": np.ones(n),
            "count": rng.poisson(2, n).astype(float),
        }
    )


def test_a_profile_is_json_with_deciles_shares_and_missing() -> None:
    rng = np.random.default_rng(0)
    frame = _frame(rng, 5_000)
    frame.loc[:99, "amount"] = np.nan
    scores = rng.random(2_000)
    made = profile.reference_profile(
        frame, scores, categories={"category": ["a", "b", "b", "c"] * 1_250}, threshold=0.9
    )
    assert json.loads(json.dumps(made)) == made  # data, nothing else
    amount = made["features"]["amount"]
    assert len(amount["edges"]) == profile.BINS - 1 and abs(sum(amount["shares"]) - 1) < 1e-9
    assert abs(amount["missing"] - 100 / 5_000) < 1e-12
    assert made["features"]["constant"] == {"edges": [1.0], "shares": [1.0, 0.0], "missing": 0.0}
    assert made["categories"]["category"] == {"a": 0.25, "b": 0.5, "c": 0.25}
    assert abs(made["alert_rate"] - float(np.mean(scores >= 0.9))) < 1e-12
    assert made["band_mix"] is None and made["rows"] == made["profiled_rows"] == 5_000


def test_the_risk_models_profile_has_its_band_mix_and_high_share_as_alert_rate() -> None:
    frame = _frame(np.random.default_rng(1), 100)
    made = profile.reference_profile(
        frame, np.linspace(0, 1, 4), bands=["LOW", "LOW", "HIGH", "MEDIUM"]
    )
    assert made["band_mix"] == {"HIGH": 0.25, "LOW": 0.5, "MEDIUM": 0.25}
    assert made["alert_rate"] == 0.25


def test_profiling_a_large_table_samples_the_same_rows_for_the_same_seed() -> None:
    rows = np.arange(profile.MAX_ROWS + 10)
    assert len(profile.sample_rows(rows, 3)) == profile.MAX_ROWS
    assert np.array_equal(profile.sample_rows(rows, 3), profile.sample_rows(rows, 3))
    assert not np.array_equal(profile.sample_rows(rows, 3), profile.sample_rows(rows, 4))


def test_only_the_training_rows_are_profiled() -> None:
    frame = pd.DataFrame({"amount": np.r_[np.ones(50), np.full(50, 9.0)]})
    train = np.r_[np.ones(50, dtype=bool), np.zeros(50, dtype=bool)]
    made = profile.reference_profile(
        frame, [0.5], rows=train, categories={"category": ["a"] * 50 + ["b"] * 50}
    )
    assert made["features"]["amount"]["edges"] == [1.0] and made["rows"] == 50
    assert made["categories"]["category"] == {"a": 1.0}


def test_psi_is_small_without_drift_and_large_with_it() -> None:
    rng = np.random.default_rng(2)
    made = profile.reference_profile(_frame(rng, 20_000), rng.random(1_000))
    same, shifted = _frame(rng, 5_000), _frame(rng, 5_000, shift=1.0)
    reference = made["features"]["amount"]
    assert drift.level(drift.numeric_psi(reference, same["amount"])) == "stable"
    assert drift.level(drift.numeric_psi(reference, shifted["amount"])) == "major"
    # A feature that never varied stays stable while it does not vary, and shifts when it does.
    constant = made["features"]["constant"]
    assert drift.numeric_psi(constant, np.ones(50)) == 0.0
    assert drift.level(drift.numeric_psi(constant, np.full(50, 2.0))) == "major"
    assert drift.numeric_psi(reference, [np.nan]) is None and drift.level(None) == "unknown"


def test_categorical_psi_counts_a_category_never_seen() -> None:
    reference = {"a": 0.5, "b": 0.5}
    assert drift.categorical_psi(reference, ["a", "b"] * 50) == 0.0
    assert drift.level(drift.categorical_psi(reference, ["a"] * 50 + ["new"] * 50)) == "major"
