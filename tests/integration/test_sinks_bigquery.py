"""The shared sink suite on BigQuery (the emulator), plus the table's schema and partitioning."""

from __future__ import annotations

import json
import uuid

import pytest
import requests
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from finrisk.settings import Settings
from finrisk.sinks.bigquery import BigQuerySink, table_schema
from finrisk.stack import Service
from tests.support.sink_contract import MakeSink, SinkContract, record

pytestmark = pytest.mark.integration


def _dataset() -> str:
    return f"test_sink_{uuid.uuid4().hex[:10]}"


class TestBigQuerySink(SinkContract):
    @pytest.fixture
    def make_sink(self, bigquery_emulator: Service, stack_settings: Settings) -> MakeSink:
        bq = stack_settings.bigquery
        dataset = _dataset()
        return lambda: BigQuerySink(
            bq.project, dataset, "anomalies", endpoint=bq.endpoint, batch_rows=500, timeout_s=20
        )


def test_table_is_created_with_schema_and_day_partitions(
    bigquery_emulator: Service, stack_settings: Settings
) -> None:
    bq = stack_settings.bigquery
    sink = BigQuerySink(bq.project, _dataset(), "anomalies", endpoint=bq.endpoint)
    table = sink._client.get_table(sink.table_id)
    assert [(f.name, f.field_type, f.mode) for f in table.schema] == [
        (f.name, f.field_type, f.mode) for f in table_schema()
    ]
    assert table.time_partitioning.type_ == bigquery.TimePartitioningType.DAY
    assert table.time_partitioning.field == "event_time"
    sink.close()


class _RecordingSession(requests.Session):
    """A real HTTP session to the emulator that keeps the insertAll bodies it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.inserts: list[dict[str, object]] = []

    def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        if "/insertAll" in url and "data" in kwargs:
            self.inserts.append(json.loads(kwargs["data"]))
        return super().request(method, url, *args, **kwargs)


def test_insert_ids_are_transaction_ids_and_requests_are_batched(
    bigquery_emulator: Service, stack_settings: Settings
) -> None:
    bq = stack_settings.bigquery
    session = _RecordingSession()
    # The emulator ignores insertId, so look at what was sent to it.
    client = bigquery.Client(
        project=bq.project,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=bq.endpoint),
        _http=session,
    )
    sink = BigQuerySink(
        bq.project, _dataset(), "anomalies", endpoint=bq.endpoint, batch_rows=100, client=client
    )
    sink.write([record(i) for i in range(250)])
    sink.flush()
    assert [len(body["rows"]) for body in session.inserts] == [100, 100, 50]  # type: ignore[arg-type]
    sent = [row["insertId"] for body in session.inserts for row in body["rows"]]  # type: ignore[attr-defined]
    assert sent == [f"tx{i:06d}" for i in range(250)]
    assert len(sink.read()) == 250
