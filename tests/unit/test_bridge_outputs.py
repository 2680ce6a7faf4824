"""Scored records and anomaly records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from finrisk.serving.bridge.messages import MessageParser, Transaction, encode_transaction
from finrisk.serving.bridge.outputs import Score, anomaly_record, event_times, scored_values

TX = MessageParser().parse(
    encode_transaction(
        {
            "transaction_id": "tx9",
            "user_id": "u3",
            "timestamp": 1_735_689_600_123,
            "amount": 99.5,
            "direction": "debit",
            "category": "electronics",
            "merchant": "Gadgets",
            "channel": "online",
            "balance_after": 12.0,
        }
    )
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
REASONS = [{"feature": "expense_income_ratio", "contribution": 0.25}]
SCORE = Score(0.93, True, 0.9, 0.81, "HIGH", REASONS, "7", "3")


def test_scored_record_has_everything_downstream_needs() -> None:
    (value,) = scored_values(
        [TX],
        [SCORE],
        scored_at_ms=1_735_689_601_000,
        latencies_ms=[12.34567],
        positions=[(2, 41)],
        history_days=[17.123456],
    )
    doc = orjson.loads(value)
    assert doc == {
        "transaction_id": "tx9",
        "user_id": "u3",
        "event_time": "2025-01-01T00:00:00.123000+00:00",
        "amount": 99.5,
        "direction": "debit",
        "category": "electronics",
        "channel": "online",
        "anomaly_score": 0.93,
        "is_anomaly": True,
        "threshold": 0.9,
        "risk_probability": 0.81,
        "risk_band": "HIGH",
        "reasons": REASONS,
        "recommendations": None,
        "history_days": 17.12,
        "detector_version": "7",
        "risk_model_version": "3",
        "challenger_version": None,
        "challenger_score": None,
        "challenger_is_anomaly": None,
        "scored_at_ms": 1_735_689_601_000,
        "latency_ms": 12.346,
        "source": {"partition": 2, "offset": 41},
    }


def test_a_scored_record_carries_the_recommendations_beside_the_reasons() -> None:
    recs = [
        {
            "actions": [{"lever": "spend_less", "reduce_by": 0.1}],
            "changes": [{"feature": "expense_income_ratio", "from": 1.2, "to": 1.08}],
            "cost": 0.1,
            "probability": 0.66,
            "band": "MEDIUM",
        }
    ]
    for carried in (recs, []):
        (value,) = scored_values(
            [TX],
            [SCORE._replace(recommendations=carried)],
            scored_at_ms=1_735_689_601_000,
            latencies_ms=[1.0],
            positions=[(0, 1)],
            history_days=[1.0],
        )
        doc = orjson.loads(value)
        assert doc["reasons"] == REASONS and doc["recommendations"] == carried


def test_a_shadow_challengers_verdict_rides_along_and_never_alerts() -> None:
    shadowed = SCORE._replace(
        is_anomaly=False, challenger_score=0.97, challenger_is_anomaly=True, challenger_version="8"
    )
    (value,) = scored_values(
        [TX],
        [shadowed],
        scored_at_ms=1_735_689_601_000,
        latencies_ms=[1.0],
        positions=[(0, 1)],
        history_days=[1.0],
    )
    doc = orjson.loads(value)
    assert (doc["challenger_version"], doc["challenger_score"]) == ("8", 0.97)
    assert doc["challenger_is_anomaly"] is True and doc["is_anomaly"] is False


def test_event_times_are_written_as_orjson_writes_datetimes() -> None:
    stamps_ms = [0, 1_735_689_600_000, 1_735_689_600_123, -1, -86_400_001, 9_000_000_000_123]
    stamps_ns = [ms * 1_000_000 for ms in stamps_ms] + [1_735_689_600_000_001_000]
    expected = [
        orjson.dumps(EPOCH + timedelta(microseconds=ns // 1000)).decode().strip('"')
        for ns in stamps_ns
    ]
    assert event_times(stamps_ns) == expected
    assert expected[2] == "2025-01-01T00:00:00.123000+00:00"
    assert expected[1] == "2025-01-01T00:00:00+00:00"


def test_anomaly_record_for_the_sink() -> None:
    record = anomaly_record(TX, SCORE, scored_at_ms=1_735_689_601_000, latency_ms=5.0)
    assert record.transaction_id == "tx9" and record.merchant == "Gadgets"
    assert record.event_time == datetime(2025, 1, 1, 0, 0, 0, 123_000, tzinfo=UTC)
    assert record.scored_at == datetime(2025, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert orjson.loads(record.reasons) == REASONS
    assert (record.risk_band, record.detector_version) == ("HIGH", "7")


def _scored(txs: list[Transaction], scores: list[Score]) -> list[bytes]:
    n = len(txs)
    return scored_values(
        txs,
        scores,
        scored_at_ms=1_735_689_601_000,
        latencies_ms=[1.5] * n,
        positions=[(0, i) for i in range(n)],
        history_days=[3.0] * n,
    )


def test_each_scored_record_is_the_json_of_its_own_transaction() -> None:
    # Values holding the text between two records of a JSON array, and a nested object that
    # starts like a record: each record still holds exactly its own transaction.
    tricky = '},{"transaction_id":"tx9'
    fields = [
        {**TX.fields, "transaction_id": f"tx{i}", "user_id": tricky if i == 1 else f"u{i}"}
        for i in range(4)
    ]
    txs = [TX._replace(fields=f) for f in fields]
    look_alike = [{"transaction_id": "nested"}, {"transaction_id": "again"}]
    for reasons in (REASONS, look_alike):
        scores = [SCORE._replace(reasons=reasons if i == 2 else []) for i in range(4)]
        docs = [orjson.loads(value) for value in _scored(txs, scores)]
        assert [doc["transaction_id"] for doc in docs] == ["tx0", "tx1", "tx2", "tx3"]
        assert docs[1]["user_id"] == tricky
        assert [doc["reasons"] for doc in docs] == [[], [], reasons, []]
        assert [doc["source"]["offset"] for doc in docs] == [0, 1, 2, 3]


def test_no_transactions_no_scored_records() -> None:
    assert _scored([], []) == []
