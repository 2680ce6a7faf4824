"""The monitoring record: one closed window of one model version, as the bridge publishes it
to the monitoring topic, and as a row of the BigQuery `model_monitoring` table.

On the topic, a record is a JSON object with the fields of `FIELD_TYPES` (times in RFC 3339
UTC, `feature_psi`, `band_mix` and `reference_band_mix` as objects, `drifted_features` as an
array). In the table, those four are JSON text, so the table keeps one fixed schema whatever
features a model has; the table is day-partitioned on `window_end`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from finrisk.errors import FinriskError
from finrisk.labels import LabelError, parse_time
from finrisk.monitoring.window import WindowReport

MONITORING_TABLE = "model_monitoring"
PARTITION_FIELD = "window_end"

TableType = Literal["STRING", "FLOAT", "INTEGER", "TIMESTAMP"]

# Column types, in table order; REQUIRED unless listed in NULLABLE_FIELDS.
FIELD_TYPES: dict[str, TableType] = {
    "window_id": "STRING",
    "bridge_instance": "STRING",
    "model": "STRING",
    "model_version": "STRING",
    "role": "STRING",
    "window_start": "TIMESTAMP",
    "window_end": "TIMESTAMP",
    "event_time_min": "TIMESTAMP",
    "event_time_max": "TIMESTAMP",
    "transactions": "INTEGER",
    "binned_transactions": "INTEGER",
    "dead_lettered": "INTEGER",
    "dead_letter_rate": "FLOAT",
    "missing_rate": "FLOAT",
    "feature_psi": "STRING",
    "max_feature_psi": "FLOAT",
    "drifted_features": "STRING",
    "category_psi": "FLOAT",
    "score_psi": "FLOAT",
    "alert_rate": "FLOAT",
    "reference_alert_rate": "FLOAT",
    "band_mix": "STRING",
    "reference_band_mix": "STRING",
    "drift_level": "STRING",
}
NULLABLE_FIELDS = frozenset(
    {
        "event_time_min",
        "event_time_max",
        "max_feature_psi",
        "category_psi",
        "score_psi",
        "alert_rate",
        "reference_alert_rate",
        "band_mix",
        "reference_band_mix",
    }
)
# Held as JSON text in the table.
JSON_FIELDS = ("feature_psi", "drifted_features", "band_mix", "reference_band_mix")


def _time(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat()


def window_record(
    report: WindowReport,
    *,
    instance: str,
    started_ms: int,
    ended_ms: int,
    dead_lettered: int,
    messages: int,
) -> dict[str, Any]:
    """The monitoring record of a closed window. `messages` counts every input message of the
    window (scored and dead-lettered), the denominator of the dead-letter rate."""
    return {
        "window_id": f"{instance}/{report.role}/{report.model}/{report.model_version}/{started_ms}",
        "bridge_instance": instance,
        "model": report.model,
        "model_version": report.model_version,
        "role": report.role,
        "window_start": _time(started_ms * 1_000_000),
        "window_end": _time(ended_ms * 1_000_000),
        "event_time_min": _time(report.event_ns_min),
        "event_time_max": _time(report.event_ns_max),
        "transactions": report.transactions,
        "binned_transactions": report.binned,
        "dead_lettered": dead_lettered,
        "dead_letter_rate": dead_lettered / messages if messages else 0.0,
        "missing_rate": report.missing_rate,
        "feature_psi": report.feature_psi,
        "max_feature_psi": report.max_feature_psi,
        "drifted_features": report.drifted_features,
        "category_psi": report.category_psi,
        "score_psi": report.score_psi,
        "alert_rate": report.alert_rate,
        "reference_alert_rate": report.reference_alert_rate,
        "band_mix": report.band_mix,
        "reference_band_mix": report.reference_band_mix,
        "drift_level": report.drift_level,
    }


def table_row(record: dict[str, Any]) -> dict[str, Any]:
    """The `model_monitoring` row of a monitoring record (its nested fields as JSON text)."""
    row = {name: record.get(name) for name in FIELD_TYPES}
    for name in JSON_FIELDS:
        if row[name] is not None:
            row[name] = orjson.dumps(row[name], option=orjson.OPT_SORT_KEYS).decode()
    return row


class MonitoringRecordError(FinriskError):
    """A record on the monitoring topic that is not a monitoring record."""


def monitoring_row(doc: object) -> tuple[str, dict[str, Any]]:
    """(insertId, row) of a monitoring record read back from the topic: every field of
    FIELD_TYPES, of its type; MonitoringRecordError names the first one that is not."""
    if not isinstance(doc, Mapping):
        raise MonitoringRecordError(
            f"a monitoring record is a JSON object, not {type(doc).__name__}"
        )
    missing = [n for n in FIELD_TYPES if n not in NULLABLE_FIELDS and doc.get(n) is None]
    if missing:
        raise MonitoringRecordError(f"missing fields: {', '.join(missing)}")
    for name, kind in FIELD_TYPES.items():
        value = doc.get(name)
        if value is None:
            continue
        if name in JSON_FIELDS:
            wanted: tuple[type, ...] = (list,) if name == "drifted_features" else (dict,)
        else:
            wanted = _PYTHON_TYPES[kind]
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise MonitoringRecordError(
                f"{name} must be {' or '.join(t.__name__ for t in wanted)}, "
                f"got {type(value).__name__}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise MonitoringRecordError(f"{name} must be finite, got {value!r}")
        if kind == "TIMESTAMP":
            try:
                parse_time(value, name)
            except LabelError as exc:  # the labels' rule for times, and their bounded messages
                raise MonitoringRecordError(str(exc)) from None
    return str(doc["window_id"]), table_row(dict(doc))


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "STRING": (str,),
    "FLOAT": (int, float),
    "INTEGER": (int,),
    "TIMESTAMP": (str,),
}
