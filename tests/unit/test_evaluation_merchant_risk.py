"""The detector reads the merchant risk features when a run has label records, and is
compared with itself without them."""

from __future__ import annotations

import pandas as pd
import pytest

from finrisk.evaluation.runs import OURS, OURS_NO_MERCHANT, run_anomaly
from finrisk.features.definitions import SERVED_MERCHANT_FEATURES, TRANSACTION_FEATURES
from finrisk.synthetic import generate
from finrisk.synthetic.labels import synthetic_labels


@pytest.fixture(scope="module")
def hard() -> pd.DataFrame:
    transactions, _, _ = generate(users=300, days=60, seed=8, scenario="hard")
    return transactions


def test_with_label_records_ours_reads_merchant_risk_and_is_compared_without(
    hard: pd.DataFrame,
) -> None:
    run = run_anomaly(hard, seed=8, label_delay_days=7.0, label_records=synthetic_labels(hard, 8))
    assert run.ours.feature_names_ == (*TRANSACTION_FEATURES, *SERVED_MERCHANT_FEATURES)
    assert set(run.test_scores) >= {OURS, OURS_NO_MERCHANT}
    assert run.facts["merchant_features"] is True


def test_without_label_records_ours_reads_the_transaction_features_only(
    hard: pd.DataFrame,
) -> None:
    run = run_anomaly(hard, seed=8, label_delay_days=7.0)
    assert tuple(run.ours.feature_names_) == TRANSACTION_FEATURES
    assert OURS_NO_MERCHANT not in run.test_scores
