"""The retraining policy: each reason to retrain, each reason not to, and the decision record."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from finrisk.monitoring import drift
from finrisk.monitoring.policy import Baseline, decide, window_psi
from finrisk.monitoring.realized import RealizedDay
from finrisk.monitoring.tables import WindowRow, decision_row
from finrisk.settings import MonitorSettings

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
POLICY = MonitorSettings()


def _windows(*psis: float, role: str = "champion", score: float = 0.01) -> list[WindowRow]:
    """One window per PSI, an hour apart, the last ending an hour before NOW."""
    n = len(psis)
    return [
        WindowRow(
            window_id=f"w{i}",
            model="finrisk-anomaly-detector",
            model_version="3",
            role=role,
            window_end=NOW - timedelta(hours=n - i),
            max_feature_psi=psi,
            score_psi=score,
            category_psi=None,
            drift_level=drift.level(psi),
        )
        for i, psi in enumerate(psis)
    ]


def _days(
    recall: float, precision: float, *, ago: range, labelled: int = 100, frauds: int = 20
) -> list[RealizedDay]:
    true_alerts = round(recall * frauds)
    alerted = round(true_alerts / precision)
    return [
        RealizedDay(
            role="champion",
            model_version="3",
            day=NOW.date() - timedelta(days=d),
            scored=1000,
            labelled=labelled,
            confirmed_fraud=frauds,
            alerted=alerted,
            true_alerts=true_alerts,
            recall=recall,
            alert_precision=precision,
            median_label_delay_days=None,
        )
        for d in ago
    ]


# Healthy: an earlier baseline and recent days with the same quality, plenty of labels.
# (a day: 20 confirmed frauds, 16 of them alerted, among 40 alerts)
BASELINE_DAYS = _days(0.8, 0.4, ago=range(8, 20))
HEALTHY_RECENT = _days(0.8, 0.4, ago=range(0, 7))


def test_the_default_psi_threshold_is_the_major_shift_of_drift_level() -> None:
    assert POLICY.psi_threshold == drift.MAJOR


def test_stable_windows_and_steady_metrics_do_not_retrain() -> None:
    decision = decide(_windows(*[0.04] * 12), BASELINE_DAYS + HEALTHY_RECENT, None, POLICY, now=NOW)
    assert not decision.retrain
    assert decision.reasons[0] == "no drift: max PSI 0.04 < 0.25 over 12 windows"
    assert decision.reasons[1].startswith("recall holds: 0.800 vs baseline 0.800")
    assert decision.reasons[2].startswith("alert precision holds")


def test_sustained_major_drift_retrains() -> None:
    decision = decide(
        _windows(0.05, 0.3, 0.41, 0.52), BASELINE_DAYS + HEALTHY_RECENT, None, POLICY, now=NOW
    )
    assert decision.retrain
    assert decision.reasons == [
        "drift: PSI >= 0.25 in each of the last 3 windows (0.30, 0.41, 0.52)"
    ]
    assert decision.signals["max_psi"] == pytest.approx(0.52)


def test_one_noisy_window_does_not_retrain() -> None:
    decision = decide(
        _windows(0.02, 0.03, 0.9), BASELINE_DAYS + HEALTHY_RECENT, None, POLICY, now=NOW
    )
    assert not decision.retrain
    assert decision.reasons[0] == (
        "drift not sustained: 1 of the last 3 windows with PSI >= 0.25 (0.02, 0.03, 0.90), 3 needed"
    )


def test_a_score_shift_counts_as_drift_like_a_feature_shift() -> None:
    windows = _windows(0.01, 0.01, 0.01, score=0.6)
    assert [window_psi(w) for w in windows] == [0.6] * 3
    assert decide(windows, BASELINE_DAYS + HEALTHY_RECENT, None, POLICY, now=NOW).retrain


def test_drift_of_the_challenger_alone_does_not_retrain() -> None:
    windows = _windows(0.5, 0.5, 0.5, role="challenger") + _windows(0.01, 0.01, 0.01)
    assert not decide(windows, BASELINE_DAYS + HEALTHY_RECENT, None, POLICY, now=NOW).retrain


def test_no_windows_is_said() -> None:
    decision = decide([], BASELINE_DAYS + HEALTHY_RECENT, None, POLICY, now=NOW)
    assert decision.reasons[0] == "no drift signal: no monitoring windows of the champion"


def test_a_realized_recall_drop_retrains_against_the_earlier_days() -> None:
    decision = decide(
        _windows(0.02, 0.02, 0.02), BASELINE_DAYS + _days(0.6, 0.4, ago=range(0, 7)), None,
        POLICY, now=NOW,
    )  # fmt: skip
    assert decision.retrain
    assert decision.reasons == ["recall drop: 0.600 vs baseline 0.800 (-0.200 >= 0.1)"]


def test_an_alert_precision_drop_retrains() -> None:
    # Same recall, twice the alerts: precision halves.
    recent = [replace(d, alerted=80) for d in HEALTHY_RECENT]
    decision = decide(_windows(0.02), BASELINE_DAYS + recent, None, POLICY, now=NOW)
    assert decision.retrain
    assert decision.reasons == ["alert precision drop: 0.200 vs baseline 0.400 (-0.200 >= 0.1)"]


def test_offline_test_metrics_are_the_baseline_when_given() -> None:
    recent = HEALTHY_RECENT  # 0.8 recall, as the earlier days
    assert not decide(_windows(0.02), BASELINE_DAYS + recent, None, POLICY, now=NOW).retrain
    decision = decide(
        _windows(0.02), BASELINE_DAYS + recent, None, POLICY, now=NOW,
        baseline=Baseline(recall=0.95),
    )  # fmt: skip
    assert decision.retrain
    assert decision.reasons[0] == "recall drop: 0.800 vs baseline 0.950 (-0.150 >= 0.1)"


def test_recall_is_not_judged_on_too_few_confirmed_frauds() -> None:
    recent = _days(0.0, 0.4, ago=range(0, 2), frauds=5)  # 10 frauds, none caught
    decision = decide(_windows(0.02), BASELINE_DAYS + recent, None, POLICY, now=NOW)
    assert not decision.retrain
    assert decision.reasons[1] == "recall not judged: 10 confirmed frauds < 20 minimum"


def test_too_few_labels_hold_back_a_retrain() -> None:
    recent = _days(0.8, 0.4, ago=range(0, 1), labelled=37)
    decision = decide(_windows(0.5, 0.5, 0.5), BASELINE_DAYS + recent, None, POLICY, now=NOW)
    assert not decision.retrain
    assert decision.reasons[0] == "only 37 labels < 200 minimum (last 7 days)"
    assert decision.reasons[1].startswith("would retrain on: drift: PSI >= 0.25")


def test_the_cooldown_holds_back_a_retrain_and_then_lets_it_go() -> None:
    windows, days = _windows(0.5, 0.5, 0.5), BASELINE_DAYS + HEALTHY_RECENT
    held = decide(windows, days, NOW - timedelta(hours=3), POLICY, now=NOW)
    assert not held.retrain
    assert held.reasons[0] == "cooldown: last retrain 3.0 h ago < 24 h"
    assert decide(windows, days, NOW - timedelta(hours=25), POLICY, now=NOW).retrain


def test_the_knobs_move_the_decision() -> None:
    windows, days = _windows(0.15, 0.15), BASELINE_DAYS + HEALTHY_RECENT
    assert not decide(windows, days, None, POLICY, now=NOW).retrain
    looser = POLICY.model_copy(update={"psi_threshold": 0.1, "sustained_windows": 2})
    assert decide(windows, days, None, looser, now=NOW).retrain


def test_the_decision_record_carries_reasons_and_signals() -> None:
    decision = decide(
        _windows(0.5, 0.5, 0.5), BASELINE_DAYS + HEALTHY_RECENT, None, POLICY, now=NOW
    )
    record = json.loads(decision.to_json())
    assert record["retrain"] is True and record["decided_at"] == NOW.isoformat()
    assert record["signals"]["labels"] == 700 and record["signals"]["windows"] == 3
    row = decision_row(decision, model="m", source="monitor", run="kfp run r1")
    assert json.loads(row["reasons"]) == decision.reasons
    assert json.loads(row["signals"])["max_psi"] == 0.5
    assert (row["retrain"], row["run"], row["launch_error"]) == (True, "kfp run r1", None)
