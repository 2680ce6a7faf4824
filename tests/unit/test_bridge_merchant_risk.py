"""Merchant risk in the bridge: the merchant-frauds feed (read whole, hostile records skipped
with a reason), the extra column a prepared batch gets, and the detector's binding to it."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from confluent_kafka import KafkaError, Message

from finrisk.features import TRANSACTION_FEATURES
from finrisk.features.definitions import SERVED_MERCHANT_FEATURES
from finrisk.features.merchant_frauds import MerchantFraud
from finrisk.serving.bridge.batch import prepare
from finrisk.serving.bridge.binding import Binding, RestartToBind
from finrisk.serving.bridge.fraud_placement import FraudPlacer
from finrisk.serving.bridge.merchant_risk import (
    MerchantFraudFeed,
    MerchantRisk,
    open_merchant_risk,
    reads_merchant_risk,
)
from finrisk.serving.bridge.messages import MessageParser
from finrisk.serving.bridge.producer import wire_records
from finrisk.serving.bridge.scoring import V2Scorer
from finrisk.serving.bridge.state import StateStore
from finrisk.serving.bridge.tx_merchants import TxMerchants
from finrisk.serving.bridge.v2_client import EndpointUnavailable
from finrisk.synthetic import generate

DAY = 86_400 * 10**9
TOPIC = "merchant-frauds"


def _msg(partition: int, offset: int, value: bytes | None) -> Message:
    return Message(topic=TOPIC, partition=partition, offset=offset, key=b"k", value=value)


def _eof(partition: int) -> Message:
    return Message(
        topic=TOPIC, partition=partition, offset=9, error=KafkaError(KafkaError._PARTITION_EOF)
    )


class _Topic:
    def __init__(self, partitions: int) -> None:
        self.error = None
        self.partitions = dict.fromkeys(range(partitions))


class _Metadata:
    def __init__(self, partitions: int) -> None:
        self.topics = {TOPIC: _Topic(partitions)}


class FakeProducer:
    def poll(self, timeout: float) -> int:
        return 0


class FakeConsumer:
    """Hands out the scripted message lists, one per consume call, then nothing."""

    def __init__(self, partitions: int, script: list[list[Message]]) -> None:
        self.partitions = partitions
        self.script = script
        self.assigned: list[Any] = []

    def list_topics(self, topic: str, timeout: float) -> _Metadata:
        return _Metadata(self.partitions)

    def assign(self, partitions: list[Any]) -> None:
        self.assigned = partitions

    def consume(self, num: int, timeout: float) -> list[Message]:
        return self.script.pop(0) if self.script else []

    def close(self) -> None:
        pass


def test_the_feed_reads_every_partition_to_its_end_and_skips_hostile_records(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = MerchantFraud("m", "t1", 10 * DAY, 11 * DAY)
    other = MerchantFraud("m", "t2", 10 * DAY, 12 * DAY)
    script = [
        [_msg(0, 0, good.value), _msg(0, 1, b"{not json"), _eof(0)],
        [_msg(1, 0, b'{"merchant": 5}'), _msg(1, 1, None), _msg(1, 2, other.value), _eof(1)],
    ]
    reasons: list[str] = []
    feed = MerchantFraudFeed(FakeConsumer(2, script), TOPIC, reasons.append)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, "finrisk.bridge"):
        assert feed.start() == 5
    # Not as a group member: every partition, from the beginning.
    assigned = feed.consumer.assigned  # type: ignore[attr-defined]
    assert [(tp.topic, tp.partition) for tp in assigned] == [(TOPIC, 0), (TOPIC, 1)]
    assert feed.invalid == 2
    assert "merchant-frauds[0]@1: value is not JSON" in reasons[0]
    assert "merchant-frauds[1]@0: value lacks the field(s)" in reasons[1]
    assert "skipped" in caplog.text
    assert feed.known.count("m", 12 * DAY) == 2


def test_poll_takes_what_arrived_without_waiting() -> None:
    consumer = FakeConsumer(1, [[_eof(0)]])
    feed = MerchantFraudFeed(consumer, TOPIC)  # type: ignore[arg-type]
    feed.start()
    consumer.script.append([_msg(0, 0, MerchantFraud("m", "t", 1 * DAY, 2 * DAY).value)])
    assert feed.poll() == 1
    assert feed.poll() == 0
    np.testing.assert_allclose(feed.features(["m", "x"], [2 * DAY, 2 * DAY]), [[np.log1p(1)], [0]])


def test_a_non_transient_error_stops_the_feed_naming_the_topic() -> None:
    bad = Message(topic=TOPIC, partition=0, error=KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    feed = MerchantFraudFeed(FakeConsumer(1, [[bad]]), TOPIC)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="reading merchant frauds from merchant-frauds"):
        feed.start()


def test_prepare_appends_the_served_merchant_features() -> None:
    transactions, _, _ = generate(users=10, days=10, seed=4)
    records = wire_records(transactions)[:50]
    messages = [
        Message(topic="tx", partition=0, offset=i, key=k, value=v, timestamp=(1, 1))
        for i, (k, v) in enumerate(records)
    ]
    first = MessageParser().parse(records[0][1])
    merchant, ts = first.fields["merchant"], first.event_ns
    feed = MerchantFraudFeed(FakeConsumer(1, [[_eof(0)]]), TOPIC)  # type: ignore[arg-type]
    feed.start()
    feed.known.add(MerchantFraud(str(merchant), "old", int(ts) - DAY, int(ts) - DAY))
    placer = FraudPlacer(FakeConsumer(1, []), "labels", feed.known, TxMerchants(), print)  # type: ignore[arg-type]
    risk = MerchantRisk(feed, placer, FakeProducer())  # type: ignore[arg-type]
    batch = prepare(messages, MessageParser(), StateStore(), checkpoint=False, merchant=risk)
    width = len(TRANSACTION_FEATURES) + len(SERVED_MERCHANT_FEATURES)
    assert batch.tx_matrix.shape == (50, width)
    assert batch.tx_matrix[0, -1] == pytest.approx(np.log1p(1))
    plain = prepare(messages, MessageParser(), StateStore(), checkpoint=False)
    assert plain.tx_matrix.shape == (50, len(TRANSACTION_FEATURES))
    np.testing.assert_array_equal(batch.tx_matrix[:, :-1], plain.tx_matrix)
    # The batch's transactions are remembered for placing their labels.
    assert placer.merchants.lookup(first.user_id, first.transaction_id) == (str(merchant), ts)


def test_a_detector_reading_merchant_risk_binds_to_the_extra_column() -> None:
    wanted = (*TRANSACTION_FEATURES, *SERVED_MERCHANT_FEATURES)
    assert reads_merchant_risk(wanted) and not reads_merchant_risk(TRANSACTION_FEATURES)
    have = V2Scorer.tx_columns(wanted)
    assert have == wanted
    assert V2Scorer.tx_columns(TRANSACTION_FEATURES) == TRANSACTION_FEATURES
    rows = np.arange(2 * len(wanted), dtype=np.float64).reshape(2, -1)
    np.testing.assert_array_equal(Binding.of("d", wanted, have).select(rows), rows)
    # A challenger on TRANSACTION_FEATURES gets those columns only, not the whole matrix.
    challenger = Binding.of("c", TRANSACTION_FEATURES, TRANSACTION_FEATURES)
    assert challenger.select(rows).shape == (2, len(TRANSACTION_FEATURES))


def test_a_matrix_without_the_merchant_column_asks_for_a_restart_naming_the_cause() -> None:
    wanted = (*TRANSACTION_FEATURES, *SERVED_MERCHANT_FEATURES)
    at_start = V2Scorer.tx_columns(wanted)
    with pytest.raises(RestartToBind, match="log_merchant_recent_frauds"):
        Binding.of("d", wanted, TRANSACTION_FEATURES, version="2", at_start=at_start)
    assert Binding.of("d", wanted, wanted, at_start=at_start).identity


class _PlainScorer:
    """A scorer that cannot say whether its detector reads merchant risk (tests' fakes)."""


class _Asks:
    def __init__(self, answer: bool) -> None:
        self.answer = answer

    def detector_reads_merchant_risk(self) -> bool:
        return self.answer


def test_no_merchant_risk_and_no_topics_for_a_detector_without_it() -> None:
    # Settings and metrics are never touched: a feed would need the broker.
    assert open_merchant_risk(None, _PlainScorer(), None) is None  # type: ignore[arg-type]
    assert open_merchant_risk(None, _Asks(False), None) is None  # type: ignore[arg-type]


class _Down:
    def detector_reads_merchant_risk(self) -> bool:
        raise EndpointUnavailable("connection refused")


def test_a_predictor_down_at_start_does_not_stop_the_bridge(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "finrisk.bridge"):
        assert open_merchant_risk(None, _Down(), None) is None  # type: ignore[arg-type]
    assert "could not ask the predictor" in caplog.text
