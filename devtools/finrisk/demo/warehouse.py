"""The bank's side of the warehouse: its transaction history and users, as BigQuery tables the
retraining reads (the drift demo's, and the pipeline's BigQuery tests'), written by streaming
inserts (the emulator's way in for a few rows; finrisk.stack.tables loads large ones)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from finrisk.errors import FinriskError

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
