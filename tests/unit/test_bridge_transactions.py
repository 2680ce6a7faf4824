"""Exactly once, call by call as librdkafka's contract says: a retriable error retries the same
call, an abortable one aborts (the caller replays), a fatal one stops the bridge."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from finrisk.serving.bridge.app import build_bridge
from finrisk.serving.bridge.delivery import (
    BridgeFenced,
    Delivery,
    OutputUnavailable,
    ProducerFailed,
    TransactionAborted,
)
from finrisk.serving.bridge.exactly_once import ExactlyOnce
from finrisk.settings import BridgeSettings, Settings

RECORDS = [("scored", b"u1", b"{}", None, None), ("state", b"u1", b"s", [("h", b"1")], 0)]
OFFSETS = [TopicPartition("tx", 0, 10)]


def _error(code: int, **flags: bool) -> KafkaException:
    return KafkaException(KafkaError(code, "scripted", **flags))


class ScriptedProducer:
    """Records every transactional call; `fail[name]` lists errors its next calls raise."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.produced = 0
        self.fail: dict[str, list[KafkaException]] = {}

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.fail.get(name):
            raise self.fail[name].pop(0)

    def begin_transaction(self) -> None:
        self._call("begin")

    def produce(self, *args: Any, **kwargs: Any) -> None:
        self.produced += 1

    def send_offsets_to_transaction(self, *args: Any) -> None:
        self._call("offsets")

    def commit_transaction(self, *args: Any) -> None:
        self._call("commit")

    def abort_transaction(self, *args: Any) -> None:
        self._call("abort")

    def poll(self, *args: Any) -> int:
        return 0

    def flush(self, *args: Any) -> int:
        return 0


class _Consumer:
    def consumer_group_metadata(self) -> object:
        return object()


@pytest.fixture
def producer() -> ScriptedProducer:
    return ScriptedProducer()


def _delivery(producer: ScriptedProducer) -> Delivery:
    return Delivery(producer, 5.0, rescue=lambda record, error: None)  # type: ignore[arg-type]


def test_a_retriable_commit_is_retried_alone_the_transaction_left_open(
    producer: ScriptedProducer,
) -> None:
    delivery = _delivery(producer)
    batch = object()
    producer.fail["commit"] = [_error(KafkaError._TIMED_OUT, retriable=True)]
    with pytest.raises(OutputUnavailable, match="retried"):
        delivery.transact(batch, RECORDS, OFFSETS, _Consumer())  # type: ignore[arg-type]
    assert delivery.in_transaction
    delivery.transact(batch, RECORDS, OFFSETS, _Consumer())  # type: ignore[arg-type]
    assert producer.calls == ["begin", "offsets", "commit", "commit"]
    assert producer.produced == 2 and not delivery.in_transaction


def test_retriable_offsets_are_sent_again_then_committed(producer: ScriptedProducer) -> None:
    delivery = _delivery(producer)
    batch = object()
    producer.fail["offsets"] = [_error(KafkaError.COORDINATOR_NOT_AVAILABLE, retriable=True)] * 2
    for _ in range(2):
        with pytest.raises(OutputUnavailable):
            delivery.transact(batch, RECORDS, OFFSETS, _Consumer())  # type: ignore[arg-type]
    delivery.transact(batch, RECORDS, OFFSETS, _Consumer())  # type: ignore[arg-type]
    assert producer.calls == ["begin", "offsets", "offsets", "offsets", "commit"]
    assert producer.produced == 2


def test_an_abortable_error_aborts_and_the_replay_is_a_new_transaction(
    producer: ScriptedProducer,
) -> None:
    delivery = _delivery(producer)
    producer.fail["commit"] = [_error(KafkaError.INVALID_PRODUCER_EPOCH, txn_requires_abort=True)]
    with pytest.raises(TransactionAborted):
        delivery.transact(object(), RECORDS, OFFSETS, _Consumer())  # type: ignore[arg-type]
    assert not delivery.in_transaction
    delivery.transact(object(), RECORDS, OFFSETS, _Consumer())  # type: ignore[arg-type]
    assert producer.calls == ["begin", "offsets", "commit", "abort", "begin", "offsets", "commit"]


def test_an_abort_that_times_out_is_retried(producer: ScriptedProducer) -> None:
    delivery = _delivery(producer)
    producer.fail["commit"] = [_error(KafkaError._STATE, txn_requires_abort=True)]
    producer.fail["abort"] = [_error(KafkaError._TIMED_OUT, retriable=True)]
    with pytest.raises(TransactionAborted):
        delivery.transact(object(), RECORDS, OFFSETS, _Consumer())  # type: ignore[arg-type]
    assert producer.calls[-2:] == ["abort", "abort"]


@pytest.mark.parametrize(
    "error",
    [
        _error(KafkaError._FENCED, fatal=True),
        _error(KafkaError.PRODUCER_FENCED, fatal=True),
        _error(KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
    ],
    ids=["fenced", "producer-fenced", "not-authorised"],
)
def test_a_fatal_error_asks_for_a_new_producer_with_the_reason(
    producer: ScriptedProducer, error: KafkaException
) -> None:
    delivery = _delivery(producer)
    producer.fail["commit"] = [error]
    with pytest.raises(ProducerFailed, match="scripted"):
        delivery.transact(object(), RECORDS, OFFSETS, _Consumer())  # type: ignore[arg-type]
    renewed = ScriptedProducer()
    delivery.renew(renewed)  # type: ignore[arg-type]
    assert not delivery.in_transaction
    delivery.transact(object(), RECORDS, OFFSETS, _Consumer())  # type: ignore[arg-type]
    assert renewed.calls == ["begin", "offsets", "commit"]


def test_a_producer_failing_again_soon_after_its_renewal_stops_the_bridge() -> None:
    bridge = build_bridge(
        Settings(bridge=BridgeSettings(detector_model="d", sink="none", exactly_once=True)),
        serve_http=False,
    )
    made: list[ScriptedProducer] = []

    def new_producer() -> ScriptedProducer:
        made.append(ScriptedProducer())
        return made[-1]

    mode = bridge.mode
    assert isinstance(mode, ExactlyOnce)
    mode.new_producer = new_producer  # type: ignore[method-assign,assignment]
    delivery = bridge.runtime.delivery_ = _delivery(ScriptedProducer())
    mode.renew_producer("fenced")
    assert delivery.producer is made[0]
    with pytest.raises(BridgeFenced, match="another instance uses this transactional id"):
        mode.renew_producer("fenced")
    bridge.runtime.delivery_ = None
    bridge.close()
