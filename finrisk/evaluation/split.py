"""Train / validation / test splits without leakage.

Transactions split by time: every training row happens before every validation row, which
happens before every test row, as when a model trained today scores tomorrow's traffic.
Features are causal (each row sees only its user's past), so test rows may use history from
the training period exactly as the online path would, but no label from the future.

Users split at random, stratified on the label: the label is an outcome that happens after the
observed transactions the features summarise, so the time ordering lives inside each user;
the split keeps any user entirely on one side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.model_selection import train_test_split

from finrisk.errors import FinriskError


@dataclass(frozen=True)
class TimeSplit:
    """Boolean row masks and the two cut-off instants (validation start, test start)."""

    train: npt.NDArray[np.bool_]
    validation: npt.NDArray[np.bool_]
    test: npt.NDArray[np.bool_]
    validation_start: pd.Timestamp
    test_start: pd.Timestamp

    def describe(self) -> dict[str, object]:
        return {
            "kind": "time",
            "train_rows": int(self.train.sum()),
            "validation_rows": int(self.validation.sum()),
            "test_rows": int(self.test.sum()),
            "validation_start": self.validation_start.isoformat(),
            "test_start": self.test_start.isoformat(),
        }


def time_split(
    timestamps: pd.Series, validation_fraction: float = 0.2, test_fraction: float = 0.2
) -> TimeSplit:
    """Cut at the time quantiles that leave about the given shares of rows for validation/test."""
    if validation_fraction <= 0 or test_fraction <= 0 or validation_fraction + test_fraction >= 1:
        raise FinriskError("validation and test fractions must be > 0 and sum to less than 1")
    ts = pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True))
    ordered = np.sort(ts.to_numpy(dtype="datetime64[ns]"))
    n = len(ordered)
    if n < 3:
        raise FinriskError(f"need at least 3 transactions to split by time, got {n}")
    validation_start = pd.Timestamp(
        ordered[int(n * (1 - validation_fraction - test_fraction))], tz="UTC"
    )
    test_start = pd.Timestamp(ordered[int(n * (1 - test_fraction))], tz="UTC")
    train = np.asarray(ts < validation_start)
    test = np.asarray(ts >= test_start)
    validation = ~train & ~test
    for name, mask in (("training", train), ("validation", validation), ("test", test)):
        if not mask.any():
            raise FinriskError(
                f"the time split leaves the {name} period empty: the data spans too few instants"
            )
    return TimeSplit(train, validation, test, validation_start, test_start)


@dataclass(frozen=True)
class UserSplit:
    """Row positions of training and test users."""

    train: npt.NDArray[np.intp]
    test: npt.NDArray[np.intp]
    seed: int

    def describe(self) -> dict[str, object]:
        return {
            "kind": "users, random stratified on the label",
            "train_users": len(self.train),
            "test_users": len(self.test),
            "seed": self.seed,
        }


def user_split(labels: npt.ArrayLike, test_fraction: float = 0.3, seed: int = 0) -> UserSplit:
    """Stratified random split of users (row positions), repeatable for a seed."""
    y = np.asarray(labels)
    positions = np.arange(len(y))
    counts = np.bincount(y.astype(np.int64), minlength=2)
    if counts.min() < 2:
        raise FinriskError(
            f"the risk label needs at least 2 users of each class to split, got {counts.tolist()}"
        )
    train, test = train_test_split(
        positions, test_size=test_fraction, stratify=y, random_state=seed
    )
    return UserSplit(np.sort(train), np.sort(test), seed)
