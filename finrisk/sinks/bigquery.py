"""BigQuery sink: streaming inserts (insertAll) into a day-partitioned table it creates.

Each row's insertId is its transaction id, so BigQuery drops (best effort, about a minute) a
row that a replayed batch inserts again. Requests carry at most `batch_rows` rows (BigQuery
recommends ~500) and are retried a bounded number of times with backoff; the client's own
retry gets a short deadline, since its default retries a failing request for ten minutes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import bigquery

from finrisk.bigquery_client import bigquery_client
from finrisk.errors import FinriskError
from finrisk.sinks.base import (
    FIELD_TYPES,
    NULLABLE_FIELDS,
    PARTITION_FIELD,
    AnomalyRecord,
    AnomalySink,
    SinkError,
)

DEFAULT_BATCH_ROWS = 500


def table_schema() -> list[bigquery.SchemaField]:
    return [
        bigquery.SchemaField(name, kind, mode="NULLABLE" if name in NULLABLE_FIELDS else "REQUIRED")
        for name, kind in FIELD_TYPES.items()
    ]


class BigQuerySink(AnomalySink):
    """Anomalies in `project.dataset.table`, created with the schema when missing."""

    # insertId deduplication is best effort (and the local emulator does none).
    exact_deduplication = False

    def __init__(
        self,
        project: str,
        dataset: str,
        table: str,
        *,
        endpoint: str | None = None,
        location: str | None = None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        max_attempts: int = 5,
        timeout_s: float = 30.0,
        client: bigquery.Client | None = None,
    ) -> None:
        super().__init__()
        self.table_id = f"{project}.{dataset}.{table}"
        self.batch_rows = batch_rows
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self._client = client or bigquery_client(project, endpoint)
        self._retry = Retry(initial=0.1, maximum=1.0, timeout=timeout_s)
        self._ensure_table(project, dataset, location)

    @property
    def location(self) -> str:
        return f"bigquery:{self.table_id}"

    def _ensure_table(self, project: str, dataset: str, location: str | None) -> None:
        ds = bigquery.Dataset(f"{project}.{dataset}")
        if location:
            ds.location = location
        table = bigquery.Table(self.table_id, schema=table_schema())
        table.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field=PARTITION_FIELD
        )
        table.description = "Transactions flagged as anomalous by the finrisk bridge"
        try:
            self._client.create_dataset(
                ds, exists_ok=True, retry=self._retry, timeout=self.timeout_s
            )
            self._client.create_table(
                table, exists_ok=True, retry=self._retry, timeout=self.timeout_s
            )
        except (gexc.GoogleAPIError, OSError) as exc:
            raise FinriskError(f"cannot create the BigQuery table {self.table_id}: {exc}") from None

    def _store(self, records: Sequence[AnomalyRecord]) -> None:
        for start in range(0, len(records), self.batch_rows):
            self._insert(records[start : start + self.batch_rows])

    def _insert(self, records: Sequence[AnomalyRecord]) -> None:
        rows = [to_json_row(record) for record in records]
        row_ids = [record.transaction_id for record in records]
        problem: object = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                errors = self._client.insert_rows_json(
                    self.table_id, rows, row_ids=row_ids, retry=self._retry, timeout=self.timeout_s
                )
            except (gexc.GoogleAPIError, OSError) as exc:
                problem = exc
            else:
                if not errors:
                    return
                # Without skipInvalidRows one bad row fails the whole request: resend it all.
                problem = errors[:3]
            if attempt < self.max_attempts:
                time.sleep(min(0.1 * 2**attempt, 2.0))
        raise SinkError(
            f"BigQuery table {self.table_id}: {len(rows)} rows not stored after "
            f"{self.max_attempts} attempts: {problem}"
        )

    def read(self) -> list[AnomalyRecord]:
        job = self._client.query(
            f"SELECT {', '.join(FIELD_TYPES)} FROM `{self.table_id}` "
            "ORDER BY event_time, transaction_id"
        )
        return [
            AnomalyRecord(**{name: row[name] for name in FIELD_TYPES})
            for row in job.result(timeout=self.timeout_s)
        ]

    def close(self) -> None:
        self._client.close()


def to_json_row(record: AnomalyRecord) -> dict[str, Any]:
    values = record.as_dict()
    for name, kind in FIELD_TYPES.items():
        if kind == "TIMESTAMP":
            values[name] = values[name].isoformat()
    return values
