"""Turning `--data` into what the runs need.

- Detector: a transaction table (file or dataset directory) in the canonical schema; labels
  (`is_fraud`) are optional.
- Risk model: either a dataset directory (user features are computed from its transactions
  and joined with the `is_risky` label of users.parquet) or a user-level table with the label
  column and one numeric column per feature (names and label column per the schema file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from finrisk import features
from finrisk.errors import FinriskError
from finrisk.features.snapshots import history_snapshots
from finrisk.io import USERS_FILE, is_dataset_dir, load_transactions, load_users
from finrisk.schema import IS_RISKY, USER_ID, Schema


@dataclass
class RiskData:
    table: pd.DataFrame  # indexed by user id, one float column per feature
    labels: npt.NDArray[np.int64]
    feature_names: tuple[str, ...]
    facts: dict[str, Any] = field(default_factory=dict)
    # Point-in-time rows for training (only when computed from transactions).
    snapshots: pd.DataFrame | None = None


def load_anomaly_data(path: str | Path, schema: Schema | None = None) -> pd.DataFrame:
    return load_transactions(path, schema)


def risk_data_from_frames(transactions: pd.DataFrame, users: pd.DataFrame) -> RiskData:
    """User features from transactions, labelled by the users table; unmatched users dropped."""
    if IS_RISKY not in users.columns:
        raise FinriskError(f"the users table has no {IS_RISKY!r} label column")
    computed = features.user_features(transactions)
    labels = users.set_index(USER_ID)[IS_RISKY]
    if labels.isna().any():
        raise FinriskError(f"{IS_RISKY} is missing for {int(labels.isna().sum())} users")
    common = labels.index.intersection(computed.index, sort=False)
    if len(common) == 0:
        raise FinriskError("no user of the users table has any transaction")
    return RiskData(
        table=computed.loc[common, list(features.USER_FEATURES)],
        labels=np.asarray(labels.loc[common], dtype=np.int64),
        feature_names=tuple(features.USER_FEATURES),
        snapshots=history_snapshots(transactions),
        facts={
            "feature_source": "computed from transactions",
            "users_without_transactions": int(len(labels) - len(common)),
            "users_without_label": int(len(computed) - len(common)),
        },
    )


def risk_data_from_user_table(users: pd.DataFrame) -> RiskData:
    """A user's own table: the numeric columns besides the id and the label are the features.

    When it holds all of finrisk's USER_FEATURES, exactly those are used. Otherwise every
    column whose values are all numbers is a feature, a column without any number (names,
    notes) is ignored, and a column mixing numbers with other values is an error.
    """
    if IS_RISKY not in users.columns:
        raise FinriskError(
            f"the user table has no label column {IS_RISKY!r} (name yours in the schema file: "
            "users.label_column)"
        )
    if users[IS_RISKY].isna().any():
        raise FinriskError(f"{IS_RISKY} is missing for {int(users[IS_RISKY].isna().sum())} users")
    frame = users.set_index(USER_ID) if USER_ID in users.columns else users
    others = [str(c) for c in frame.columns if c != IS_RISKY]
    wanted = set(features.USER_FEATURES) <= set(others)
    candidates = list(features.USER_FEATURES) if wanted else others
    table = pd.DataFrame(index=frame.index)
    ignored = []
    for name in candidates:
        numbers = pd.to_numeric(frame[name], errors="coerce").astype(np.float64)
        bad = ~np.isfinite(numbers.to_numpy())
        if bad.all() and not wanted:
            ignored.append(name)
            continue
        if bad.any():
            first = frame.index[np.flatnonzero(bad)[0]]
            raise FinriskError(
                f"feature column {name!r} has {int(bad.sum())} missing or non-numeric values "
                f"(first at user {first!r}: {frame.loc[first, name]!r})"
            )
        table[name] = numbers
    if table.shape[1] == 0:
        raise FinriskError("the user table has no numeric feature columns besides the id and label")
    return RiskData(
        table=table,
        labels=np.asarray(frame[IS_RISKY], dtype=np.int64),
        feature_names=tuple(table.columns),
        facts={"feature_source": "user table", "ignored_columns": ", ".join(ignored) or None},
    )


def load_risk_data(path: str | Path, schema: Schema | None = None) -> RiskData:
    """Risk inputs from a dataset directory or a user-level table (see the module docstring).

    A dataset's own users.parquet counts as its directory: its extra columns are the
    generator's ground truth, which must never become features.
    """
    p = Path(path)
    if p.name == USERS_FILE and is_dataset_dir(p.parent):
        p = p.parent
    if is_dataset_dir(p):
        return risk_data_from_frames(load_transactions(p, schema), load_users(p, schema))
    if p.is_dir():
        raise FinriskError(f"{p} is a directory without a dataset: give a user-level table")
    return risk_data_from_user_table(load_users(p, schema))
