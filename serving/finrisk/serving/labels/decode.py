"""One consumed record to one warehouse row, or the reason it is dead-lettered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from finrisk.errors import FinriskError
from finrisk.labels import parse_label
from finrisk.monitoring.records import monitoring_row
from finrisk.monitoring.warehouse import label_row, scored_row
from finrisk.serving.bridge.messages import SCHEMA_INVALID, UNPARSEABLE

LABELS = "labels"
SCORED = "scored"
MONITORING = "monitoring"


@dataclass(frozen=True)
class Row:
    table: str  # LABELS, SCORED or MONITORING
    row_id: str  # the insertId
    values: dict[str, Any]


@dataclass(frozen=True)
class Refused:
    kind: str  # UNPARSEABLE or SCHEMA_INVALID, the bridge's dead-letter kinds
    reason: str


def decode(table: str, value: bytes | None) -> Row | Refused:
    """The row a labels-topic (LABELS), scored-topic (SCORED) or monitoring-topic
    (MONITORING) record makes."""
    if value is None:
        return Refused(UNPARSEABLE, "no value (a tombstone)")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Refused(UNPARSEABLE, f"not JSON: {exc}")
    if not isinstance(doc, dict):  # parse_label would read a JSON string as JSON again
        return Refused(
            SCHEMA_INVALID, f"a {table} record is a JSON object, not {type(doc).__name__}"
        )
    try:
        if table == LABELS:
            row_id, values = label_row(parse_label(doc))
        elif table == SCORED:
            row_id, values = scored_row(doc)
        else:
            row_id, values = monitoring_row(doc)
    except FinriskError as exc:
        return Refused(SCHEMA_INVALID, f"not a {table} record: {exc}")
    return Row(table, row_id, values)
