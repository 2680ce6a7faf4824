"""The one test suite every anomaly sink backend passes (Feast's online-store pattern).

A backend's test module subclasses `SinkContract` and provides the `make_sink` fixture: a
function that opens the backend on a fresh table and can be called again to reopen the same one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from finrisk.sinks import AnomalyRecord, AnomalySink

MakeSink = Callable[[], AnomalySink]
_T0 = datetime(2025, 3, 1, 12, 30, 15, 250_000, tzinfo=UTC)


def record(i: int, **changes: object) -> AnomalyRecord:
    values: dict[str, object] = {
        "transaction_id": f"tx{i:06d}",
        "user_id": f"u{i % 7:03d}",
        "event_time": _T0 + timedelta(days=i % 3, seconds=i),
        "amount": 10.5 + i,
        "direction": "debit",
        "category": "electronics",
        "merchant": f"Shop {i}",
        "channel": "online",
        "balance_after": -42.25 + i,
        "anomaly_score": 0.5 + i / 1000,
        "threshold": 0.45,
        "risk_probability": 0.75,
        "risk_band": "HIGH",
        "reasons": orjson.dumps(
            [{"feature": "expense_income_ratio", "contribution": 0.2}]
        ).decode(),
        "detector_version": "3",
        "risk_model_version": "2",
        "scored_at": _T0 + timedelta(days=40, milliseconds=i),
        "latency_ms": 12.5,
    }
    values.update(changes)
    return AnomalyRecord(**values)  # type: ignore[arg-type]


def _key(r: AnomalyRecord) -> tuple[datetime, str]:
    return (r.event_time, r.transaction_id)


class SinkContract:
    @pytest.fixture
    def make_sink(self) -> MakeSink:
        raise NotImplementedError("a backend's test class provides make_sink")

    def test_flushed_records_read_back_equal(self, make_sink: MakeSink) -> None:
        written = [record(i) for i in range(5)]
        with make_sink() as sink:
            sink.write(written)
            assert sink.flush() == 5
            assert sink.read() == sorted(written, key=_key)

    def test_nothing_is_stored_before_flush(self, make_sink: MakeSink) -> None:
        with make_sink() as sink:
            sink.write([record(1), record(2)])
            assert sink.pending == 2
            assert sink.read() == []
            sink.flush()
            assert sink.pending == 0
            assert len(sink.read()) == 2

    def test_nullable_fields_and_timestamps_keep_their_values(self, make_sink: MakeSink) -> None:
        bare = record(
            9,
            threshold=None,
            risk_probability=None,
            risk_band=None,
            risk_model_version=None,
            reasons="[]",
            event_time=datetime(2024, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC),
        )
        with make_sink() as sink:
            sink.write([bare])
            sink.flush()
            (back,) = sink.read()
        assert back == bare
        assert back.event_time.tzinfo is not None
        assert back.event_time.utcoffset() == timedelta(0)

    def test_more_rows_than_one_request_all_arrive(self, make_sink: MakeSink) -> None:
        written = [record(i) for i in range(1_234)]
        with make_sink() as sink:
            sink.write(written)
            sink.flush()
            ids = [r.transaction_id for r in sink.read()]
        assert sorted(ids) == sorted(r.transaction_id for r in written)

    def test_a_transaction_written_twice_is_never_lost(self, make_sink: MakeSink) -> None:
        with make_sink() as sink:
            sink.write([record(1), record(2)])
            sink.flush()
            # A batch replayed after a crash writes the same transactions again.
            sink.write([record(2), record(3)])
            sink.flush()
            stored = [r.transaction_id for r in sink.read()]
            exact = sink.exact_deduplication
        assert set(stored) == {"tx000001", "tx000002", "tx000003"}
        if exact:
            assert sorted(stored) == ["tx000001", "tx000002", "tx000003"]

    def test_reopening_keeps_the_table_and_its_rows(self, make_sink: MakeSink) -> None:
        with make_sink() as sink:
            sink.write([record(4)])
            sink.flush()
        with make_sink() as again:
            assert [r.transaction_id for r in again.read()] == ["tx000004"]
            again.write([record(5)])
            again.flush()
            assert len(again.read()) == 2
