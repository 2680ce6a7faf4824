"""Local file sink: a SQLite database, the embedded default when no BigQuery is configured.

Rows are keyed by transaction id, so a replayed batch overwrites instead of duplicating.
Timestamps are stored as integer microseconds since the epoch (UTC), like BigQuery does.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finrisk.errors import FinriskError
from finrisk.sinks.base import (
    FIELD_TYPES,
    NULLABLE_FIELDS,
    AnomalyRecord,
    AnomalySink,
    SinkError,
    micros,
    utc_from_micros,
)

_SQL_TYPES = {"STRING": "TEXT", "FLOAT": "REAL", "TIMESTAMP": "INTEGER", "BOOLEAN": "INTEGER"}
TABLE = "anomalies"


def _column(name: str, kind: str) -> str:
    null = "" if name in NULLABLE_FIELDS else " NOT NULL"
    key = " PRIMARY KEY" if name == "transaction_id" else ""
    return f"{name} {_SQL_TYPES[kind]}{null}{key}"


class LocalSink(AnomalySink):
    """Anomalies in one SQLite file (WAL journal, synchronous commits)."""

    def __init__(self, path: str | Path, *, deadline_s: float = 10.0, busy_timeout_s: float = 5.0):
        super().__init__()
        self.path = Path(path)
        self.deadline_s = deadline_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            columns = ", ".join(_column(name, kind) for name, kind in FIELD_TYPES.items())
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({columns})")
            self._db.execute(
                f"CREATE INDEX IF NOT EXISTS {TABLE}_event_time ON {TABLE} (event_time)"
            )
            self._db.commit()
        except (OSError, sqlite3.Error) as exc:
            raise FinriskError(f"cannot open the local anomaly sink {self.path}: {exc}") from None
        names = ", ".join(FIELD_TYPES)
        marks = ", ".join("?" for _ in FIELD_TYPES)
        updates = ", ".join(f"{n} = excluded.{n}" for n in FIELD_TYPES if n != "transaction_id")
        self._upsert = (
            f"INSERT INTO {TABLE} ({names}) VALUES ({marks}) "
            f"ON CONFLICT(transaction_id) DO UPDATE SET {updates}"
        )

    @property
    def location(self) -> str:
        return f"sqlite:{self.path}"

    def _store(self, records: Sequence[AnomalyRecord]) -> None:
        rows = [_to_row(record) for record in records]
        deadline = time.monotonic() + self.deadline_s
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._db:  # one transaction: all rows or none
                    self._db.executemany(self._upsert, rows)
                return
            except sqlite3.OperationalError as exc:  # locked, disk I/O: worth another try
                wait = min(0.05 * 2**attempt, 1.0)
                if time.monotonic() + wait > deadline:
                    raise SinkError(
                        f"local anomaly sink {self.path}: {len(rows)} rows not stored "
                        f"({attempt} attempts in {self.deadline_s:g} s): {exc}"
                    ) from None
                time.sleep(wait)

    def read(self) -> list[AnomalyRecord]:
        cursor = self._db.execute(
            f"SELECT {', '.join(FIELD_TYPES)} FROM {TABLE} ORDER BY event_time, transaction_id"
        )
        return [_from_row(row) for row in cursor.fetchall()]

    def close(self) -> None:
        self._db.close()


def _to_row(record: AnomalyRecord) -> tuple[Any, ...]:
    values = record.as_dict()
    return tuple(
        micros(values[name]) if kind == "TIMESTAMP" else values[name]
        for name, kind in FIELD_TYPES.items()
    )


def _from_row(row: Sequence[Any]) -> AnomalyRecord:
    values: dict[str, Any] = {
        name: utc_from_micros(value) if kind == "TIMESTAMP" else value
        for (name, kind), value in zip(FIELD_TYPES.items(), row, strict=True)
    }
    return AnomalyRecord(**values)
