"""The warehouse's side of the closed loop: the `labels`, `scored_transactions` and
`model_monitoring` tables (the last one's columns: finrisk.monitoring.records), their rows, and
the deduplicated views every query reads them through.

Both tables are day-partitioned on the transaction's `event_time` (what the realized metrics
group by) and written by streaming inserts whose insertId is the row's identity
(`transaction_id`; for labels `transaction_id:outcome`). insertId deduplication is best effort
(and the emulator does none), so the loader's at-least-once replays can leave duplicate rows:
`LABELS_BY_TRANSACTION` and `SCORED_ONCE` are where they stop counting.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import bigquery

from finrisk.errors import FinriskError
from finrisk.labels import FRAUD_OUTCOMES, MAX_ID_CHARS, LabelRecord, parse_time
from finrisk.monitoring import records
from finrisk.monitoring.records import MONITORING_TABLE

LABELS_TABLE = "labels"
SCORED_TABLE = "scored_transactions"
PARTITION_FIELD = "event_time"

LABEL_COLUMNS: dict[str, str] = {
    "transaction_id": "STRING",
    "user_id": "STRING",
    "event_time": "TIMESTAMP",
    "outcome": "STRING",
    "labelled_at": "TIMESTAMP",
    "source": "STRING",
}
SCORED_COLUMNS: dict[str, str] = {
    "transaction_id": "STRING",
    "user_id": "STRING",
    "event_time": "TIMESTAMP",
    "scored_at": "TIMESTAMP",
    "detector_version": "STRING",
    "anomaly_score": "FLOAT",
    "is_anomaly": "BOOLEAN",
    "threshold": "FLOAT",
    "risk_model_version": "STRING",
    "risk_band": "STRING",
    "risk_probability": "FLOAT",
    # A shadow challenger's verdict, when the bridge scored one beside the champion.
    "challenger_version": "STRING",
    "challenger_score": "FLOAT",
    "challenger_is_anomaly": "BOOLEAN",
    # The risk model's top reasons and its recommendations (finrisk.models.recommendations)
    # as the scored record carries them, JSON text; NULL where the record has none (LOW rows
    # get no recommendations; records of a bridge not asking for them carry none).
    "reasons": "STRING",
    "recommendations": "STRING",
}
SCORED_NULLABLE = frozenset(
    {
        "threshold",
        "risk_model_version",
        "risk_band",
        "risk_probability",
        "challenger_version",
        "challenger_score",
        "challenger_is_anomaly",
        "reasons",
        "recommendations",
    }
)
_JSON_LISTS = ("reasons", "recommendations")
_STRINGS = ("transaction_id", "user_id", "detector_version")
_OPTIONAL_STRINGS = ("risk_model_version", "risk_band", "challenger_version")
_OPTIONAL_NUMBERS = ("threshold", "risk_probability", "challenger_score")

_FRAUD_LIST = ", ".join(f"'{outcome}'" for outcome in sorted(FRAUD_OUTCOMES))

# One row per labelled transaction: fraud when any outcome is (finrisk.labels' rule), known
# from its first label; fraud_labelled_at is when its fraud became known (its earliest fraud
# outcome, NULL when none: what merchant risk counts from). Replayed rows change none.
LABELS_BY_TRANSACTION = f"""
SELECT transaction_id,
       LOGICAL_OR(outcome IN ({_FRAUD_LIST})) AS is_fraud,
       MIN(labelled_at) AS labelled_at,
       MIN(IF(outcome IN ({_FRAUD_LIST}), labelled_at, NULL)) AS fraud_labelled_at
FROM `{{labels}}`
GROUP BY transaction_id
"""
# One row per scored transaction: its first scoring (a replay scores it again, later).
SCORED_ONCE = """
SELECT * FROM `{scored}`
WHERE TRUE
QUALIFY ROW_NUMBER() OVER (
  PARTITION BY transaction_id ORDER BY scored_at, detector_version) = 1
