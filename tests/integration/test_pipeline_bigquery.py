"""The ingest stage reading BigQuery tables (the emulator), then validation on what it read."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest
from google.api_core.retry import Retry
from google.cloud import bigquery

from finrisk.bigquery_client import bigquery_client
from finrisk.deploy import cluster
from finrisk.errors import FinriskError
from finrisk.retraining import data
from finrisk.retraining.dataset import read_dataset
from finrisk.schema import AMOUNT, TIMESTAMP, TRANSACTION_ID
from finrisk.settings import Settings
from finrisk.stack import Service
from finrisk.synthetic import generate

pytestmark = pytest.mark.integration

TRANSACTION_SCHEMA = [
    bigquery.SchemaField("transaction_id", "STRING"),
    bigquery.SchemaField("user_id", "STRING"),
    bigquery.SchemaField("timestamp", "TIMESTAMP"),
    bigquery.SchemaField("amount", "FLOAT"),
    bigquery.SchemaField("direction", "STRING"),
    bigquery.SchemaField("category", "STRING"),
    bigquery.SchemaField("merchant", "STRING"),
    bigquery.SchemaField("channel", "STRING"),
    bigquery.SchemaField("balance_after", "FLOAT"),
    bigquery.SchemaField("is_fraud", "INTEGER"),
    bigquery.SchemaField("fraud_type", "STRING"),
]
USER_SCHEMA = [
    bigquery.SchemaField("user_id", "STRING"),
    bigquery.SchemaField("is_risky", "INTEGER"),
]


def _rows(frame: pd.DataFrame) -> list[dict[str, object]]:
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return out.to_dict(orient="records")


def _load(client: bigquery.Client, table_id: str, schema: list, frame: pd.DataFrame) -> None:
    table = client.create_table(bigquery.Table(table_id, schema=schema))
    # The emulator answers a bad row with HTTP 500, which the client would retry for minutes.
    errors = client.insert_rows_json(table, _rows(frame), retry=Retry(timeout=20), timeout=20)
    assert errors == []


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
    _load(client, f"{dataset}.transactions", TRANSACTION_SCHEMA, transactions)
    _load(client, f"{dataset}.users", USER_SCHEMA, users[["user_id", "is_risky"]])

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
