"""Error events among consumed messages are reported, not treated as input."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest
from confluent_kafka import KafkaError, Message

from finrisk.errors import FinriskError
from finrisk.serving.bridge.consumer_errors import ConsumerErrors


class Event:
    """A consumed message, or an error event (what librdkafka returns among messages)."""

    def __init__(self, value: bytes | None = b"{}", error: KafkaError | None = None) -> None:
        self._value, self._error = value, error

    def error(self) -> KafkaError | None:
        return self._error

    def value(self) -> bytes | None:
        return self._value


def events(*items: Event) -> list[Message]:
    return cast(list[Message], list(items))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_messages_without_errors_pass_as_they_are() -> None:
    consumed = events(Event(b"a"), Event(b"b"))
    assert ConsumerErrors().messages(consumed) is consumed


def test_error_events_are_taken_out_and_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    errors = ConsumerErrors(every_s=30.0, clock=clock)
    down = KafkaError(KafkaError._TRANSPORT, "broker down")
    caplog.set_level(logging.WARNING, logger="finrisk.bridge")
    kept = errors.messages(events(Event(b"a"), Event(error=down), Event(b"b")))
    assert [cast(Any, m).value() for m in kept] == [b"a", b"b"]
    assert errors.messages(events(Event(error=down))) == []
    assert len(caplog.records) == 1 and "broker down" in caplog.records[0].getMessage()
    clock.now = 30.0
    errors.messages(events(Event(error=down)))
    assert len(caplog.records) == 2
    assert errors.seen == 3


def test_a_refused_session_timeout_stops_the_bridge_naming_the_setting() -> None:
    refused = KafkaError(
        KafkaError.INVALID_SESSION_TIMEOUT, "JoinGroup failed: Broker: Invalid session timeout"
    )
    with pytest.raises(FinriskError, match="FINRISK_BRIDGE__SESSION_TIMEOUT_MS"):
        ConsumerErrors().messages(events(Event(b"a"), Event(error=refused)))


def test_a_fatal_error_stops_the_bridge() -> None:
    fatal = KafkaError(KafkaError._FENCED, "fenced", fatal=True)
    with pytest.raises(FinriskError, match="fenced"):
        ConsumerErrors().messages(events(Event(error=fatal)))
