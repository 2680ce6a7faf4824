"""Time split for transactions, stratified user split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finrisk.errors import FinriskError
from finrisk.evaluation.split import time_split, user_split


def test_time_split_orders_periods_and_covers_every_row() -> None:
    rng = np.random.default_rng(0)
    ts = pd.Series(
        pd.to_datetime("2025-01-01", utc=True)
        + pd.to_timedelta(rng.integers(0, 10**7, 1000), unit="s")
    )
    split = time_split(ts, 0.2, 0.2)
    assert (split.train.astype(int) + split.validation + split.test == 1).all()
    assert ts[split.train].max() < ts[split.validation].min()
    assert ts[split.validation].max() < ts[split.test].min()
    assert split.train.sum() == pytest.approx(600, abs=5)
    assert split.test.sum() == pytest.approx(200, abs=5)
    described = split.describe()
    assert described["train_rows"] == int(split.train.sum())


def test_time_split_keeps_tied_instants_together() -> None:
    ts = pd.Series(
        pd.to_datetime(["2025-01-01"] * 5 + ["2025-01-02"] * 5 + ["2025-01-03"] * 5, utc=True)
    )
    split = time_split(ts, 0.3, 0.3)
    for day in ts.unique():
        same = (ts == day).to_numpy()
        periods = np.column_stack([split.train, split.validation, split.test])[same]
        assert (periods == periods[0]).all()


def test_time_split_rejects_data_with_one_instant() -> None:
    ts = pd.Series(pd.to_datetime(["2025-01-01"] * 10, utc=True))
    with pytest.raises(FinriskError, match="empty"):
        time_split(ts)


@pytest.mark.parametrize(("val", "test"), [(0.0, 0.2), (0.5, 0.5), (-0.1, 0.2)])
def test_time_split_rejects_bad_fractions(val: float, test: float) -> None:
    ts = pd.Series(pd.date_range("2025-01-01", periods=10, freq="h", tz="UTC"))
    with pytest.raises(FinriskError):
        time_split(ts, val, test)


def test_user_split_is_stratified_disjoint_and_repeatable() -> None:
    y = np.r_[np.ones(100, dtype=int), np.zeros(300, dtype=int)]
    a = user_split(y, 0.25, seed=3)
    b = user_split(y, 0.25, seed=3)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)
    assert not set(a.train) & set(a.test)
    assert len(a.train) + len(a.test) == 400
    assert y[a.test].mean() == pytest.approx(0.25)
    assert not np.array_equal(user_split(y, 0.25, seed=4).test, a.test)


def test_user_split_needs_two_of_each_class() -> None:
    with pytest.raises(FinriskError, match="2 users of each class"):
        user_split([1, 0, 0, 0], 0.5)
