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


def test_the_pipeline_trains_the_detector_with_merchant_risk_from_the_labels_table(
    bigquery_emulator: Service,
    mlflow_server: Service,
    stack_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The whole DAG (kfp.local) reading a labels table: the registered detector reads the
    merchant risk the bridge serves and was trained only on labels known at the cut-off; run
    again, the gate scores that champion on the challenger's test rows with the same as-of
    merchant risk (rescored, not its recorded metrics)."""
    import json

    from finrisk import features, registry
    from finrisk.cli import main
    from finrisk.evaluation.runs import AnomalyRun
    from finrisk.evaluation.split import FRAUD_LABEL_DELAY_DAYS
    from finrisk.features.definitions import SERVED_MERCHANT_FEATURES
    from finrisk.monitoring.warehouse import Tables, ensure_tables, label_row
    from finrisk.retraining.evaluation import RESCORED
    from finrisk.retraining.label_file import LABELS_FILE
    from finrisk.retraining.training import load_run
    from finrisk.sinks.bigquery import insert_rows
    from finrisk.stack.tables import load_table
    from finrisk.synthetic.labels import synthetic_labels

    bq = stack_settings.bigquery
    client = bigquery_client(bq.project, bq.endpoint)
    tables = Tables(bq.project, f"pipeline_{uuid.uuid4().hex[:10]}")
    client.create_dataset(f"{tables.project}.{tables.dataset}")
    transactions, users, _ = generate(200, 35, 5, scenario="hard")
    source = {
        name: f"{tables.project}.{tables.dataset}.{name}" for name in ("transactions", "users")
    }
    load_table(client, source["transactions"], transactions, HISTORY_COLUMNS)
    load_table(client, source["users"], users, USER_COLUMNS)
    ensure_tables(client, tables)
    records = synthetic_labels(transactions, 5)
    assert (
        insert_rows(client, tables.labels_id, [label_row(r) for r in records], deadline_s=60) == []
    )

    # The tasks inherit this environment: the emulator's endpoints, as the ConfigMap gives them.
    monkeypatch.setenv(cluster.BIGQUERY_ENDPOINT_KEY, bq.endpoint)
    monkeypatch.setenv(cluster.BIGQUERY_READ_ENDPOINT_KEY, bq.read_endpoint)
    suffix = uuid.uuid4().hex[:8]
    detector = f"it-labels-detector-{suffix}"
    parameters = {
        "data_source": "bigquery",
        "bigquery_table": source["transactions"],
        "bigquery_users_table": source["users"],
        "bigquery_labels_table": tables.labels_id,
        "label_maturity_days": 10,
        "detector_model_name": detector,
        "risk_model_name": f"it-labels-risk-{suffix}",
        "mlflow_experiment": f"it-labels-{suffix}",
        "detector_params": '{"max_iter": 40, "min_positives": 5}',
        "risk_params": '{"max_iter": 40}',
        "detector_floor": 0.0,
        "risk_floor": 0.0,
    }
    argv = ["pipeline", "run", "--local", "--json", "--tracking-uri", mlflow_server.address]
    for name, value in parameters.items():
        argv += ["-p", f"{name}={value}"]
    results = []
    for run in ("run1", "run2"):
        code = main([*argv, "--pipeline-root", str(tmp_path / run)])
        out, err = capsys.readouterr()
        assert code == 0, err[-4000:]
        results.append(json.loads(out))
    assert results[0]["gate_decision"] == "promote", results[0]["gate_reason"]

    # Registered: a detector the bridge serves merchant risk for.
    loaded = registry.load(detector, "champion", tracking_uri=mlflow_server.address)
    assert tuple(loaded.compiled.feature_names) == (
        *features.TRANSACTION_FEATURES,
        *SERVED_MERCHANT_FEATURES,
    )
    (run1,) = [p for p in (tmp_path / "run1").iterdir() if p.is_dir()]
    # Ingest kept the labels beside the transactions; the detector trained on labels known at
    # the cut-off only: no training or validation row within the delay before the test.
    assert (run1 / "validate-data" / "dataset" / LABELS_FILE).is_file()
    trained = load_run(run1 / "train-detector" / "training_run", AnomalyRun)
    assert trained.split.label_delay_days == FRAUD_LABEL_DELAY_DAYS
    dataset = read_dataset(run1 / "validate-data" / "dataset").transactions
    times = pd.to_datetime(dataset[TIMESTAMP], utc=True)
    known = trained.split.train | trained.split.validation
    assert times[known].max() < trained.split.labels_known_before
    assert (times[~known & ~trained.split.test] >= trained.split.labels_known_before).all()
    assert trained.facts["merchant_features"] is True

    # Run 2: the champion reading merchant risk is rescored on this run's test rows.
    (run2,) = [p for p in (tmp_path / "run2").iterdir() if p.is_dir()]
    result = json.loads((run2 / "evaluate-models" / "evaluation").read_text())
    assert result["champion"]["detector"]["source"] == RESCORED
    assert result["champion"]["detector"]["version"] == "1"
    assert result["details"]["detector"]["merchant_features"] is True
    client.delete_dataset(f"{tables.project}.{tables.dataset}", delete_contents=True)
