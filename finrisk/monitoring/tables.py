"""The BigQuery tables the retraining policy reads and writes.

- `model_monitoring` (written by the bridge, one row per window and model version): read here
  for the monitored model's windows that ended recently;
- `monitor_decisions` (written here, day-partitioned on `decided_at`): one row per decision,
  its reasons and signals, and the pipeline run it started. The last retrain decided whose run
  started is what the cooldown counts from.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.cloud import bigquery

from finrisk.errors import FinriskError
from finrisk.monitoring.policy import Decision

DECISIONS_SCHEMA = [
    bigquery.SchemaField("decision_id", "STRING", mode="REQUIRED"),
    bigquery.SchemaField("decided_at", "TIMESTAMP", mode="REQUIRED"),
    bigquery.SchemaField("model", "STRING", mode="REQUIRED"),
    bigquery.SchemaField("retrain", "BOOLEAN", mode="REQUIRED"),
    bigquery.SchemaField("reasons", "STRING", mode="REQUIRED"),  # JSON array
    bigquery.SchemaField("signals", "STRING", mode="REQUIRED"),  # JSON object
    bigquery.SchemaField("source", "STRING", mode="REQUIRED"),  # monitor | pipeline | live-gate
    bigquery.SchemaField("run", "STRING"),  # the pipeline run started, if any
    bigquery.SchemaField("launch_error", "STRING"),  # why it could not start, if so
]
_WINDOW_COLUMNS = (
    "window_id, model, model_version, role, window_end, max_feature_psi, score_psi, "
    "category_psi, drift_level"
)


@dataclass(frozen=True)
class WindowRow:
    """The columns of a `model_monitoring` row the policy reads (policy.Window) or shows."""

    window_id: str
    model: str
    model_version: str
    role: str
    window_end: datetime
    max_feature_psi: float | None
    score_psi: float | None
    category_psi: float | None
    drift_level: str | None


def table_id(project: str, dataset: str, table: str) -> str:
    return f"{project}.{dataset}.{table}"


def read_windows(
    client: bigquery.Client, table: str, *, model: str, since: datetime
) -> list[WindowRow]:
    """The model's windows that ended at or after `since`, oldest first (none: no table yet)."""
    query = (
        f"SELECT {_WINDOW_COLUMNS} FROM `{table}` "
        "WHERE model = @model AND window_end >= @since ORDER BY window_end, window_id"
    )
    config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter("model", "STRING", model),
            bigquery.ScalarQueryParameter("since", "TIMESTAMP", since),
        ]
    )
    try:
        rows = client.query(query, job_config=config).result()
    except Exception as exc:
        if _missing(exc):
            return []
        raise FinriskError(f"cannot read the monitoring table {table}: {exc}") from None
    names = WindowRow.__dataclass_fields__
    return [WindowRow(**{name: row[name] for name in names}) for row in rows]


def _missing(exc: Exception) -> bool:
    from google.api_core import exceptions as gexc

    return isinstance(exc, gexc.NotFound)


def ensure_decisions_table(client: bigquery.Client, table: str) -> None:
    dataset = table.rsplit(".", 1)[0]
    spec = bigquery.Table(table, schema=DECISIONS_SCHEMA)
    spec.time_partitioning = bigquery.TimePartitioning(
        type_=bigquery.TimePartitioningType.DAY, field="decided_at"
    )
    spec.description = "finrisk monitor: each retraining decision, its reasons and its run"
    client.create_dataset(dataset, exists_ok=True)
    client.create_table(spec, exists_ok=True)


def last_retrain(client: bigquery.Client, table: str, *, model: str) -> datetime | None:
    """When the last retrain whose run started was decided (None: never)."""
    query = (
        f"SELECT MAX(decided_at) AS last FROM `{table}` "
        "WHERE model = @model AND retrain AND launch_error IS NULL"
    )
    config = bigquery.QueryJobConfig(
        query_parameters=[bigquery.ScalarQueryParameter("model", "STRING", model)]
    )
    try:
        rows = list(client.query(query, job_config=config).result())
    except Exception as exc:
        if _missing(exc):
            return None
        raise FinriskError(f"cannot read the decisions table {table}: {exc}") from None
    value = rows[0]["last"] if rows else None
    return value if isinstance(value, datetime) else None


def decision_row(
    decision: Decision,
    *,
    model: str,
    source: str,
    run: str | None = None,
    launch_error: str | None = None,
) -> dict[str, Any]:
    return {
        "decision_id": uuid.uuid4().hex,
        "decided_at": decision.decided_at.isoformat(),
        "model": model,
        "retrain": decision.retrain,
        "reasons": json.dumps(decision.reasons),
        "signals": json.dumps(decision.signals, sort_keys=True, default=str),
        "source": source,
        "run": run,
        "launch_error": launch_error,
    }


def write_decision(client: bigquery.Client, table: str, row: dict[str, Any]) -> None:
    errors = client.insert_rows_json(table, [row], row_ids=[row["decision_id"]])
    if errors:
        raise FinriskError(f"the decisions table {table} refused the row: {errors}")
