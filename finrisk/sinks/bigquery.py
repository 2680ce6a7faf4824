"""BigQuery sink: streaming inserts (insertAll) into a day-partitioned table it creates.

Each row's insertId is its transaction id, so BigQuery drops (best effort, about a minute) a
row that a replayed batch inserts again. Requests carry at most `batch_rows` rows (BigQuery
recommends ~500) with skipInvalidRows: a row that does not fit the table (say, a column an
operator changed) is refused with reason "invalid" while the others are stored; it is set aside
with BigQuery's reason (`take_rejected`) and never sent again. What may pass by itself (5xx,
429, 408, a connection error, a timeout) is retried with backoff until `deadline_s` from the
start of the flush, which then raises SinkError (the bridge pauses and tries again later): one
retry layer, the client's own switched off (it retries for up to ten minutes by default).

Why insertAll and not the Storage Write API: its default stream is at least once with no
deduplication at all, where insertAll drops most replayed rows by insertId; exactly once needs
a committed stream whose offsets survive the bridge's restarts and rebalances (state nothing
else here needs); the emulator is no faster per request on either (both copy the table), and at
a few anomalies per thousand transactions the price difference is negligible.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import requests
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
    Rejected,
    SinkError,
)

DEFAULT_BATCH_ROWS = 500
# The client's own retry off: this sink is the one layer that retries, within its deadline.
_NO_RETRY = Retry(predicate=lambda _exc: False)


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
        deadline_s: float = 10.0,
        client: bigquery.Client | None = None,
    ) -> None:
        super().__init__()
        self.table_id = f"{project}.{dataset}.{table}"
        self.batch_rows = batch_rows
        self.deadline_s = deadline_s
        self._client = client or bigquery_client(project, endpoint)
        self._retry = Retry(initial=0.1, maximum=1.0, timeout=deadline_s)
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
                ds, exists_ok=True, retry=self._retry, timeout=self.deadline_s
            )
            self._client.create_table(
                table, exists_ok=True, retry=self._retry, timeout=self.deadline_s
            )
        except (gexc.GoogleAPIError, OSError) as exc:
            raise FinriskError(f"cannot create the BigQuery table {self.table_id}: {exc}") from None

    def _store(self, records: Sequence[AnomalyRecord]) -> None:
        deadline = time.monotonic() + self.deadline_s
        for start in range(0, len(records), self.batch_rows):
            self._insert(records[start : start + self.batch_rows], deadline)

    def _insert(self, records: Sequence[AnomalyRecord], deadline: float) -> None:
        refused = insert_rows(
            self._client,
            self.table_id,
            [(record.transaction_id, to_json_row(record)) for record in records],
            deadline_s=self.deadline_s,
            deadline=deadline,
        )
        self._rejected.extend(Rejected(records[index], reason) for index, reason in refused)

    def read(self) -> list[AnomalyRecord]:
        job = self._client.query(
            f"SELECT {', '.join(FIELD_TYPES)} FROM `{self.table_id}` "
            "ORDER BY event_time, transaction_id"
        )
        return [
            AnomalyRecord(**{name: row[name] for name in FIELD_TYPES})
            for row in job.result(timeout=self.deadline_s)
        ]

    def close(self) -> None:
        self._client.close()


def to_json_row(record: AnomalyRecord) -> dict[str, Any]:
    values = record.as_dict()
    for name, kind in FIELD_TYPES.items():
        if kind == "TIMESTAMP":
            values[name] = values[name].isoformat()
    return values


def _passes_by_itself(exc: Exception) -> bool:
    """Unavailable, overloaded or slow: worth sending again. Anything else (a missing table,
    no permission, a malformed request) needs someone to act."""
    if isinstance(exc, gexc.GoogleAPICallError):
        return exc.code is None or exc.code in (408, 429) or exc.code >= 500
    return True  # connection refused or reset, timeouts


def _backoff(attempt: int) -> float:
    return min(0.1 * 2**attempt, 2.0)


def insert_rows(
    client: bigquery.Client,
    table_id: str,
    rows: Sequence[tuple[str, dict[str, Any]]],
    *,
    deadline_s: float,
    deadline: float | None = None,
) -> list[tuple[int, str]]:
    """Stream (insertId, row) pairs into `table_id`; the (index, BigQuery's reason) of each row
    the table refused (skipInvalidRows: the others are stored). What may pass by itself is
    retried with backoff until `deadline` (monotonic; default `deadline_s` from now), then
    SinkError: nothing is known stored. The anomaly sink and the warehouse loader both write
    through it: one retry layer, the client's own off (_NO_RETRY)."""
    if not rows:
        return []
    if deadline is None:
        deadline = time.monotonic() + deadline_s
    attempt = 0
    while True:
        attempt += 1
        try:
            errors = client.insert_rows_json(
                table_id,
                [row for _, row in rows],
                row_ids=[row_id for row_id, _ in rows],
                skip_invalid_rows=True,
                retry=_NO_RETRY,
                timeout=max(deadline - time.monotonic(), 0.5),
            )
        except (gexc.GoogleAPIError, OSError, requests.RequestException) as exc:
            if not _passes_by_itself(exc) or time.monotonic() + _backoff(attempt) > deadline:
                raise SinkError(
                    f"BigQuery table {table_id}: {len(rows)} rows not stored "
                    f"({attempt} attempts in {deadline_s:g} s): {exc}"
                ) from None
            time.sleep(_backoff(attempt))
            continue
        # With skipInvalidRows the others are stored; only the invalid ones are named.
        return [
            (
                int(entry["index"]),
                "; ".join(
                    f"{e.get('reason', '?')}: {e.get('message', '')}".strip()
                    for e in entry.get("errors", [])
                )
                or "refused",
            )
            for entry in errors
        ]
