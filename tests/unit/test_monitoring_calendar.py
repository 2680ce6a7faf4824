"""A calendar-aware reference: the profile keeps the training's shares per part of the month
(and per weekday for the scores), and a window is compared with those phases mixed in its own
proportions, so a window of the 1st to the 5th is judged against the training's 1st to 5th."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import orjson
import pandas as pd
import pytest

from finrisk.kinds import CHAMPION
from finrisk.monitoring.calendar import MONTH_PART, PHASES, WEEKDAY, phases
from finrisk.monitoring.drift import category_counts_psi, numeric_psi, shares_psi
from finrisk.monitoring.profile import PROFILE_VERSION, reference_profile
from finrisk.monitoring.window import ModelWindow, WindowReport

COLUMNS = ("amount", "velocity")
DAY_NS = 86_400 * 10**9


def _month(seed: int, n: int, start: str = "2025-01-01", days: int = 90) -> dict:
    """Drift-free traffic with the month's calendar: rent (large amounts) on days 1-5, no bill
    on days 29-31, and scores higher on Sundays."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start, tz="UTC").value
    ns = np.sort(t0 + rng.integers(0, days * DAY_NS, n)).astype(np.int64)
    dom = pd.DatetimeIndex(ns, tz="UTC").day.to_numpy()
    sunday = pd.DatetimeIndex(ns, tz="UTC").dayofweek.to_numpy() == 6
    rent = (dom <= 5) & (rng.random(n) < 0.3)
    bill = (dom <= 28) & ~rent & (rng.random(n) < 0.3)
    amount = rng.lognormal(3, 0.5, n) * np.where(rent, 20.0, 1.0)
    category = np.where(rent, "rent", np.where(bill, "bill", "food"))
    return {
        "ns": ns,
        "matrix": np.column_stack([amount, rng.poisson(3, n)]).astype(np.float64),
        "scores": rng.beta(1, 20, n) + np.where(sunday, 0.1, 0.0),
        "category": category,
    }


def _profile(data: dict, *, calendar: bool) -> dict:
    frame = pd.DataFrame(data["matrix"], columns=list(COLUMNS))
    times = {"times": data["ns"], "score_times": data["ns"]} if calendar else {}
    return reference_profile(
        frame, data["scores"], categories={"category": data["category"]}, threshold=0.2, **times
    )


def _report(profile: dict, data: dict, rows: np.ndarray, *, times: bool = True) -> WindowReport:
    window = ModelWindow("det", "3", CHAMPION, profile, COLUMNS)
    for part in np.array_split(rows, 4):  # batches, as the bridge hands them
        window.add(
            data["matrix"][part],
            data["scores"][part],
            alerts=0,
            categories={"category": data["category"][part]},
            event_ns=data["ns"][part] if times else None,
        )
    return window.report()


def test_phases_are_the_utc_day_of_month_and_weekday() -> None:
    ns = pd.date_range("2024-01-01", "2025-12-31 23:00", freq="7h", tz="UTC").asi8
    index = pd.DatetimeIndex(ns, tz="UTC")
    day = index.day.to_numpy()
    assert PHASES[MONTH_PART] == ("days 1-5", "days 6-28", "days 29-31")
    assert (phases(MONTH_PART, ns) == np.select([day <= 5, day <= 28], [0, 1], 2)).all()
    assert (phases(WEEKDAY, ns) == index.dayofweek.to_numpy()).all()
    with pytest.raises(ValueError, match="unknown calendar scheme"):
        phases("fortnight", ns)


def test_the_profile_holds_each_phases_shares_in_the_overall_bins() -> None:
    data = _month(0, 60_000)
    profile = orjson.loads(orjson.dumps(_profile(data, calendar=True)))  # data, as logged
    assert profile["version"] == PROFILE_VERSION == 2
    calendar = profile["calendar"]
    assert calendar["features"]["phases"] == calendar["categories"]["phases"] == MONTH_PART
    assert calendar["scores"]["phases"] == WEEKDAY
    month = phases(MONTH_PART, data["ns"])
    assert calendar["features"]["rows"] == np.bincount(month, minlength=3).tolist()
    rent_days = month == 0
    expected = (
        np.bincount(
            np.searchsorted(profile["features"]["amount"]["edges"], data["matrix"][rent_days, 0]),
            minlength=len(profile["features"]["amount"]["shares"]),
        )
        / rent_days.sum()
    )
    assert calendar["features"]["shares"]["amount"][0] == pytest.approx(expected.tolist())
    assert "bill" not in calendar["categories"]["shares"]["category"][2]  # days 29-31
    assert calendar["categories"]["shares"]["category"][0]["rent"] == pytest.approx(0.3, abs=0.02)
    assert len(calendar["scores"]["shares"]) == 7
    # Without event times, no phases: the risk model's rows stand for whole histories.
    assert "calendar" not in _profile(data, calendar=False)


