"""Train / validation / test splits without leakage.

Transactions split by time: every training row happens before every validation row, which
happens before every test row, as when a model trained today scores tomorrow's traffic.
Features are causal (each row sees only its user's past), so test rows may use history from
the training period exactly as the online path would, but no label from the future.

Fraud labels arrive late (an investigation, a chargeback): with a label delay, the model is
trained at the test start (the cut-off) on the labels known then, those of rows at least the
delay older. The rows of the last `label_delay_days` before the cut-off are neither trained nor
validated on (their labels are not known yet) nor tested.

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

# The label delay `finrisk evaluate` trains the detector with. The synthetic label stream
# confirms a fraud by investigation 1-5 days after it (finrisk.synthetic.labels): a week
# covers those; chargebacks come later still, so this is the optimistic case.
FRAUD_LABEL_DELAY_DAYS = 7.0


@dataclass(frozen=True)
class TimeSplit:
    """Boolean row masks and the two cut-off instants (validation start, test start).

    With a label delay, training and validation hold only rows whose label is known at the
    test start: those before `labels_known_before` (= test start - delay)."""

    train: npt.NDArray[np.bool_]
    validation: npt.NDArray[np.bool_]
    test: npt.NDArray[np.bool_]
    validation_start: pd.Timestamp
    test_start: pd.Timestamp
    label_delay_days: float = 0.0

    @property
    def labels_known_before(self) -> pd.Timestamp:
        return self.test_start - pd.Timedelta(days=self.label_delay_days)

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {
            "kind": "time",
            "train_rows": int(self.train.sum()),
            "validation_rows": int(self.validation.sum()),
            "test_rows": int(self.test.sum()),
            "validation_start": self.validation_start.isoformat(),
            "test_start": self.test_start.isoformat(),
        }
        if self.label_delay_days:
            out["label_delay_days"] = self.label_delay_days
            out["labels_known_before"] = self.labels_known_before.isoformat()
            out["unlabelled_rows"] = int((~(self.train | self.validation | self.test)).sum())
        return out


def time_split(
    timestamps: pd.Series,
    validation_fraction: float = 0.2,
    test_fraction: float = 0.2,
    label_delay_days: float = 0.0,
) -> TimeSplit:
    """Cut at the time quantiles that leave about the given shares of rows for validation/test;
    with a label delay, drop from training and validation the rows whose label is not known
    at the test start."""
    if validation_fraction <= 0 or test_fraction <= 0 or validation_fraction + test_fraction >= 1:
        raise FinriskError("validation and test fractions must be > 0 and sum to less than 1")
    if not 0 <= label_delay_days < float("inf"):
        raise FinriskError(f"the label delay must be >= 0 days, got {label_delay_days}")
    ts = pd.DatetimeIndex(pd.to_datetime(timestamps, utc=True))
    ordered = np.sort(ts.to_numpy(dtype="datetime64[ns]"))
    n = len(ordered)
    if n < 3:
        raise FinriskError(f"need at least 3 transactions to split by time, got {n}")
    validation_start = pd.Timestamp(
        ordered[int(n * (1 - validation_fraction - test_fraction))], tz="UTC"
    )
    test_start = pd.Timestamp(ordered[int(n * (1 - test_fraction))], tz="UTC")
    known = np.asarray(ts < test_start - pd.Timedelta(days=label_delay_days))
    train = np.asarray(ts < validation_start) & known
    test = np.asarray(ts >= test_start)
    validation = ~np.asarray(ts < validation_start) & ~test & known
    for name, mask in (("training", train), ("validation", validation), ("test", test)):
        if not mask.any():
            delay = f" with a label delay of {label_delay_days} days" if label_delay_days else ""
            raise FinriskError(
                f"the time split leaves the {name} period empty{delay}: the data spans too few "
                "instants"
            )
    return TimeSplit(train, validation, test, validation_start, test_start, label_delay_days)


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
