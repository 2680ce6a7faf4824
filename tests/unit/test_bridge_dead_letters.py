"""Dead letters that Kafka always takes, and records refused for good replaced, not retried."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, Message

from finrisk.serving.bridge.dead_letters import (
    ERROR_KIND_HEADER,
    ERROR_REASON_HEADER,
    MAX_REASON_BYTES,
    ORIGINAL_HEADERS_DROPPED_HEADER,
    ORIGINAL_VALUE_BYTES_HEADER,
    ORIGINAL_VALUE_SHA256_HEADER,
    OUTPUT_REJECTED,
    TRUNCATED_HEADER,
    DeadLetters,
    dead_letter_headers,
    record_bytes,
)
from finrisk.serving.bridge.delivery import Delivery, OutputUnavailable, Tracker
from finrisk.serving.bridge.records import UNREADABLE_HEADERS, OutRecord, headers_of

SOURCE = ("transactions", 4, 17)


def test_dead_letter_headers_name_the_reason_and_the_source_and_keep_the_originals() -> None:
    headers = dead_letter_headers(
        "schema_invalid",
        "field 'amount' is missing " + "x" * 5000,
        topic="transactions",
        partition=4,
        offset=17,
        original=[("trace-id", b"abc"), (ERROR_KIND_HEADER, b"old")],
    )
    named = dict(headers)
    assert named[ERROR_KIND_HEADER] == b"schema_invalid"
    assert named[ERROR_REASON_HEADER].startswith(b"field 'amount' is missing")  # type: ignore[union-attr]
    assert len(named[ERROR_REASON_HEADER]) == MAX_REASON_BYTES  # type: ignore[arg-type]
    assert named["finrisk.source.topic"] == b"transactions"
    assert (named["finrisk.source.partition"], named["finrisk.source.offset"]) == (b"4", b"17")
    assert named["trace-id"] == b"abc"
    # An earlier error header (a message re-sent from the DLQ) does not shadow the new one.
    assert [v for k, v in headers if k == ERROR_KIND_HEADER] == [b"schema_invalid"]


def test_a_dead_letter_that_fits_keeps_the_message_whole() -> None:
    letters = DeadLetters("dlq", 1_000_000)
    topic, key, value, headers, partition = letters.record(
        "unparseable",
        "not JSON",
        key=b"u1",
        value=b"\xff\xfe",
        source=SOURCE,
        headers=[("h", None)],
    )
    assert (topic, key, value, partition) == ("dlq", b"u1", b"\xff\xfe", None)
    assert ("h", None) in (headers or [])
    assert TRUNCATED_HEADER not in dict(headers or [])


@pytest.mark.parametrize(
    ("value", "headers"),
    [
        (b"x" * 2_000_000, []),  # the value alone is too large
        (b"{}", [("big", b"y" * 600_000), ("bigger", b"z" * 600_000)]),  # its headers are
    ],
    ids=["value", "headers"],
)
def test_a_dead_letter_too_large_is_truncated_keeping_why_where_size_and_digest(
    value: bytes, headers: list[tuple[str, bytes]]
) -> None:
    letters = DeadLetters("dlq", 1_000_000)
    record = letters.record(
        "too_large", "message is big", key=b"k" * 5000, value=value, source=SOURCE, headers=headers
    )
    _, key, kept, out_headers, _ = record
    named = dict(out_headers or [])
    assert record_bytes(key, kept, out_headers) < 8_000
    assert named[TRUNCATED_HEADER] == b"true"
    assert named[ERROR_KIND_HEADER] == b"too_large"
    assert named[ERROR_REASON_HEADER] == b"message is big"
    assert (named["finrisk.source.topic"], named["finrisk.source.offset"]) == (
        b"transactions",
        b"17",
    )
    assert named[ORIGINAL_VALUE_BYTES_HEADER] == str(len(value)).encode()
    assert named[ORIGINAL_VALUE_SHA256_HEADER] == hashlib.sha256(value).hexdigest().encode()
    assert named[ORIGINAL_HEADERS_DROPPED_HEADER] == str(len(headers)).encode()
    assert value.startswith(kept or b"") and key and key == b"k" * 256


def test_a_refused_dead_letter_shrinks_once_and_lowers_the_size_for_the_next() -> None:
    letters = DeadLetters("dlq", 1_000_000)
    whole = letters.record(
        "unparseable", "r", key=None, value=b"v" * 300_000, source=SOURCE, headers=[]
    )
    shrunk = letters.shrink(whole)
    assert shrunk is not None and dict(shrunk[3] or [])[TRUNCATED_HEADER] == b"true"
    assert letters.shrink(shrunk) is None  # nothing smaller to offer
    # The topic refused 300 kB: a later message of that size is truncated at once.
    later = letters.record(
        "unparseable", "r", key=None, value=b"w" * 300_000, source=SOURCE, headers=[]
    )
    assert TRUNCATED_HEADER in dict(later[3] or [])


def test_a_scored_record_refused_for_good_becomes_a_dead_letter_naming_its_source() -> None:
    letters = DeadLetters("dlq", 1_000_000)
    scored = orjson.dumps({"transaction_id": "t1", "source": {"partition": 2, "offset": 40}})
    error = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    rescued = letters.rescue(("scored", b"u1", scored, None, None), error, input_topic="tx")
    assert rescued is not None
    named = dict(rescued[3] or [])
    assert rescued[0] == "dlq"
    assert named[ERROR_KIND_HEADER] == OUTPUT_REJECTED.encode()
    assert (named["finrisk.source.topic"], named["finrisk.source.partition"]) == (b"tx", b"2")
    assert named["finrisk.source.offset"] == b"40"
    # A changelog record has no source to name: nothing stands in for it.
    assert (
        letters.rescue(("state", b"u1", b"\x00snapshot", None, 2), error, input_topic="tx") is None
    )


class FakeProducer:
    """librdkafka's produce contract: records over `max_bytes` raise at once (the client's
    message.max.bytes); records over `topic_max_bytes` are reported failed (the broker's)."""

    def __init__(self, max_bytes: int = 1_000_000, topic_max_bytes: int = 1_000_000) -> None:
        self.max_bytes = max_bytes
        self.topic_max_bytes = topic_max_bytes
        self.sent: list[OutRecord] = []
        self._reports: list[tuple[Callable[..., None], KafkaError | None, Message]] = []

    def produce(self, topic: str, value: Any, key: Any, **kw: Any) -> None:
        size = record_bytes(key, value, kw.get("headers"))
        if size > self.max_bytes:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        error = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE) if size > self.topic_max_bytes else None
        msg = Message(
            topic=topic, partition=0, offset=0, key=key, value=value, headers=kw.get("headers")
        )
        if error is None:
            self.sent.append((topic, key, value, kw.get("headers"), kw.get("partition")))
        self._reports.append((kw["on_delivery"], error, msg))

    def poll(self, _timeout: float = 0) -> int:
        reports, self._reports = self._reports, []
        for callback, error, msg in reports:
            callback(error, msg)
        return len(reports)

    def flush(self, _timeout: float = 0) -> int:
        self.poll()
        return 0


