"""Point-in-time user features for training the risk model on short histories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finrisk.features import USER_FEATURES, history_snapshots, user_features
from finrisk.features.snapshots import HISTORY_CUTOFF, training_rows
from finrisk.synthetic import generate


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    tx, _, _ = generate(users=30, days=40, seed=4)
    return tx


def test_a_snapshot_is_the_users_features_on_the_history_before_the_cutoff(
    transactions: pd.DataFrame,
) -> None:
    snapshots = history_snapshots(transactions, (7, 30, 60))
    assert set(snapshots[HISTORY_CUTOFF]) == {7, 30}  # nobody has 60 days of a 40-day stream
    user = snapshots.index[0]
    mine = transactions[transactions["user_id"] == user]
    cutoff = mine["timestamp"].min() + pd.Timedelta(days=7)
    expected = user_features(mine[mine["timestamp"] < cutoff]).loc[user, list(USER_FEATURES)]
    got = snapshots[snapshots[HISTORY_CUTOFF] == 7].loc[user, list(USER_FEATURES)]
    np.testing.assert_allclose(got.to_numpy(float), expected.to_numpy(float), rtol=1e-12)
    # Shorter than the whole history: the model sees what a young account looks like.
    whole = user_features(mine).loc[user]
    assert got["n_transactions"] < whole["n_transactions"]
    assert got["active_days"] < 7 <= whole["active_days"]


def test_only_users_whose_history_goes_beyond_a_cutoff_get_a_snapshot_there(
    transactions: pd.DataFrame,
) -> None:
    stamps = transactions.groupby("user_id")["timestamp"]
    span = stamps.max() - stamps.min()
    snapshots = history_snapshots(transactions, (30,))
    assert set(snapshots.index) == set(span[span >= pd.Timedelta(days=30)].index)
    assert history_snapshots(transactions, (400,)).empty


def test_training_rows_label_snapshots_like_their_users_and_keep_other_users_out(
    transactions: pd.DataFrame,
) -> None:
    table = user_features(transactions)[list(USER_FEATURES)]
    labels = np.arange(len(table)) % 2
    train = table.iloc[:20]
    rows, y = training_rows(train, labels[:20], history_snapshots(transactions, (7, 14)))
    assert set(rows.index) == set(train.index)  # held-out users' snapshots stay out
    assert len(rows) > len(train)
    by_user = dict(zip(train.index, labels[:20], strict=True))
    assert list(y) == [by_user[user] for user in rows.index]
    assert list(rows.columns) == list(USER_FEATURES)
    same, same_y = training_rows(train, labels[:20], None)
    assert same is train and list(same_y) == list(labels[:20])
