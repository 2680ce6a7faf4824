"""Turning `--data` into what the runs need.

- Detector: a transaction table (file or dataset directory) in the canonical schema; labels
  (`is_fraud`) are optional.
- Risk model: either a dataset directory (user features are computed from its transactions
  and joined with the `is_risky` label of users.parquet) or a user-level table with the label
  column and one column per feature, numeric (gaps allowed) or low-cardinality text (names
  and label column per the schema file; see risk_data_from_user_table).
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
from finrisk.parsing import present
from finrisk.schema import IS_RISKY, USER_ID, Schema
from finrisk.user_columns import EMPTY, MAX_CATEGORIES, MIXED, NUMERIC, classify, numbers_of


@dataclass
class RiskData:
    # Indexed by user id, one column per feature: float (NaN for gaps) or text (categories).
    table: pd.DataFrame
    labels: npt.NDArray[np.int64]
    feature_names: tuple[str, ...]
    facts: dict[str, Any] = field(default_factory=dict)
    # Point-in-time rows for training (only when computed from transactions).
    snapshots: pd.DataFrame | None = None
    # What the user should hear about their table (columns dropped, and why).
    warnings: list[str] = field(default_factory=list)


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
    """A user's own table: the columns besides the id and the label are the features.

    When it holds all of finrisk's USER_FEATURES, exactly those are used. Otherwise each column
    is what finrisk.user_columns says: numeric (gaps allowed: the model handles them), text of
    at most MAX_CATEGORIES values (a categorical feature, kept as text: the model encodes it),
    text above that or an empty column (dropped, with a warning in `warnings`), or numbers
    mixed with text (an error naming the column and the first such value).
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
    candidates = (
        list(features.USER_FEATURES) if set(features.USER_FEATURES) <= set(others) else others
    )
    table = pd.DataFrame(index=frame.index)
    ignored: list[str] = []
    warnings: list[str] = []
    for name in candidates:
        column = classify(name, frame[name])
        if column.kind == MIXED:
            first = frame.index[int(column.first_bad or 0)]
            raise FinriskError(
                f"feature column {name!r} mixes numbers and text (first text at user "
                f"{first!r}: {frame.loc[first, name]!r}); leave gaps empty"
            )
        if column.infinite:
            raise FinriskError(f"feature column {name!r} has {column.infinite} infinite values")
        if column.kind == NUMERIC:
            table[name] = numbers_of(frame[name])
        elif column.categorical:
            given = present(frame[name]).to_numpy()
            table[name] = [
                str(v).strip() if ok else None
                for v, ok in zip(frame[name].to_numpy(dtype=object), given, strict=True)
            ]
        else:
            ignored.append(name)
            warnings.append(
                f"column {name!r} dropped: no values"
                if column.kind == EMPTY
                else f"column {name!r} dropped: text with {column.cardinality} distinct values "
                f"(at most {MAX_CATEGORIES} are encoded)"
            )
    if table.shape[1] == 0:
        raise FinriskError("the user table has no usable feature columns besides the id and label")
    gaps = {name: int(n) for name, n in table.isna().sum().items() if n}
    return RiskData(
        table=table,
        labels=np.asarray(frame[IS_RISKY], dtype=np.int64),
        feature_names=tuple(table.columns),
        facts={
            "feature_source": "user table",
            "ignored_columns": ", ".join(ignored) or None,
            "categorical_columns": ", ".join(
                str(c) for c in table.columns if table[c].dtype == object
            )
            or None,
            "missing_values": gaps or None,
        },
        warnings=warnings,
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
