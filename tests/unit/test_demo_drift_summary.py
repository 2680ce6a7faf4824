"""The drift demo's arithmetic: when the sustained-drift rule first fired after the shift, and
recall per pattern from ground truth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from finrisk.demo.drift_summary import detection, recall
from finrisk.settings import MonitorSettings

SHIFT = datetime(2026, 1, 10, tzinfo=UTC)


def _window(i: int, psi: float, day: int, model: str = "det") -> dict[str, Any]:
    return {
        "window_id": f"w{i}",
        "model": model,
        "model_version": "1",
        "role": "champion",
        "window_end": (datetime(2026, 2, 1, tzinfo=UTC) + timedelta(seconds=i)).isoformat(),
        "event_time_max": (SHIFT + timedelta(days=day)).isoformat(),
        "transactions": 1_000,
        "max_feature_psi": psi,
        "score_psi": None,
        "category_psi": None,
        "drift_level": "major" if psi > 0.25 else "stable",
        "drifted_features": ["amount"] if psi > 0.25 else [],
    }


def test_detection_counts_the_windows_after_the_shift_until_the_rule_fires() -> None:
    policy = MonitorSettings(sustained_windows=2)
    windows = [
        _window(0, 0.9, -3),  # a pair before the shift: an alarm, counted apart
        _window(1, 0.8, -2),
        _window(2, 0.05, -1),
        _window(3, 0.6, 0),  # the shift: one major window is not yet sustained
        _window(4, 0.05, 1),
        _window(5, 0.7, 2),
        _window(6, 0.9, 3),  # fires here: 4 windows of 1,000 after the shift
        _window(7, 0.9, 4, model="risk"),  # another model's windows do not count
    ]
    found = detection(windows, "det", SHIFT, policy)
    assert found["transactions_after_shift"] == 4_000
    assert found["alarms_before_shift"] == 1
    assert found["reason"].startswith("drift: PSI >= 0.25 in each of the last 2 windows")
    quiet = detection([_window(0, 0.05, 1)], "det", SHIFT, policy)
    assert quiet["transactions_after_shift"] is None and quiet["checked_after_shift"] == 1_000


def test_recall_per_pattern_from_the_ground_truth() -> None:
    truth = {"a": "scam", "b": "scam", "c": "old"}
    scored = [
        {"transaction_id": "a", "is_anomaly": True},
        {"transaction_id": "b", "is_anomaly": False},
        {"transaction_id": "c", "is_anomaly": True},
        {"transaction_id": "d", "is_anomaly": True},  # legitimate: not in any pattern
    ]
    assert recall(scored, truth, {"scam"}).value == 0.5
    assert recall(scored, truth, {"old"}).value == 1.0
    assert recall(scored, truth, {"new"}).value is None
