"""Reading a side topic's partitions to their end: the labels a partition's owner places
(fraud_placement.py) and the merchant frauds every instance reads (merchant_risk.py). Both
catch up before the input's first message, under one deadline and one error rule."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, KafkaError, Message

from finrisk.errors import FinriskError
from finrisk.serving.bridge.records import where
from finrisk.serving.bridge.restore import transient


def at_end(msg: Message, what: str) -> bool | None:
    """For an error event: True at the end of its partition, False for a transient error (the
    client retries by itself); a lasting one raises naming `what`. None for a record."""
    error = msg.error()
    if error is None:
        return None
    if error.code() == KafkaError._PARTITION_EOF:
        return True
    if not transient(error):
        raise FinriskError(f"reading {what}: {error}")
    return False


def read_to_end(
    consumer: Consumer,
    partitions: Iterable[int],
    take: Callable[[Message], bool],
    what: str,
    timeout_s: float,
) -> None:
    """Consume until `take` has seen the end of each of `partitions` (assigned from where they
    should be read, with partition EOF events on), or raise after `timeout_s`."""
    todo = set(partitions)
    deadline = time.monotonic() + timeout_s
    while todo:
        if time.monotonic() > deadline:
            raise FinriskError(
                f"reading {what} partitions {sorted(todo)} took over {timeout_s:.0f} s"
            )
        for msg in consumer.consume(10_000, 0.5):
            if take(msg):
                todo.discard(where(msg)[0])
