"""The ingest stage reading BigQuery tables (the emulator), then validation on what it read."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest

from finrisk.bigquery_client import bigquery_client
from finrisk.demo.warehouse import HISTORY_COLUMNS, USER_COLUMNS, write_table
from finrisk.deploy import cluster
from finrisk.errors import FinriskError
from finrisk.retraining import data
from finrisk.retraining.dataset import read_dataset
from finrisk.schema import AMOUNT, TIMESTAMP, TRANSACTION_ID
from finrisk.settings import Settings
from finrisk.stack import Service
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
