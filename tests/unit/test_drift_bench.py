"""`finrisk bench drift`'s core on small streams: windows counted as the bridge counts them, the
drift scenario's shift found, a short drift-free stream without an alarm."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from finrisk.bench import drift
from finrisk.bench.local_processes import train_detector
from finrisk.settings import MonitorSettings

USERS, DAYS, WINDOW = 300, 45, 1_000


@pytest.fixture(scope="module")
def detector() -> Any:
    training = drift.steady_stream(USERS, DAYS, DAYS, seed=44)
    return train_detector(training.transactions, 42, training.begin)


def _windows(detector: Any, stream: drift.Stream) -> list[drift.Watched]:
    matrix, scores = drift.scored(stream.transactions, detector)
    return drift.watch(
        stream.transactions, matrix, scores, detector.profile_, detector.threshold_, WINDOW,
        stream.begin,
    )  # fmt: skip


def test_a_steady_stream_is_steady_from_its_first_day() -> None:
    stream = drift.steady_stream(90, 18, 12, seed=1)
    tx = stream.transactions
    assert tx["timestamp"].is_monotonic_increasing and tx["transaction_id"].is_unique
    watched = tx.iloc[stream.begin :]
    assert watched["timestamp"].min().normalize() == pd.Timestamp("2025-01-01", tz="UTC")
    per_day = watched.groupby(watched["timestamp"].dt.day).size()
    assert per_day.min() > 0.6 * per_day.max()  # no ramp-up: the cohorts were there already


def test_no_alarm_on_a_short_drift_free_stream(detector: Any) -> None:
    stream = drift.steady_stream(USERS, DAYS, 15, seed=42, start="2025-01-06")
    windows = _windows(detector, stream)
    assert len(windows) == (len(stream.transactions) - stream.begin) // WINDOW
    assert all(w.end - stream.begin == WINDOW * (i + 1) for i, w in enumerate(windows))
    assert not any(drift.sustained(windows, MonitorSettings()))


def test_the_drift_scenario_is_caught_within_5000_transactions(detector: Any) -> None:
    result = drift.drifted(detector, USERS, DAYS, WINDOW, seed=42, stream_days=40)
    assert result["sustained_fires_before_shift"] == 0
    assert result["delay_to_major_window"] is not None
    assert result["delay_to_major_window"] <= result["delay_to_sustained_rule"] <= 5_000
    recall = result["recall_after_shift"]
    assert recall["new_kind_frauds"] > 0 and recall["new_kind_recall"] < recall["old_kinds_recall"]


def test_the_delay_counts_from_the_shift_to_the_end_of_the_first_flagged_window() -> None:
    report: Any = None
    windows = [drift.Watched(report, end, datetime.now(UTC)) for end in (10, 20, 30)]
    assert drift.delay(windows, [True, False, True], shift=15) == 15
    assert drift.delay(windows, [True, False, False], shift=15) is None
