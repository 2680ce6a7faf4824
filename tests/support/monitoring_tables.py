"""Monitoring tables in the BigQuery emulator for the monitor's tests: the bridge's
`model_monitoring` table, its rows, realized days, and the decisions read back."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from google.cloud import bigquery

from finrisk.bigquery_client import bigquery_client
from finrisk.monitoring import records
from finrisk.monitoring.realized import RealizedDay
from finrisk.monitoring.warehouse import schema
from finrisk.settings import Settings

NOW = datetime.now(UTC).replace(microsecond=0)
MODEL = "finrisk-anomaly-detector"


def realized(client: Any, dataset: str, *, since: date, until: date) -> list[RealizedDay]:
    """A week of steady labelled days: quality holds, labels suffice."""
    return [
        RealizedDay(
            "champion", "3", until - timedelta(days=d), 5000, 300, 20, 40, 16, 0.8, 0.4, 2.0
        )
        for d in range(7)
        if until - timedelta(days=d) >= since
    ]


def window(i: int, psi: float, role: str = "champion") -> dict[str, Any]:
    end = NOW - timedelta(minutes=10 * (6 - i))
    level = "major" if psi > 0.25 else "moderate" if psi >= 0.1 else "stable"
    return {
        "window_id": f"{role}-{i}-{uuid.uuid4().hex[:6]}",
        "bridge_instance": "finrisk-bridge-0",
        "model": MODEL,
        "model_version": "3",
        "role": role,
        "window_start": (end - timedelta(minutes=10)).isoformat(),
        "window_end": end.isoformat(),
        "event_time_min": (end - timedelta(minutes=11)).isoformat(),
        "event_time_max": end.isoformat(),
        "transactions": 5000,
        "binned_transactions": 5000,
        "dead_lettered": 3,
        "dead_letter_rate": 0.0006,
        "missing_rate": 0.0,
        "feature_psi": json.dumps({"amount": psi, "hour": 0.01}),
        "max_feature_psi": psi,
        "drifted_features": json.dumps(["amount"] if psi >= 0.25 else []),
        "category_psi": 0.02,
        "score_psi": 0.03,
        "alert_rate": 0.01,
        "reference_alert_rate": 0.01,
        "band_mix": None,
        "drift_level": level,
    }


def insert(settings: Settings, rows: list[dict[str, Any]]) -> None:
    client = bigquery_client(settings.bigquery.project, settings.bigquery.endpoint)
    table = f"{settings.bigquery.project}.{settings.monitor.bigquery_dataset}.model_monitoring"
    assert client.insert_rows_json(table, rows) == []


def decisions(settings: Settings) -> list[dict[str, Any]]:
    client = bigquery_client(settings.bigquery.project, settings.bigquery.endpoint)
    table = f"{settings.bigquery.project}.{settings.monitor.bigquery_dataset}.monitor_decisions"
    rows = client.query(f"SELECT * FROM `{table}` ORDER BY decided_at").result()
    return [dict(row) for row in rows]


def create_tables(settings: Settings) -> Settings:
    """A fresh dataset with an empty monitoring table; settings pointing the monitor at it."""
    dataset = f"test_monitor_{uuid.uuid4().hex[:10]}"
    bq = settings.bigquery
    client = bigquery_client(bq.project, bq.endpoint)
    client.create_dataset(f"{bq.project}.{dataset}")
    # The bridge's table as the loader creates it (finrisk.monitoring.records), alone: the
    # labels and scored tables do not exist yet, as before the loader first ran.
    table = bigquery.Table(
        f"{bq.project}.{dataset}.{records.MONITORING_TABLE}",
        schema=schema(records.FIELD_TYPES, records.NULLABLE_FIELDS),
    )
    table.time_partitioning = bigquery.TimePartitioning(field=records.PARTITION_FIELD)
    client.create_table(table)
    # The retraining policy alone: the live gate, which reads MLflow, has tests of its own.
    monitor = settings.monitor.model_copy(
        update={"bigquery_dataset": dataset, "bigquery_endpoint": bq.endpoint, "live_gate": False}
    )
    return settings.model_copy(update={"monitor": monitor})
