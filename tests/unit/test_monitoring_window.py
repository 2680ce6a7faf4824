"""A monitoring window counts live traffic on a version's reference profile: its statistics are
the drift module's, however the traffic is split into batches."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

from finrisk.kinds import CHAMPION
from finrisk.monitoring.drift import categorical_psi, numeric_psi
from finrisk.monitoring.profile import reference_profile
from finrisk.monitoring.records import FIELD_TYPES, JSON_FIELDS, table_row, window_record
from finrisk.monitoring.window import ModelWindow

COLUMNS = ("amount", "velocity", "unprofiled")


def _profile(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    n = 5_000
    frame = pd.DataFrame({"amount": rng.lognormal(3, 1, n), "velocity": rng.poisson(3, n)})
    scores = rng.beta(1, 20, n)
    categories = {"category": rng.choice(["food", "rent", "travel"], n, p=[0.6, 0.3, 0.1])}
    return reference_profile(frame, scores, categories=categories, threshold=0.2)


def _live(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    matrix = np.column_stack(
        [rng.lognormal(3 + shift, 1, n), rng.poisson(3, n), rng.normal(0, 1, n)]
    ).astype(np.float64)
    return (
        matrix,
        rng.beta(1, 20, n),
        list(rng.choice(["food", "rent", "travel"], n, p=[0.6, 0.3, 0.1])),
    )


def _window(profile: dict) -> ModelWindow:
    return ModelWindow("det", "3", CHAMPION, profile, COLUMNS)


def test_statistics_are_the_drift_modules_whatever_the_batches() -> None:
    profile = _profile()
    matrix, scores, categories = _live(3_000, seed=1, shift=0.5)
    matrix[::7, 0] = np.nan  # missing amounts
    window = _window(profile)
    for start in range(0, 3_000, 700):  # uneven batches
        part = slice(start, start + 700)
        window.add(
            matrix[part],
            scores[part],
            alerts=int((scores[part] >= 0.2).sum()),
            categories={"category": categories[part]},
            event_ns=np.arange(start, min(start + 700, 3_000), dtype=np.int64),
        )
    report = window.report()
    assert report.transactions == 3_000
    assert report.feature_psi["amount"] == pytest.approx(
        numeric_psi(profile["features"]["amount"], matrix[:, 0])
    )
    assert report.feature_psi["velocity"] == pytest.approx(
        numeric_psi(profile["features"]["velocity"], matrix[:, 1])
    )
    assert "unprofiled" not in report.feature_psi  # not in the profile: not watched
    assert report.score_psi == pytest.approx(numeric_psi(profile["scores"], scores))
    assert report.category_psi == pytest.approx(
        categorical_psi(profile["categories"]["category"], categories)
    )
    # 1 in 7 amounts missing, none of the velocities: over both profiled features.
    assert report.missing_rate == pytest.approx(np.isnan(matrix[:, 0]).sum() / 6_000)
    assert report.alert_rate == pytest.approx(np.mean(scores >= 0.2))
    assert report.reference_alert_rate == profile["alert_rate"]
    assert (report.event_ns_min, report.event_ns_max) == (0, 2_999)


def test_a_shift_is_major_and_named_the_same_traffic_is_stable() -> None:
    profile = _profile()
    same = _window(profile)
    matrix, scores, categories = _live(5_000, seed=2)
    same.add(matrix, scores, alerts=0, categories={"category": categories})
    assert same.report().drift_level == "stable"
    assert same.report().drifted_features == []

    shifted = _window(profile)
    matrix, scores, categories = _live(5_000, seed=3, shift=1.5)
    shifted.add(matrix, scores, alerts=0, categories={"category": categories})
    report = shifted.report()
    assert report.drift_level == "major"
    assert report.drifted_features == ["amount"]
    assert report.max_feature_psi == report.feature_psi["amount"] > 0.25


def test_a_category_never_seen_in_training_is_drift() -> None:
    window = _window(_profile())
    matrix, scores, _ = _live(2_000, seed=4)
    window.add(matrix, scores, alerts=0, categories={"category": ["crypto"] * 2_000})
    report = window.report()
    assert report.category_psi is not None and report.category_psi > 0.25
    assert report.drift_level == "major"


def test_without_a_profile_the_window_still_counts_alerts_and_bands() -> None:
    window = ModelWindow("risk", "2", CHAMPION, {}, COLUMNS)
    matrix, scores, _ = _live(100, seed=5)
    window.add(matrix, scores, alerts=10, bands=["HIGH"] * 10 + ["LOW"] * 90)
    report = window.report()
    assert report.feature_psi == {} and report.score_psi is None
    assert report.alert_rate == pytest.approx(0.1)
    assert report.band_mix is None  # no reference band mix: not a risk profile
    assert report.drift_level == "stable"


def test_reset_starts_an_empty_window() -> None:
    window = _window(_profile())
    matrix, scores, categories = _live(500, seed=6)
    window.add(matrix, scores, alerts=3, categories={"category": categories})
    window.reset()
    assert window.transactions == 0 and window.alerts == 0
    report = window.report()
    assert report.alert_rate is None and report.category_psi is None
    assert all(value is None for value in report.feature_psi.values())


def test_records_carry_every_table_column_and_json_text_in_the_table() -> None:
    window = _window(_profile())
    matrix, scores, categories = _live(1_000, seed=7, shift=2.0)
    window.add(
        matrix,
        scores,
        alerts=5,
        categories={"category": categories},
        event_ns=np.array([1_700_000_000_000_000_000], dtype=np.int64),
    )
    record = window_record(
        window.report(),
        instance="pod-0",
        started_ms=1_700_000_000_000,
        ended_ms=1_700_000_060_000,
        dead_lettered=10,
        messages=1_010,
    )
    assert set(record) == set(FIELD_TYPES)
    assert record["window_id"] == "pod-0/champion/det/3/1700000000000"
    assert record["window_start"] == "2023-11-14T22:13:20+00:00"
    assert record["dead_letter_rate"] == pytest.approx(10 / 1_010)
    assert record["drifted_features"] == ["amount"] and record["drift_level"] == "major"
    orjson.dumps(record)  # the topic's JSON
    row = table_row(record)
    for name in JSON_FIELDS:
        assert row[name] is None or orjson.loads(row[name]) == record[name]
    assert row["feature_psi"] is not None and isinstance(row["feature_psi"], str)


def _record() -> dict:
    window = _window(_profile())
    matrix, scores, categories = _live(500, seed=8)
    window.add(matrix, scores, alerts=1, categories={"category": categories})
    return window_record(
        window.report(), instance="p", started_ms=0, ended_ms=60_000, dead_lettered=0, messages=500
    )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"window_id": None}, "missing fields: window_id"),
        ({"transactions": "500"}, "transactions must be int"),
        ({"transactions": True}, "transactions must be int"),
        ({"alert_rate": float("inf")}, "alert_rate must be finite"),
        ({"window_end": "yesterday"}, "window_end 'yesterday' is not an RFC 3339 time"),
        ({"window_end": "2026-01-01T00:00:00"}, "window_end '2026-01-01T00:00:00' has no UTC"),
        ({"feature_psi": [1, 2]}, "feature_psi must be dict"),
        ({"drifted_features": "amount"}, "drifted_features must be list"),
    ],
)
def test_a_record_read_back_that_is_not_a_monitoring_record_is_named(
    change: dict, named: str
) -> None:
    from finrisk.monitoring.records import MonitoringRecordError, monitoring_row

    row_id, row = monitoring_row(_record())  # the bridge's own: taken
    assert row_id == "p/champion/det/3/0" and set(row) == set(FIELD_TYPES)
    with pytest.raises(MonitoringRecordError, match=named):
        monitoring_row({**_record(), **change})
    with pytest.raises(MonitoringRecordError, match="JSON object"):
        monitoring_row([_record()])


def test_the_clocks_features_are_reported_but_do_not_make_drift() -> None:
    """A window of one weekday (and users older than any training row) sees the weekday and
    the prior-debit count far from the training mix, whatever the data does: their PSI is
    reported, the window's drift is judged on the other features."""
    rng = np.random.default_rng(3)
    n = 5_000
    weekday = rng.integers(0, 7, n)
    frame = pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, n),
            "dow_sin": np.sin(2 * np.pi * weekday / 7),
            "log_prior_debit_count": np.log1p(rng.integers(0, 100, n)),
        }
    )
    profile = reference_profile(frame, rng.beta(1, 20, n), threshold=0.2)
    columns = tuple(frame.columns)
    live = np.column_stack(
        [rng.lognormal(3, 1, 1_000), np.full(1_000, np.sin(2 * np.pi * 2 / 7)), np.full(1_000, 6.0)]
    )
    window = ModelWindow("det", "3", CHAMPION, profile, columns)
    window.add(live, rng.beta(1, 20, 1_000), alerts=0)
    report = window.report()
    assert report.feature_psi["dow_sin"] > 1 and report.feature_psi["log_prior_debit_count"] > 1
    assert report.drift_level != "major" and report.drifted_features == []
    assert report.max_feature_psi == report.feature_psi["amount"] < 0.1
    # A shift of a feature that is not the clock's still is drift.
    live[:, 0] *= np.e
    window.reset()
    window.add(live, rng.beta(1, 20, 1_000), alerts=0)
    assert window.report().drifted_features == ["amount"]
