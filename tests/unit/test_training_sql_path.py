"""The SQL path's training inputs: features come from the statistics files, and a dataset whose
files do not fit together is refused by name (the statistics themselves are checked against
the pandas path through the emulator, tests/integration/test_pipeline_bigquery.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from finrisk import features
from finrisk.errors import FinriskError
from finrisk.evaluation.runs import run_anomaly
from finrisk.features.sql import PREVIOUS_MICROS, STATS_COLUMNS
from finrisk.retraining import training
from finrisk.retraining.bigquery_sample import SQL_STATS_FILE, SQL_USER_STATS_FILE
from finrisk.retraining.dataset import Dataset, write_dataset
from finrisk.schema import TRANSACTION_ID
from finrisk.synthetic import generate


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    transactions, users, _ = generate(12, 20, 1)
    folder = tmp_path_factory.mktemp("sql-dataset")
    write_dataset(folder, Dataset(transactions, users, {}))
    return folder, transactions


def _stats(transactions: pd.DataFrame) -> pd.DataFrame:
    """Statistics of every transaction (values of a user's first transaction: enough to run
    the formulas, which is all these tests need)."""
    stats = pd.DataFrame({TRANSACTION_ID: transactions[TRANSACTION_ID]})
    for column in STATS_COLUMNS:
        stats[column] = 0
    stats[PREVIOUS_MICROS] = None
    return stats


def test_without_statistics_the_pandas_path_runs(dataset: tuple[Path, pd.DataFrame]) -> None:
    folder, transactions = dataset
    assert training.sql_transaction_features(folder, transactions) is None


def test_transaction_statistics_without_user_statistics_are_refused(
    dataset: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    folder, transactions = dataset
    _stats(transactions).to_parquet(folder / SQL_STATS_FILE, index=False)
    try:
        sql = training.sql_transaction_features(folder, transactions)
        assert sql is not None and list(sql.columns) == list(features.TRANSACTION_FEATURES)
        assert sql.index.equals(transactions.index)
        with pytest.raises(FinriskError, match=f"no {SQL_USER_STATS_FILE}"):
            training.build_features(folder, tmp_path / "tx.parquet", tmp_path / "u.parquet")
    finally:
        (folder / SQL_STATS_FILE).unlink()


def test_statistics_missing_transactions_are_refused(dataset: tuple[Path, pd.DataFrame]) -> None:
    folder, transactions = dataset
    _stats(transactions).iloc[1:].to_parquet(folder / SQL_STATS_FILE, index=False)
    try:
        with pytest.raises(FinriskError, match="no statistics for 1 transaction"):
            training.sql_transaction_features(folder, transactions)
    finally:
        (folder / SQL_STATS_FILE).unlink()


def test_given_features_must_be_the_transactions(dataset: tuple[Path, pd.DataFrame]) -> None:
    """run_anomaly takes features already computed only when they are those of its rows."""
    _, transactions = dataset
    given = features.transaction_features(transactions)
    with pytest.raises(FinriskError, match="columns"):
        run_anomaly(transactions, transaction_features=given.iloc[:, 1:])
    with pytest.raises(FinriskError, match="not indexed like the transactions"):
        run_anomaly(transactions, transaction_features=given.iloc[1:])


def test_rows_left_out_by_labels_get_user_features_of_the_rows_kept(tmp_path: Path) -> None:
    """With a labels table, ingest leaves out recent unlabelled transactions: the user features
    then describe the rows kept (as on the pandas path), not the whole history the SQL user
    statistics describe (no user statistics are needed at all)."""
    transactions, users, _ = generate(12, 20, 1)
    manifest = {"labels": {"unlabelled_excluded": 3}}
    write_dataset(tmp_path, Dataset(transactions, users, manifest))
    _stats(transactions).to_parquet(tmp_path / SQL_STATS_FILE, index=False)
    training.build_features(tmp_path, tmp_path / "tx.parquet", tmp_path / "u.parquet")
    written = training.read_user_features(tmp_path / "u.parquet")[0]
    expected = features.user_features(transactions)
    pd.testing.assert_frame_equal(
        written[list(expected.columns)], expected, check_names=False, check_index_type=False
    )
