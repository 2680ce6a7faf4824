"""Label records (finrisk.labels), the synthetic label stream, the warehouse rows, the loader's
decoding and the reference realized metrics."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import orjson
import pytest

from finrisk.labels import (
    CHARGEBACK,
    FRAUD_CONFIRMED,
    LEGITIMATE,
    LabelError,
    label_of,
    parse_label,
)
from finrisk.monitoring.warehouse import ScoredRecordError, scored_row
from finrisk.serving.labels.decode import LABELS, SCORED, Refused, Row, decode
from finrisk.synthetic import generate
from finrisk.synthetic import labels as synthetic
from tests.support.realized_reference import reference_realized

GOOD = {
    "transaction_id": "tx1",
    "user_id": "u1",
    "event_time": "2025-01-02T10:00:00Z",
    "outcome": "chargeback",
    "labelled_at": "2025-01-20T08:30:00+00:00",
    "source": "synthetic",
}


def test_a_record_round_trips() -> None:
    record = parse_label(orjson.dumps(GOOD))
    assert record.event_time == datetime(2025, 1, 2, 10, tzinfo=UTC)
    assert record.is_fraud and record.key == b"u1"
    assert parse_label(record.to_json()) == record
    assert record.as_json_dict()["labelled_at"] == "2025-01-20T08:30:00Z"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object, got list"),
        (
            orjson.dumps({k: v for k, v in GOOD.items() if k != "user_id"}),
            "missing fields: user_id",
        ),
        (orjson.dumps(GOOD | {"outcome": "stolen"}), "outcome 'stolen' is not one of"),
        (orjson.dumps(GOOD | {"transaction_id": 7}), "transaction_id must be a string, got int"),
        (orjson.dumps(GOOD | {"user_id": "  "}), "user_id is empty"),
        (orjson.dumps(GOOD | {"user_id": "u" * 300}), "300 characters"),
        (orjson.dumps(GOOD | {"event_time": "yesterday"}), "'yesterday' is not an RFC 3339"),
        (orjson.dumps(GOOD | {"event_time": "2025-01-02T10:00:00"}), "has no UTC offset"),
        (orjson.dumps(GOOD | {"labelled_at": 1736000000}), "labelled_at must be an RFC 3339"),
        (orjson.dumps(GOOD | {"labelled_at": "2025-01-01T00:00:00Z"}), "is before event_time"),
        (orjson.dumps(GOOD | {"extra": 1}), "unknown fields: extra"),
        (orjson.dumps(GOOD | {"outcome": "x" * 10_000}), "..."),
    ],
)
def test_hostile_records_are_named(value: bytes, words: str) -> None:
    with pytest.raises(LabelError, match=None) as caught:
        parse_label(value)
    assert words in str(caught.value)
    assert len(str(caught.value)) < 300  # a megabyte of input is not echoed back


def test_any_fraud_outcome_makes_fraud() -> None:
    assert label_of([LEGITIMATE, CHARGEBACK]) == 1
    assert label_of([FRAUD_CONFIRMED]) == 1
    assert label_of([LEGITIMATE]) == 0


def test_synthetic_labels_follow_the_documented_delays_and_seed() -> None:
    transactions, _, _ = generate(300, 60, 3)
    records = synthetic.synthetic_labels(transactions, 3)
    assert records == synthetic.synthetic_labels(transactions, 3)
    assert records != synthetic.synthetic_labels(transactions, 4)
    fraud_ids = set(transactions.loc[transactions.is_fraud == 1, "transaction_id"])
    ranges = {
        FRAUD_CONFIRMED: synthetic.FRAUD_CONFIRMED_DELAY_DAYS,
        CHARGEBACK: synthetic.CHARGEBACK_DELAY_DAYS,
        LEGITIMATE: synthetic.LEGITIMATE_DELAY_DAYS,
    }
    for record in records:
        low, high = ranges[record.outcome]
        assert low - 1e-5 <= record.delay_days <= high + 1e-5
        assert record.is_fraud == (record.transaction_id in fraud_ids)
    assert [r.labelled_at for r in records] == sorted(r.labelled_at for r in records)
    labelled_frauds = {r.transaction_id for r in records if r.is_fraud}
    unlabelled = 1 - len(labelled_frauds) / len(fraud_ids)
    assert 0 < unlabelled < 3 * synthetic.FRAUD_UNLABELLED_SHARE + 0.05
    legit = sum(r.outcome == LEGITIMATE for r in records) / (len(transactions) - len(fraud_ids))
    assert (
        0.25 * synthetic.LEGITIMATE_LABELLED_SHARE < legit < 4 * synthetic.LEGITIMATE_LABELLED_SHARE
    )
    # Labels are drawn apart from the generator: the data is what it was without them.
    assert generate(300, 60, 3)[0].equals(transactions)


def test_a_label_file_round_trips_and_names_a_bad_line(tmp_path) -> None:
    transactions, _, _ = generate(40, 20, 1)
    records = synthetic.synthetic_labels(transactions, 1)
    path = tmp_path / "labels.jsonl"
    synthetic.write_labels(path, records)
    assert synthetic.read_labels(path) == records
    path.write_bytes(path.read_bytes() + b'{"oops": 1}\n')
    with pytest.raises(Exception, match=rf"line {len(records) + 1}: missing fields"):
        synthetic.read_labels(path)


SCORED_DOC = {
    "transaction_id": "tx1",
    "user_id": "u1",
    "event_time": "2025-01-02T10:00:00+00:00",
    "anomaly_score": 0.9,
    "is_anomaly": True,
    "threshold": 0.5,
    "risk_probability": None,
    "risk_band": None,
    "detector_version": "3",
    "risk_model_version": None,
    "scored_at_ms": 1735812000040,
    "reasons": [],
}


def test_a_scored_record_makes_a_compact_row_with_or_without_a_challenger() -> None:
    row_id, row = scored_row(SCORED_DOC)
    assert row_id == "tx1" and "amount" not in row
    assert row["reasons"] == "[]" and row["recommendations"] is None  # a LOW or unasked row
    assert row["challenger_version"] is None and row["scored_at"].startswith("2025-01-02T10:00:00")
    _, row = scored_row(
        SCORED_DOC
        | {"challenger_version": "4", "challenger_score": 0.1, "challenger_is_anomaly": False}
    )
    assert row["challenger_is_anomaly"] is False and row["challenger_score"] == 0.1


def test_a_scored_rows_reasons_and_recommendations_are_json_text() -> None:
    reasons = [{"feature": "overdraft_freq", "contribution": 0.2}]
    recommendations = [
        {
            "actions": [{"lever": "avoid_overdrafts", "reduce_by": 0.5}],
            "changes": [{"feature": "overdraft_freq", "from": 0.2, "to": 0.1}],
            "cost": 0.5,
            "probability": 0.3,
            "band": "LOW",
        }
    ]
    _, row = scored_row(SCORED_DOC | {"reasons": reasons, "recommendations": recommendations})
    assert json.loads(row["reasons"]) == reasons
    assert json.loads(row["recommendations"]) == recommendations
    _, row = scored_row({k: v for k, v in SCORED_DOC.items() if k != "reasons"})
    assert row["reasons"] is None  # an older bridge's record
    assert scored_row(SCORED_DOC | {"recommendations": []})[1]["recommendations"] == "[]"
    refused = decode(SCORED, orjson.dumps(SCORED_DOC | {"recommendations": "[]"}))
    assert isinstance(refused, Refused) and refused.kind == "schema_invalid"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"is_anomaly": "yes"}, "is_anomaly must be true or false"),
        ({"anomaly_score": float("nan")}, "finite"),
        ({"anomaly_score": True}, "must be a number"),
        ({"scored_at_ms": 1.5}, "epoch milliseconds"),
        ({"detector_version": None}, "missing fields: detector_version"),
        ({"event_time": "2025-01-02"}, "no UTC offset"),
        ({"challenger_version": "4"}, "come together"),
        ({"recommendations": "[]"}, "recommendations must be a list or null, got str"),
        ({"reasons": {"a": 1}}, "reasons must be a list or null, got dict"),
    ],
)
def test_bad_scored_records_are_named(change: dict, words: str) -> None:
    with pytest.raises(ScoredRecordError) as caught:
        scored_row(SCORED_DOC | change)
    assert words in str(caught.value)


def test_decode_sorts_records_into_rows_and_dead_letter_kinds() -> None:
    assert isinstance(decode(LABELS, orjson.dumps(GOOD)), Row)
    assert decode(LABELS, orjson.dumps(GOOD)).row_id == "tx1:chargeback"  # type: ignore[union-attr]
    assert isinstance(decode(SCORED, orjson.dumps(SCORED_DOC)), Row)
    assert decode(LABELS, b"\xff") == Refused("unparseable", decode(LABELS, b"\xff").reason)  # type: ignore[union-attr]
    assert decode(LABELS, None).kind == "unparseable"  # type: ignore[union-attr]
    assert decode(LABELS, b'"{}"').kind == "schema_invalid"  # type: ignore[union-attr]
    assert decode(SCORED, orjson.dumps(GOOD)).kind == "schema_invalid"  # type: ignore[union-attr]


def test_reference_realized_metrics_by_hand() -> None:
    def scored(tx: str, day: int, flagged: bool, version: str = "1", **more: object) -> dict:
        return {
            "transaction_id": tx,
            "event_time": f"2025-01-{day:02d}T12:00:00+00:00",
            "is_anomaly": flagged,
            "detector_version": version,
            "scored_at_ms": day,
            **more,
        }

    def label(tx: str, day: int, outcome: str, after_days: int) -> dict:
        return {
            "transaction_id": tx,
            "outcome": outcome,
            "labelled_at": f"2025-01-{day + after_days:02d}T12:00:00Z",
        }

    rows = [
        scored("a", 1, True, challenger_version="9", challenger_is_anomaly=False),
        scored("b", 1, False),
        scored("c", 1, True),
        scored("d", 1, False),
        scored("a", 1, False, version="2", scored_at_ms=99),  # a later replay: not counted
    ]
    labels = [
        label("a", 1, "fraud_confirmed", 2),
        label("a", 1, "chargeback", 20),  # a second outcome: one fraud, known from the first
        label("b", 1, "chargeback", 10),
        label("c", 1, "legitimate", 4),
    ]
    challenger, champion = reference_realized(rows, labels)  # by day, then role
    assert (champion.role, champion.model_version, champion.day) == (
        "champion",
        "1",
        date(2025, 1, 1),
    )
    assert (champion.scored, champion.labelled, champion.confirmed_fraud) == (4, 3, 2)
    assert (champion.alerted, champion.true_alerts) == (2, 1)
    assert champion.recall == 0.5 and champion.alert_precision == 0.5
    assert champion.median_label_delay_days == 4.0
    assert (challenger.role, challenger.scored, challenger.alerted) == ("challenger", 1, 0)
    assert challenger.recall == 0.0 and challenger.alert_precision is None