def test_a_phase_with_too_few_training_rows_keeps_no_shares_of_its_own() -> None:
    data = _month(0, 20_000, start="2025-01-10", days=15)  # no day 1-5 nor 29-31
    calendar = _profile(data, calendar=True)["calendar"]
    assert calendar["features"]["shares"]["amount"][0] is None
    assert calendar["categories"]["shares"]["category"][2] is None
    assert calendar["features"]["shares"]["amount"][1] is not None


def test_a_window_of_the_rent_days_is_stable_against_the_calendar_aware_reference() -> None:
    training, live = _month(0, 90_000), _month(1, 60_000, start="2025-04-01", days=60)
    rent_days = np.flatnonzero(phases(MONTH_PART, live["ns"]) == 0)[:3_000]
    no_bill_days = np.flatnonzero(phases(MONTH_PART, live["ns"]) == 2)[:1_000]
    plain = _profile(training, calendar=False)
    aware = _profile(training, calendar=True)
    # The month's calendar alone: major against an overall reference...
    assert _report(plain, live, rent_days).drift_level == "major"
    assert _report(plain, live, no_bill_days).category_psi > 0.25
    # ...stable against the same days of the training.
    assert _report(aware, live, rent_days).drift_level == "stable"
    assert _report(aware, live, no_bill_days).drift_level == "stable"
    # A shift is still one: the amounts of the rent days 3 times larger.
    shifted = {**live, "matrix": live["matrix"] * np.array([3.0, 1.0])}
    assert _report(aware, shifted, rent_days).drifted_features == ["amount"]


def test_the_window_compares_with_the_phases_mixed_in_its_own_proportions() -> None:
    training, live = _month(0, 90_000), _month(1, 30_000, start="2025-04-20", days=20)
    aware = _profile(training, calendar=True)
    rows = np.arange(8_000)  # days 20 to 27 of April and 1 to 5 of May... whatever they are
    report = _report(aware, live, rows)
    month = phases(MONTH_PART, live["ns"][rows])
    weights = np.bincount(month, minlength=3) / len(rows)
    amount = aware["features"]["amount"]
    per_phase = np.array(aware["calendar"]["features"]["shares"]["amount"])
    counts = np.bincount(
        np.searchsorted(amount["edges"], live["matrix"][rows, 0]), minlength=len(amount["shares"])
    )
    assert report.feature_psi["amount"] == pytest.approx(
        shares_psi(weights @ per_phase, counts / len(rows))
    )
    mixed: dict[str, float] = {}
    for phase, shares in enumerate(aware["calendar"]["categories"]["shares"]["category"]):
        for name, share in shares.items():
            mixed[name] = mixed.get(name, 0.0) + weights[phase] * share
    values, n = np.unique(live["category"][rows], return_counts=True)
    assert report.category_psi == pytest.approx(
        category_counts_psi(mixed, dict(zip(values.tolist(), n.tolist(), strict=True)))
    )


def test_a_profile_without_phases_still_gives_the_drift_modules_statistics() -> None:
    training, live = _month(0, 30_000), _month(1, 5_000, start="2025-04-01", days=10)
    old = _profile(training, calendar=True)
    old.pop("calendar")
    old["version"] = 1  # as logged before the calendar
    rows = np.arange(5_000)
    for times in (True, False):
        report = _report(old, live, rows, times=times)
        assert report.feature_psi["amount"] == pytest.approx(
            numeric_psi(old["features"]["amount"], live["matrix"][:, 0])
        )
        assert report.score_psi == pytest.approx(numeric_psi(old["scores"], live["scores"]))


def test_rows_without_event_times_are_compared_with_the_overall_shares() -> None:
    training, live = _month(0, 30_000), _month(1, 5_000, start="2025-04-01", days=10)
    aware = _profile(training, calendar=True)
    report = _report(aware, live, np.arange(5_000), times=False)
    assert report.feature_psi["amount"] == pytest.approx(
        numeric_psi(aware["features"]["amount"], live["matrix"][:, 0])
    )


@contextmanager
def _python_calls() -> Iterator[list[int]]:
    """How many Python functions run (C functions are not counted) while inside."""
    calls = [0]

    def count(frame: object, event: str, arg: object) -> None:
        if event == "call":
            calls[0] += 1

    sys.setprofile(count)
    try:
        yield calls
    finally:
        sys.setprofile(None)


def test_counting_a_batch_runs_no_python_code_per_row() -> None:
    training = _month(0, 30_000)
    aware = _profile(training, calendar=True)
    calls = []
    for n in (100, 100, 10_000):  # the first: numpy's first calls import what they need
        live = _month(1, n, start="2025-04-01", days=40)  # every phase
        window = ModelWindow("det", "3", CHAMPION, aware, COLUMNS)
        with _python_calls() as counted:
            window.add(
                live["matrix"],
                live["scores"],
                alerts=0,
                categories={"category": live["category"]},
                event_ns=live["ns"],
            )
        calls.append(counted[0])
    assert calls[1] == calls[2]
