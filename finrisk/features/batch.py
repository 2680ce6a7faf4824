"""Batch path: the statistics of `finrisk.features.formulas`, vectorised over a DataFrame.

Rows are checked and sorted once into the canonical per-user order
(`finrisk.features.batch_inputs`), then every statistic is an array operation over the sorted
columns, with no Python loop over rows (`finrisk.features.batch_stats`). The formulas are then
evaluated once on whole columns and the rows put back in input order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from finrisk.features.batch_inputs import Sorted, prepare
from finrisk.features.batch_stats import transaction_stats, user_stats
from finrisk.features.definitions import TRANSACTION_FEATURES, USER_FEATURES
from finrisk.features.formulas import transaction_formulas, user_formulas
from finrisk.schema import USER_ID


def transaction_features(df: pd.DataFrame) -> pd.DataFrame:
    """TRANSACTION_FEATURES for every row of `df` (canonical columns), same index and order."""
    return _transaction_frame(df, prepare(df))


def user_features(df: pd.DataFrame) -> pd.DataFrame:
    """USER_FEATURES of every user in `df`, indexed by user_id (ascending)."""
    return _user_frame(prepare(df))


def batch_features(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables at once, sorting the input only once."""
    data = prepare(df)
    return _transaction_frame(df, data), _user_frame(data)


def _transaction_frame(df: pd.DataFrame, data: Sorted) -> pd.DataFrame:
    values = transaction_formulas(transaction_stats(data))
    # One contiguous row per feature, gathered back into input order; its transpose is the
    # column-major block pandas keeps, so no copy follows.
    restore = np.empty_like(data.order)
    restore[data.order] = np.arange(len(data.order))
    columns = np.empty((len(TRANSACTION_FEATURES), len(data.order)), dtype=np.float64)
    for j, column in enumerate(values):
        np.take(np.broadcast_to(column, restore.shape), restore, out=columns[j])
    matrix = columns.T
    return pd.DataFrame(matrix, index=df.index, columns=list(TRANSACTION_FEATURES), copy=False)


def _user_frame(data: Sorted) -> pd.DataFrame:
    values = user_formulas(user_stats(data))
    matrix = np.column_stack([np.broadcast_to(v, (data.n_users,)) for v in values])
    frame = pd.DataFrame(
        matrix.astype(np.float64, copy=False), index=data.users, columns=list(USER_FEATURES)
    )
    frame.index.name = USER_ID
    return frame
