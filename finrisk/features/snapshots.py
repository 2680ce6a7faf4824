"""Point-in-time user features, so the risk model learns what short histories look like.

The bridge asks the risk model about a user after every transaction, from the user's history
so far: a few days of it for a new customer. A model trained only on whole histories misreads
those (measured: every transaction in a new customer's first weeks came out HIGH). Training
therefore also sees each user's features as of several cut-off days into their history,
labelled like the user; the batch path computes them on the history before the cut-off, so
they are what the online path would have said at that point.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from finrisk.features.batch import user_features
from finrisk.schema import TIMESTAMP, USER_ID

# Days after each user's first transaction; a user contributes a snapshot at a cut-off only
# when their history goes on beyond it (otherwise it would repeat their whole-history row).
HISTORY_CUTOFF_DAYS: tuple[int, ...] = (7, 14, 30, 60)
# The column naming a snapshot's cut-off day (0 where a table also holds whole histories).
HISTORY_CUTOFF = "history_cutoff_days"


def history_snapshots(
    transactions: pd.DataFrame, cutoff_days: tuple[int, ...] = HISTORY_CUTOFF_DAYS
) -> pd.DataFrame:
    """USER_FEATURES of each user's history before each cut-off, and the HISTORY_CUTOFF,
    indexed by user id (a user appears once per cut-off their history goes beyond)."""
    stamps = pd.to_datetime(transactions[TIMESTAMP], utc=True)
    users = transactions[USER_ID]
    first = stamps.groupby(users).transform("min")
    last = stamps.groupby(users).transform("max")
    parts = []
    for days in cutoff_days:
        cutoff = first + pd.Timedelta(days=days)
        beyond = users[last >= cutoff].unique()
        before = transactions[(stamps < cutoff) & users.isin(beyond)]
        if len(before):
            parts.append(user_features(before).assign(**{HISTORY_CUTOFF: days}))
    if not parts:
        return user_features(transactions).iloc[:0].assign(**{HISTORY_CUTOFF: 0})
    return pd.concat(parts)


def training_rows(
    table: pd.DataFrame, labels: npt.ArrayLike, snapshots: pd.DataFrame | None
) -> tuple[pd.DataFrame, npt.NDArray[np.int64]]:
    """The whole-history rows of `table` (indexed by user id, `labels` aligned) plus the
    snapshots of the same users, each labelled like its user."""
    y = np.asarray(labels, dtype=np.int64)
    if snapshots is None or snapshots.empty:
        return table, y
    by_user = pd.Series(y, index=table.index)
    extra = snapshots.loc[snapshots.index.isin(table.index), list(table.columns)]
    rows = pd.concat([table, extra])
    return rows, np.concatenate([y, by_user.loc[extra.index].to_numpy(dtype=np.int64)])
