"""Fraud-team metrics on hand-made inputs: the daily alert budget, the cost-weighted loss, the
label-delay split and the raw-fields baseline's inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finrisk.errors import FinriskError
from finrisk.evaluation.compare import daily_alert_budget
from finrisk.evaluation.metrics import (
    ALERT_REVIEW_COST,
    FALSE_ALERT_COST,
    MISSED_FRAUD_FEE,
    cost_weighted_loss,
    daily_alerts,
    fraud_team_metrics,
    precision_within_daily_budget,
)
from finrisk.evaluation.split import time_split
from finrisk.models.raw_fields import RAW_FIELDS, RawFieldsBaseline, raw_field_frame


def test_daily_alerts_take_the_top_k_of_each_day() -> None:
    days = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    scores = np.array([0.1, 0.9, 0.5, 0.2, 0.8, 0.3, 0.95, 0.0])
    alerts = daily_alerts(scores, days, 2)
    # Day 0: rows 1, 2; day 1: rows 6, 4 (not day 0's 0.5 against day 1's 0.3); day 2: its one.
    assert alerts.tolist() == [False, True, True, False, True, False, True, True]


def test_daily_alert_ties_go_to_the_earlier_row() -> None:
    alerts = daily_alerts(np.array([0.5, 0.5, 0.5]), np.array([3, 3, 3]), 2)
    assert alerts.tolist() == [True, True, False]


def test_precision_within_the_budget_counts_every_days_alerts() -> None:
    days = np.array([0, 0, 0, 1, 1, 1])
    y = np.array([1, 0, 0, 0, 0, 1])
    scores = np.array([0.9, 0.8, 0.1, 0.7, 0.6, 0.5])
    # Budget 1: day 0 alerts row 0 (fraud), day 1 row 3 (legitimate): 1 of 2.
    assert precision_within_daily_budget(y, scores, days, 1) == 0.5
    # Budget 3: every row: 2 of 6.
    assert precision_within_daily_budget(y, scores, days, 3) == pytest.approx(2 / 6)
    with pytest.raises(FinriskError, match="budget"):
        daily_alerts(scores, days, 0)


def test_cost_weighted_loss_against_hand_counted_costs() -> None:
    y = np.array([1, 1, 0, 0])
    amount = np.array([100.0, 40.0, 10.0, 10.0])
    alerts = np.array([True, False, True, False])
    # One alert on a fraud (review), one on a legitimate row (review + friction), the second
    # fraud missed (amount + fee); relative to missing both frauds.
    cost = 2 * ALERT_REVIEW_COST + FALSE_ALERT_COST + 40 + MISSED_FRAUD_FEE
    no_alerts = 100 + 40 + 2 * MISSED_FRAUD_FEE
    assert cost_weighted_loss(y, alerts, amount) == pytest.approx(cost / no_alerts)
    assert cost_weighted_loss(y, np.zeros(4, bool), amount) == pytest.approx(1.0)
    with pytest.raises(FinriskError, match="at least one fraud"):
        cost_weighted_loss(np.zeros(4, int), alerts, amount)


def test_fraud_team_metrics_read_the_daily_budget() -> None:
    y = np.array([1, 0, 0, 1])
    scores = np.array([0.9, 0.1, 0.8, 0.2])
    days = np.array([0, 0, 1, 1])
    out = fraud_team_metrics(y, scores, days, np.ones(4), budget=1)
    assert out["daily_budget_precision"] == 0.5
    assert out["daily_budget_recall"] == 0.5


def test_the_budget_scales_with_the_customers() -> None:
    assert daily_alert_budget(5000) == 50
    assert daily_alert_budget(10) == 1


def _times(days: list[float]) -> pd.Series:
    return pd.Series(pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(days, unit="D"))


def test_label_delay_split_never_trains_on_labels_known_after_the_cut_off() -> None:
    times = _times([i * 0.5 for i in range(100)])  # 50 days, two rows a day
    split = time_split(times, 0.2, 0.2, label_delay_days=3)
    assert split.test_start == times[80]
    known = split.test_start - pd.Timedelta(days=3)
    assert split.labels_known_before == known
    assert (times[split.train | split.validation] < known).all()
    assert split.validation.any() and split.train.any()
    # The last three days before the cut-off: neither trained, validated nor tested.
    gap = ~(split.train | split.validation | split.test)
    assert gap.sum() == 6 and ((times[gap] >= known) & (times[gap] < split.test_start)).all()
    assert split.describe()["unlabelled_rows"] == 6
    # Without a delay the periods cover every row, as before.
    plain = time_split(times, 0.2, 0.2)
    assert (plain.train | plain.validation | plain.test).all()


def test_a_delay_longer_than_validation_is_refused() -> None:
    times = _times([i * 0.5 for i in range(100)])
    with pytest.raises(FinriskError, match="validation period empty with a label delay"):
        time_split(times, 0.2, 0.2, label_delay_days=11)
    with pytest.raises(FinriskError, match="label delay"):
        time_split(times, 0.2, 0.2, label_delay_days=-1)


def test_raw_fields_are_exactly_amount_hour_category_channel() -> None:
    tx = pd.DataFrame(
        {
            "timestamp": ["2025-01-01T13:30:00Z", "2025-01-01T02:15:00Z"] * 50,
            "amount": [12.5, 3.0] * 50,
            "category": ["groceries", "electronics"] * 50,
            "channel": ["card_present", "online"] * 50,
            "balance_after": [1.0, 2.0] * 50,
        }
    )
    x = raw_field_frame(tx)
    assert tuple(x.columns) == RAW_FIELDS == ("amount", "hour", "category", "channel")
    assert x["hour"].tolist()[:2] == [13.5, 2.25]
    assert x["category"].cat.categories.tolist()[:3] == ["salary", "transfer_in", "refund"]
    scores = RawFieldsBaseline().fit(x, [1, 0] * 50).anomaly_score(x)
    assert scores[0] > scores[1]
    with pytest.raises(FinriskError, match="both"):
        RawFieldsBaseline().fit(x, [0] * 100)
