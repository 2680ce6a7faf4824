"""The bank's side of the warehouse: its transaction history and users, as BigQuery tables the
retraining reads (the drift demo's, and the pipeline's BigQuery tests'), written by streaming
inserts (`write_table`) or, for large tables, one load job from a Parquet file (`load_table`:
100k rows load in about a second into the emulator, against about a minute of inserts)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import pandas as pd

from finrisk.errors import FinriskError

# BigQuery types of the canonical transaction columns (finrisk.schema), and of the users'.
HISTORY_COLUMNS = {
    "transaction_id": "STRING",
    "user_id": "STRING",
    "timestamp": "TIMESTAMP",
    "amount": "FLOAT",
    "direction": "STRING",
    "category": "STRING",
    "merchant": "STRING",
    "channel": "STRING",
    "balance_after": "FLOAT",
    "is_fraud": "INTEGER",
    "fraud_type": "STRING",
}
USER_COLUMNS = {"user_id": "STRING", "is_risky": "INTEGER"}
# Rows per insert request.
CHUNK = 5_000


def write_table(
    client: Any, table_id: str, frame: pd.DataFrame, columns: Mapping[str, str]
) -> None:
    """A table of the frame's `columns` (created when missing), in chunks of inserts."""
    from google.api_core.retry import Retry
    from google.cloud import bigquery

    schema = [bigquery.SchemaField(name, kind) for name, kind in columns.items()]
    table = client.create_table(bigquery.Table(table_id, schema=schema), exists_ok=True)
    rows = frame[list(columns)].copy()
    for name, kind in columns.items():
        if kind == "TIMESTAMP":
            rows[name] = rows[name].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    records = rows.to_dict(orient="records")
    for begin in range(0, len(records), CHUNK):
        # The emulator answers a bad row with HTTP 500, which the client would otherwise retry
        # for ten minutes.
        errors = client.insert_rows_json(
            table, records[begin : begin + CHUNK], retry=Retry(timeout=60), timeout=60
        )
        if errors:
            raise FinriskError(f"{table_id} refused rows: {errors[:3]}")


def load_table(client: Any, table_id: str, frame: pd.DataFrame, columns: Mapping[str, str]) -> None:
    """A table of the frame's `columns` (replaced when it exists), by one Parquet load job."""
    from google.api_core import exceptions
    from google.cloud import bigquery

    schema = [bigquery.SchemaField(name, kind) for name, kind in columns.items()]
    buffer = io.BytesIO()
    frame[list(columns)].to_parquet(buffer, index=False)
    buffer.seek(0)
    config = bigquery.LoadJobConfig(
        schema=schema,
        source_format=bigquery.SourceFormat.PARQUET,
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
    )
    try:
        client.load_table_from_file(buffer, table_id, job_config=config).result(timeout=600)
    except exceptions.GoogleAPIError as exc:
        raise FinriskError(f"loading {table_id} failed: {exc}") from None
