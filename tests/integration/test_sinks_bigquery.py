"""The shared sink suite on BigQuery (the emulator), plus the table's schema and partitioning."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from finrisk.bigquery_client import bigquery_client
from finrisk.settings import Settings
from finrisk.sinks import SinkError
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
            bq.project, dataset, "anomalies", endpoint=bq.endpoint, batch_rows=500, deadline_s=20
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


def test_rows_refused_for_good_are_set_aside_with_the_reason_and_the_others_stored(
    bigquery_emulator: Service, stack_settings: Settings
) -> None:
    bq = stack_settings.bigquery
    dataset = _dataset()
    # An operator changed a column's type: rows with a band no longer fit the table.
    drifted = [
        bigquery.SchemaField(f.name, "FLOAT", mode=f.mode) if f.name == "risk_band" else f
        for f in table_schema()
    ]
    client = bigquery_client(bq.project, bq.endpoint)
    client.create_dataset(dataset)
    client.create_table(bigquery.Table(f"{bq.project}.{dataset}.anomalies", schema=drifted))
    sink = BigQuerySink(bq.project, dataset, "anomalies", endpoint=bq.endpoint, batch_rows=3)
    fits = [record(i, risk_band=None) for i in range(4)]
    refused = [record(10 + i) for i in range(3)]  # risk_band "HIGH"
    sink.write([fits[0], refused[0], fits[1], fits[2], refused[1], refused[2], fits[3]])
    sink.flush()
    assert sorted(r.transaction_id for r in sink.read()) == [r.transaction_id for r in fits]
    rejected = sink.take_rejected()
    assert sorted(r.record.transaction_id for r in rejected) == [r.transaction_id for r in refused]
    assert all(r.reason.startswith("invalid") for r in rejected)
    assert sink.take_rejected() == [] and sink.pending == 0  # set aside once, never resent
    sink.close()


def test_an_unavailable_bigquery_fails_the_flush_by_its_deadline_and_keeps_the_rows(
    own_bigquery: Service,
) -> None:
    project = own_bigquery.settings.bigquery.project
    sink = BigQuerySink(
        project, _dataset(), "anomalies", endpoint=own_bigquery.address, deadline_s=1.5
    )
    sink.write([record(i) for i in range(3)])
    own_bigquery.down()
    started = time.monotonic()
    with pytest.raises(SinkError, match=r"3 rows not stored \(\d+ attempts in 1.5 s\)"):
        sink.flush()
    assert time.monotonic() - started < 5  # one retry layer: seconds, not minutes
    assert sink.pending == 3
    own_bigquery.up()
    assert sink.flush() == 3
    assert len(sink.read()) == 3
    sink.close()
