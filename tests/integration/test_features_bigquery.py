"""SQL transaction and user features (finrisk.features.sql and sql_users, run by the BigQuery
emulator) equal the pandas batch features on over 100k synthetic transactions, ties in
timestamp and window boundaries included."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from finrisk.bigquery_client import bigquery_client
from finrisk.features import (
    TRANSACTION_FEATURES,
    USER_FEATURES,
    history_snapshots,
    sql,
    sql_users,
    transaction_features,
    user_features,
)
from finrisk.features.definitions import WINDOWS
from finrisk.features.snapshots import HISTORY_CUTOFF
from finrisk.schema import TIMESTAMP, TRANSACTION_ID, USER_ID
from finrisk.settings import Settings
from finrisk.stack import Service
from finrisk.stack.tables import HISTORY_COLUMNS, load_table
from finrisk.synthetic import generate

pytestmark = pytest.mark.integration

# 1000 users x 37 days: about 105k transactions.
USERS, DAYS = 1000, 37


def _with_edge_cases(transactions: pd.DataFrame) -> pd.DataFrame:
    """Ties (a user's two transactions in the same second, ordered by transaction id) and
    transactions exactly one shortest window after the previous one (which has expired)."""
    frame = transactions.sort_values([USER_ID, TIMESTAMP]).reset_index(drop=True)
    same_user = (frame[USER_ID].shift(-1) == frame[USER_ID]).to_numpy()
    rows = np.flatnonzero(same_user)
    shortest = pd.Timedelta(min(length for _, length in WINDOWS), unit="ns")
    stamps = frame[TIMESTAMP].to_numpy().copy()
    for i in rows[::37]:
        stamps[i + 1] = stamps[i]
    for i in rows[5::41]:
        if stamps[i + 1] - stamps[i] > shortest:
            stamps[i + 1] = stamps[i] + shortest
    frame[TIMESTAMP] = pd.to_datetime(stamps, utc=True)
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def loaded(bigquery_emulator: Service) -> Iterator[tuple[object, str, pd.DataFrame]]:
    bq = Settings().bigquery
    client = bigquery_client(bq.project, bq.endpoint)
    dataset = f"{bq.project}.features_{uuid.uuid4().hex[:10]}"
    client.create_dataset(dataset)
    transactions = _with_edge_cases(generate(USERS, DAYS, 7)[0])
    table = f"{dataset}.transactions"
    load_table(client, table, transactions, HISTORY_COLUMNS)
    try:
        yield client, table, transactions
    finally:
        client.delete_dataset(dataset, delete_contents=True, not_found_ok=True)


def test_sql_features_equal_the_batch_features(loaded: tuple[object, str, pd.DataFrame]) -> None:
    client, table, transactions = loaded
    assert len(transactions) > 100_000
    keys = transactions[[USER_ID, TIMESTAMP]]
    assert keys.duplicated().sum() > 100  # ties in timestamp are exercised

    rows = (
        client.query(sql.transaction_stats_sql(table))  # type: ignore[attr-defined]
        .result(page_size=50_000)
        .to_arrow(create_bqstorage_client=False)
        .to_pandas()
    )
    assert len(rows) == len(transactions)
    got = sql.transaction_features_from_stats(rows).set_index(rows[TRANSACTION_ID])
    expected = transaction_features(transactions).set_index(transactions[TRANSACTION_ID])
    expected = expected.loc[got.index]
    difference = (got - expected).abs().max()
    assert list(got.columns) == list(TRANSACTION_FEATURES)
    assert (difference <= 1e-9).all(), difference[difference > 1e-9]
    # The edge cases change the features they are about (a tie's gap is 0 seconds).
    assert (got["log_seconds_since_prev"] == 0).sum() > 100


def test_a_user_sample_keeps_whole_histories(loaded: tuple[object, str, pd.DataFrame]) -> None:
    client, table, transactions = loaded
    query = sql.transaction_stats_sql(table, where=sql.user_sample_condition(0.1))
    rows = client.query(query).result().to_arrow(create_bqstorage_client=False).to_pandas()  # type: ignore[attr-defined]
    users = set(rows[USER_ID])
    assert 0.05 * USERS < len(users) < 0.15 * USERS
    sampled = transactions[transactions[USER_ID].isin(users)]
    assert len(rows) == len(sampled)
    # Each sampled user's features are those of the whole table, not of a truncated history.
    got = sql.transaction_features_from_stats(rows).set_index(rows[TRANSACTION_ID])
    expected = transaction_features(transactions).set_index(transactions[TRANSACTION_ID])
    assert ((got - expected.loc[got.index]).abs().max() <= 1e-9).all()


def _query(client: object, query: str) -> pd.DataFrame:
    result = client.query(query).result(page_size=50_000)  # type: ignore[attr-defined]
    frame: pd.DataFrame = result.to_arrow(create_bqstorage_client=False).to_pandas()
    return frame


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.reset_index().set_index([USER_ID, HISTORY_CUTOFF]).sort_index()


def test_sql_user_features_equal_the_batch_features(
    loaded: tuple[object, str, pd.DataFrame],
) -> None:
    """Whole histories and every point-in-time snapshot, on the same >100k transactions."""
    client, table, transactions = loaded
    ordered = sql_users.user_features_from_stats(_query(client, sql_users.user_stats_sql(table)))
    expected = pd.concat(
        [user_features(transactions).assign(**{HISTORY_CUTOFF: 0}), history_snapshots(transactions)]
    )
    assert list(ordered.columns) == [*USER_FEATURES, HISTORY_CUTOFF]
    assert len(ordered) == len(expected) > USERS  # snapshots included
    got, expected = _keyed(ordered), _keyed(expected)
    assert got.index.equals(expected.index)
    difference = (got - expected).abs().max()
    assert (difference <= 1e-9).all(), difference[difference > 1e-9]
    # The whole histories come first, users ascending, as build_features writes them.
    whole = ordered[ordered[HISTORY_CUTOFF] == 0]
    assert list(whole.index) == sorted(set(transactions[USER_ID]))
    assert (ordered[HISTORY_CUTOFF].diff().dropna() >= 0).all()