"""


class ScoredRecordError(FinriskError):
    """A scored record the loader cannot take; the message names what is wrong."""


@dataclass(frozen=True)
class Tables:
    """Where the two tables live."""

    project: str
    dataset: str
    labels: str = LABELS_TABLE
    scored: str = SCORED_TABLE
    monitoring: str = MONITORING_TABLE

    @property
    def labels_id(self) -> str:
        return f"{self.project}.{self.dataset}.{self.labels}"

    @property
    def scored_id(self) -> str:
        return f"{self.project}.{self.dataset}.{self.scored}"

    @property
    def monitoring_id(self) -> str:
        return f"{self.project}.{self.dataset}.{self.monitoring}"


def schema(columns: Mapping[str, str], nullable: frozenset[str]) -> list[bigquery.SchemaField]:
    return [
        bigquery.SchemaField(name, kind, mode="NULLABLE" if name in nullable else "REQUIRED")
        for name, kind in columns.items()
    ]


def ensure_tables(
    client: bigquery.Client, tables: Tables, *, location: str | None = None, timeout_s: float = 30
) -> None:
    """The dataset and the tables, day-partitioned (labels and scored on event_time, the
    monitoring windows on window_end), created when missing; a table made by an older finrisk
    gets the NULLABLE columns it lacks added (BigQuery adds NULLABLE columns in place, and the
    rows already there read NULL), so an existing warehouse keeps loading."""
    dataset = bigquery.Dataset(f"{tables.project}.{tables.dataset}")
    if location:
        dataset.location = location
    wanted = (
        (
            tables.labels_id,
            schema(LABEL_COLUMNS, frozenset()),
            PARTITION_FIELD,
            "Confirmed outcomes",
        ),
        (
            tables.scored_id,
            schema(SCORED_COLUMNS, SCORED_NULLABLE),
            PARTITION_FIELD,
            "What the models said",
        ),
        (
            tables.monitoring_id,
            schema(records.FIELD_TYPES, records.NULLABLE_FIELDS),
            records.PARTITION_FIELD,
            "The bridge's monitoring windows",
        ),
    )
    try:
        client.create_dataset(dataset, exists_ok=True, timeout=timeout_s)
        for table_id, fields, partition, description in wanted:
            table = bigquery.Table(table_id, schema=fields)
            table.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY, field=partition
            )
            table.description = f"{description} (finrisk labels load)"
            made = client.create_table(table, exists_ok=True, timeout=timeout_s)
            _add_missing_columns(client, made, fields, timeout_s)
    except (gexc.GoogleAPIError, OSError) as exc:
        raise FinriskError(f"cannot create the tables in {dataset.dataset_id}: {exc}") from None


def _add_missing_columns(
    client: bigquery.Client,
    table: bigquery.Table,
    fields: list[bigquery.SchemaField],
    timeout_s: float,
) -> None:
    """Add the NULLABLE columns `fields` has and `table` lacks (a table of an older finrisk).

    DDL first: BigQuery adds the column to the table and its schema; the emulator adds it to
    its storage only. Then the schema, where it still lacks them (the emulator's catalog):
    an update that real BigQuery, already showing the columns, never needs."""
    have = {field.name for field in table.schema}
    missing = [field for field in fields if field.name not in have]
    if not missing:
        return
    required = [field.name for field in missing if field.mode != "NULLABLE"]
    if required:
        raise FinriskError(
            f"table {table.full_table_id} lacks REQUIRED column(s) {', '.join(required)}: "
            "only NULLABLE columns can be added to an existing table"
        )
    table_id = f"{table.project}.{table.dataset_id}.{table.table_id}"
    for field in missing:  # names and types are this module's constants, not input
        ddl = f"ALTER TABLE `{table_id}` ADD COLUMN IF NOT EXISTS {field.name} {field.field_type}"
        client.query(ddl, timeout=timeout_s).result(timeout=timeout_s)
    table = client.get_table(table_id, timeout=timeout_s)
    have = {field.name for field in table.schema}
    still = [field for field in missing if field.name not in have]
    if still:
        table.schema = [*table.schema, *still]
        client.update_table(table, ["schema"], timeout=timeout_s)


# ---------------------------------------------------------------- rows


def label_row(record: LabelRecord) -> tuple[str, dict[str, Any]]:
    """(insertId, row) of a label: one row per transaction and outcome."""
    return f"{record.transaction_id}:{record.outcome}", {
        "transaction_id": record.transaction_id,
        "user_id": record.user_id,
        "event_time": record.event_time.isoformat(),
        "outcome": record.outcome,
        "labelled_at": record.labelled_at.isoformat(),
        "source": record.source,
    }


def scored_row(doc: object) -> tuple[str, dict[str, Any]]:
    """(insertId, row) of a scored record as the bridge writes it (its other fields are
    dropped); ScoredRecordError names what is wrong."""
    if not isinstance(doc, Mapping):
        raise ScoredRecordError(f"a scored record is a JSON object, got {type(doc).__name__}")
    missing = [
        name
        for name in (*_STRINGS, "event_time", "scored_at_ms", "anomaly_score", "is_anomaly")
        if doc.get(name) is None
    ]
    if missing:
        raise ScoredRecordError(f"missing fields: {', '.join(missing)}")
    row: dict[str, Any] = {}
    for name in _STRINGS:
        row[name] = _string(doc, name)
    for name in _OPTIONAL_STRINGS:
        row[name] = None if doc.get(name) is None else _string(doc, name)
    try:
        row["event_time"] = parse_time(doc["event_time"], "event_time").isoformat()
    except FinriskError as exc:
        raise ScoredRecordError(str(exc)) from None
    scored_at_ms = doc["scored_at_ms"]
    if type(scored_at_ms) is not int or not 0 <= scored_at_ms < 2**53:
        raise ScoredRecordError(f"scored_at_ms must be epoch milliseconds, got {scored_at_ms!r}")
    row["scored_at"] = datetime.fromtimestamp(scored_at_ms / 1000, tz=UTC).isoformat()
    row["anomaly_score"] = _number(doc, "anomaly_score")
    for name in _OPTIONAL_NUMBERS:
        row[name] = None if doc.get(name) is None else _number(doc, name)
    row["is_anomaly"] = _flag("is_anomaly", doc["is_anomaly"])
    challenger = doc.get("challenger_is_anomaly")
    row["challenger_is_anomaly"] = (
        None if challenger is None else _flag("challenger_is_anomaly", challenger)
    )
    if (row["challenger_version"] is None) != (row["challenger_score"] is None):
        raise ScoredRecordError("challenger_version and challenger_score come together or not")
    for name in _JSON_LISTS:
        row[name] = _json_list(doc, name)
    return row["transaction_id"], {name: row[name] for name in SCORED_COLUMNS}


def _string(doc: Mapping[str, Any], name: str) -> str:
    value = doc[name]
    if not isinstance(value, str) or not value:
        raise ScoredRecordError(f"{name} must be a non-empty string, got {type(value).__name__}")
    if len(value) > MAX_ID_CHARS:
        raise ScoredRecordError(f"{name} is {len(value)} characters, more than {MAX_ID_CHARS}")
    return value


def _json_list(doc: Mapping[str, Any], name: str) -> str | None:
    """A list field as JSON text for a STRING column; None when absent or null."""
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise ScoredRecordError(f"{name} must be a list or null, got {type(value).__name__}")
    return json.dumps(value, separators=(",", ":"))


def _number(doc: Mapping[str, Any], name: str) -> float:
    value = doc[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScoredRecordError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ScoredRecordError(f"{name} must be finite, got {value}")
    return float(value)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ScoredRecordError(f"{name} must be true or false, got {type(value).__name__}")
    return value