def _delivery(producer: FakeProducer, letters: DeadLetters) -> Delivery:
    return Delivery(
        producer,  # type: ignore[arg-type]
        5.0,
        rescue=lambda record, error: letters.rescue(record, error, input_topic="tx"),
    )


def test_a_dead_letter_the_client_refuses_is_sent_truncated_at_once() -> None:
    letters = DeadLetters("dlq", 10_000_000)  # sized wrongly: the client takes 1 MB
    producer = FakeProducer()
    delivery = _delivery(producer, letters)
    big = letters.record(
        "unparseable", "r", key=b"k", value=b"v" * 2_000_000, source=SOURCE, headers=[]
    )
    tracker = Tracker()
    delivery.send([big], tracker)
    assert delivery.settle(tracker, block=True)
    [(topic, _, value, headers, _)] = producer.sent
    assert topic == "dlq" and value == b"v" * 1_024
    assert dict(headers or [])[TRUNCATED_HEADER] == b"true"


def test_a_dead_letter_the_broker_refuses_is_sent_again_truncated_not_as_it_was() -> None:
    letters = DeadLetters("dlq", 1_000_000)
    producer = FakeProducer(topic_max_bytes=100_000)  # a dead-letter topic with a lower limit
    delivery = _delivery(producer, letters)
    mid = letters.record(
        "unparseable", "r", key=b"k", value=b"v" * 500_000, source=SOURCE, headers=[]
    )
    small = letters.record("unparseable", "r", key=b"k", value=b"{", source=SOURCE, headers=[])
    tracker = Tracker()
    delivery.send([mid, small], tracker)
    assert delivery.settle(tracker, block=True)
    values = sorted(len(value or b"") for _, _, value, _, _ in producer.sent)
    assert values == [1, 1_024]
    assert delivery.rescued == 1


def test_a_record_refused_for_good_with_no_stand_in_stalls_with_a_clear_error() -> None:
    letters = DeadLetters("dlq", 1_000_000)
    producer = FakeProducer(topic_max_bytes=100)
    delivery = _delivery(producer, letters)
    tracker = Tracker()
    delivery.send([("state", b"u1", b"s" * 1_000, None, 0)], tracker)
    with pytest.raises(OutputUnavailable, match="did not take 1 outputs"):
        delivery.settle(tracker, block=True)


def test_headers_the_client_cannot_decode_are_marked_not_fatal() -> None:
    class Undecodable:
        def headers(self) -> None:
            raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    assert headers_of(Undecodable()) == UNREADABLE_HEADERS  # type: ignore[arg-type]
    assert headers_of(Message(headers=[("a", b"1"), ("a", None)])) == [("a", b"1"), ("a", None)]


def test_a_failed_record_is_sent_again_with_its_headers_and_partition() -> None:
    class FailOnce(FakeProducer):
        def produce(self, topic: str, value: Any, key: Any, **kw: Any) -> None:
            if not self._reports and not self.sent and not getattr(self, "failed", False):
                self.failed = True
                msg = Message(topic=topic, partition=kw.get("partition", 0), key=key, value=value)
                self._reports.append(
                    (kw["on_delivery"], KafkaError(KafkaError._MSG_TIMED_OUT), msg)
                )
                return
            super().produce(topic, value, key, **kw)

    producer = FailOnce()
    delivery = _delivery(producer, DeadLetters("dlq", 1_000_000))
    changelog: OutRecord = ("state", b"u1", b"snapshot", [("finrisk.source.offset", b"41")], 3)
    tracker = Tracker()
    delivery.send([changelog], tracker)
    assert delivery.settle(tracker, block=True)
    assert producer.sent == [changelog]
