"""The ingest stage reading BigQuery tables (the emulator), then validation on what it read."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finrisk.bigquery_client import bigquery_client
from finrisk.demo.warehouse import write_table
from finrisk.deploy import cluster
from finrisk.errors import FinriskError
from finrisk.retraining import data
from finrisk.retraining.dataset import read_dataset
from finrisk.schema import AMOUNT, TIMESTAMP, TRANSACTION_ID
from finrisk.settings import Settings
from finrisk.stack import Service
from finrisk.stack.tables import HISTORY_COLUMNS, USER_COLUMNS
from finrisk.synthetic import generate

pytestmark = pytest.mark.integration


def test_ingest_from_bigquery_tables(
    bigquery_emulator: Service,
    stack_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bq = stack_settings.bigquery
    client = bigquery_client(bq.project, bq.endpoint)
    dataset = f"{bq.project}.pipeline_{uuid.uuid4().hex[:10]}"
    client.create_dataset(dataset)
    transactions, users, _ = generate(8, 6, 3)
    write_table(client, f"{dataset}.transactions", transactions, HISTORY_COLUMNS)
    write_table(client, f"{dataset}.users", users, USER_COLUMNS)

    # The endpoint reaches the task the way the ConfigMap delivers it on a cluster.
    monkeypatch.setenv(cluster.BIGQUERY_ENDPOINT_KEY, bq.endpoint)
    request = data.IngestRequest(
        source="bigquery",
        bigquery_table=f"{dataset}.transactions",
        bigquery_users_table=f"{dataset}.users",
    )
    manifest = data.ingest(request, tmp_path / "raw")
    assert manifest["rows"] == len(transactions) and manifest["users_rows"] == len(users)

    outcome = data.validate(tmp_path / "raw", tmp_path / "dataset")
    assert outcome.passed, outcome.summary
    read = read_dataset(tmp_path / "dataset").transactions.set_index(TRANSACTION_ID)
    expected = transactions.set_index(TRANSACTION_ID).loc[read.index]
    assert read[AMOUNT].tolist() == pytest.approx(expected[AMOUNT].tolist())
    assert (read[TIMESTAMP] == expected[TIMESTAMP]).all()

    with pytest.raises(FinriskError, match="does not exist"):
        data.ingest(
            data.IngestRequest(source="bigquery", bigquery_table=f"{dataset}.missing"),
            tmp_path / "missing",
        )


def test_ingest_takes_fraud_labels_from_the_labels_table(
    bigquery_emulator: Service,
    stack_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from finrisk.labels import CHARGEBACK, LEGITIMATE
    from finrisk.monitoring.warehouse import Tables, ensure_tables, label_row
    from finrisk.sinks.bigquery import insert_rows
    from finrisk.synthetic.labels import synthetic_labels

    bq = stack_settings.bigquery
    client = bigquery_client(bq.project, bq.endpoint)
    tables = Tables(bq.project, f"pipeline_{uuid.uuid4().hex[:10]}")
    client.create_dataset(f"{tables.project}.{tables.dataset}")
    transactions, users, _ = generate(40, 30, 3)
    write_table(
        client, tables.labels_id.replace("labels", "transactions"), transactions, HISTORY_COLUMNS
    )
    write_table(client, tables.labels_id.replace("labels", "users"), users, USER_COLUMNS)
    ensure_tables(client, tables)
    records = synthetic_labels(transactions, 3)
    # A fraud the source calls legitimate and a fraud later disputed: the labels decide.
    first, second = transactions.transaction_id.iloc[0], transactions.transaction_id.iloc[1]
    extra = [
        r.__class__(first, r.user_id, r.event_time, CHARGEBACK, r.labelled_at, "test")
        for r in records[:1]
    ]
    extra.append(
        records[0].__class__(
            second, "u", records[0].event_time, LEGITIMATE, records[0].labelled_at, "test"
        )
    )
    rows = [label_row(r) for r in records + extra]
    assert insert_rows(client, tables.labels_id, rows + rows, deadline_s=20) == []  # a replay

    monkeypatch.setenv(cluster.BIGQUERY_ENDPOINT_KEY, bq.endpoint)
    request = data.IngestRequest(
        source="bigquery",
        bigquery_table=tables.labels_id.replace("labels", "transactions"),
        bigquery_users_table=tables.labels_id.replace("labels", "users"),
        bigquery_labels_table=tables.labels_id,
        label_maturity_days=70,  # chargebacks come up to 60 days late
    )
    manifest = data.ingest(request, tmp_path / "raw")
    got = read_dataset(tmp_path / "raw").transactions.set_index(TRANSACTION_ID)

    fraud = {r.transaction_id for r in records + extra if r.is_fraud}
    labelled = {r.transaction_id for r in records + extra}
    horizon = max(r.labelled_at for r in records + extra)
    times = pd.to_datetime(transactions[TIMESTAMP], utc=True)
    mature = set(transactions.transaction_id[times <= horizon - pd.Timedelta(days=70)])
    assert set(got.index) == labelled | mature
    assert {tx for tx, v in got["is_fraud"].items() if v == 1} == fraud
    assert got.loc[first, "is_fraud"] == 1
    assert manifest["labels"]["unlabelled_excluded"] == len(transactions) - len(labelled | mature)
    assert manifest["labels"]["unlabelled_excluded"] > 0
    assert data.validate(tmp_path / "raw", tmp_path / "valid").passed


def test_the_sql_path_trains_from_a_bigquery_sample(
    bigquery_emulator: Service,
    stack_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ingest runs the feature SQL in BigQuery and reads back half the users, in Read API
    batches; validation, features and both trainings run on that sample, from the statistics
    BigQuery computed (nothing recomputed in pandas)."""
    from finrisk.evaluation import runs
    from finrisk.features import history_snapshots, transaction_features, user_features
    from finrisk.features.snapshots import HISTORY_CUTOFF
    from finrisk.features.sql import STATS_COLUMNS
    from finrisk.features.sql_users import USER_STATS_COLUMNS
    from finrisk.retraining import training
    from finrisk.retraining.bigquery_sample import SQL_STATS_FILE, SQL_USER_STATS_FILE
    from finrisk.retraining.training import (
        TrainingOptions,
        build_features,
        fit_detector,
        train_detector,
        train_risk,
    )
    from finrisk.schema import IS_RISKY, USER_ID
    from finrisk.stack.tables import load_table

    bq = stack_settings.bigquery
    client = bigquery_client(bq.project, bq.endpoint)
    dataset = f"{bq.project}.pipeline_{uuid.uuid4().hex[:10]}"
    client.create_dataset(dataset)
    transactions, users, _ = generate(160, 40, 5)
    load_table(client, f"{dataset}.transactions", transactions, HISTORY_COLUMNS)
    load_table(client, f"{dataset}.users", users, USER_COLUMNS)

    monkeypatch.setenv(cluster.BIGQUERY_ENDPOINT_KEY, bq.endpoint)
    monkeypatch.setenv(cluster.BIGQUERY_READ_ENDPOINT_KEY, bq.read_endpoint)
    request = data.IngestRequest(
        source="bigquery",
        bigquery_table=f"{dataset}.transactions",
        bigquery_users_table=f"{dataset}.users",
        bigquery_sample_share=0.5,
        bigquery_page_size=2_000,
    )
    manifest = data.ingest(request, tmp_path / "raw")
    raw = read_dataset(tmp_path / "raw")
    sampled = set(raw.transactions[USER_ID])
    assert 0.3 * len(users) < len(sampled) < 0.7 * len(users)
    assert raw.users is not None and set(raw.users[USER_ID]) == sampled
    # Whole histories of the sampled users, nothing of the others.
    assert manifest["rows"] == int(transactions[USER_ID].isin(sampled).sum())
    # Read API batches are the server's (the emulator's hold 65536 rows); without a read
    # endpoint the REST pages hold bigquery_page_size rows each.
    assert manifest["sql_features"]["batches"] == 1
    assert manifest["sql_features"]["read"] == "read_api"
    monkeypatch.delenv(cluster.BIGQUERY_READ_ENDPOINT_KEY)
    paged = data.ingest(request, tmp_path / "paged")
    assert paged["sql_features"]["batches"] == -(-manifest["rows"] // 2_000) > 1
    assert paged["rows"] == manifest["rows"]
    assert paged["sql_features"]["read"] == "rest_pages"
    # A row cap lowers the share from the table's row count: about that many come back.
    capped = data.ingest(
        dataclasses.replace(
            request, bigquery_sample_share=1.0, bigquery_sample_rows=len(transactions) // 4
        ),
        tmp_path / "capped",
    )
    assert 0.1 * len(transactions) < capped["rows"] < 0.45 * len(transactions)
    assert capped["sql_features"]["sample_share"] == pytest.approx(0.25, abs=0.01)
    assert set(STATS_COLUMNS) <= set(pd.read_parquet(tmp_path / "raw" / SQL_STATS_FILE).columns)
    user_stats = pd.read_parquet(tmp_path / "raw" / SQL_USER_STATS_FILE)
    assert list(user_stats.columns) == list(USER_STATS_COLUMNS)
    # No scratch table is left behind.
    assert {t.table_id for t in client.list_tables(dataset)} == {"transactions", "users"}

    outcome = data.validate(tmp_path / "raw", tmp_path / "dataset")
    assert outcome.passed, outcome.summary

    # Features and the detector's training read BigQuery's statistics: computing features in
    # pandas there fails the test.
    def no_pandas(*_: object, **__: object) -> None:
        raise AssertionError("features recomputed in pandas on the SQL path")

    with monkeypatch.context() as patched:
        for module in (training.features, runs.features):
            for name in ("batch_features", "transaction_features", "user_features"):
                patched.setattr(module, name, no_pandas)
        patched.setattr(training.features, "history_snapshots", no_pandas)
        summary = build_features(
            tmp_path / "dataset", tmp_path / "tx.parquet", tmp_path / "u.parquet"
        )
        options = TrainingOptions(seed=0)
        detector = train_detector(
            tmp_path / "dataset", tmp_path / "d.model", tmp_path / "d.run", options
        )
    assert summary.users == len(sampled)
    built = pd.read_parquet(tmp_path / "tx.parquet").set_index(TRANSACTION_ID)
    # The SQL features are those of the pandas path on the whole table.
    expected = transaction_features(transactions).set_index(transactions[TRANSACTION_ID])
    difference = (built[expected.columns] - expected.loc[built.index]).abs().max()
    assert (difference <= 1e-9).all(), difference[difference > 1e-9]
    # The user features (whole histories and snapshots) are those of the pandas path on the
    # sampled users' whole histories.
    built_users = pd.read_parquet(tmp_path / "u.parquet")
    mine = transactions[transactions[USER_ID].isin(sampled)]
    expected_users = pd.concat(
        [user_features(mine).assign(**{HISTORY_CUTOFF: 0}), history_snapshots(mine)]
    )
    keyed = [
        frame.reset_index(names=USER_ID).set_index([USER_ID, HISTORY_CUTOFF]).sort_index()
        for frame in (built_users.set_index(USER_ID), expected_users)
    ]
    assert keyed[0].index.equals(keyed[1].index)
    columns = list(expected_users.columns.drop(HISTORY_CUTOFF))
    difference = (keyed[0][columns] - keyed[1][columns]).abs().max()
    assert (difference <= 1e-9).all(), difference[difference > 1e-9]
    # The detector trained on the SQL features scores as one trained on the pandas ones.
    dataset_tx = read_dataset(tmp_path / "dataset").transactions
    pandas_run = fit_detector(dataset_tx, options)
    for name, scores in pandas_run.test_scores.items():
        np.testing.assert_allclose(detector.test_scores[name], scores, rtol=1e-6, atol=1e-9)

    risk = train_risk(tmp_path / "u.parquet", tmp_path / "r.model", tmp_path / "r.run", options)
    assert (tmp_path / "d.model").exists() and (tmp_path / "r.model").exists()
    assert detector.ours is not None and risk is not None
    assert IS_RISKY in pd.read_parquet(tmp_path / "u.parquet").columns
    client.delete_dataset(dataset, delete_contents=True, not_found_ok=True)
