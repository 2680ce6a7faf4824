"""Restoring feature state from the changelog topic when partitions are assigned."""

from __future__ import annotations

import time
from collections.abc import Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from finrisk.errors import FinriskError
from finrisk.serving.bridge.backoff import Backoff
from finrisk.serving.bridge.records import headers_of, where
from finrisk.serving.bridge.state import StateStore

_TRANSIENT = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
    }
)


def transient(error: object) -> bool:
    """Whether a Kafka error may pass by itself (a leader election, a topic just created)."""
    return isinstance(error, KafkaError) and (error.retriable() or error.code() in _TRANSIENT)


class ChangelogReader:
    """A group-less, read_committed consumer of the changelog, assigned partitions by hand."""

    def __init__(self, consumer: Consumer, topic: str, backoff: Backoff) -> None:
        self.consumer = consumer
        self.topic = topic
        self.backoff = backoff

    def close(self) -> None:
        self.consumer.close()

    def watermarks(self, partition: int, timeout_s: float = 60.0) -> tuple[int, int]:
        """(low, high) offsets of a changelog partition, waiting out transient errors."""
        tp = TopicPartition(self.topic, partition)
        deadline = time.monotonic() + timeout_s
        attempt = 0
        while True:
            try:
                low, high = self.consumer.get_watermark_offsets(tp, timeout=10)
                return int(low), int(high)
            except KafkaException as exc:
                error = exc.args[0]
                attempt += 1
                if not transient(error) or time.monotonic() > deadline:
                    raise FinriskError(
                        f"state changelog {self.topic}[{partition}]: {error}"
                    ) from None
                time.sleep(self.backoff.delay(attempt))

    def restore(
        self, partitions: Sequence[int], state: StateStore, timeout_s: float = 300.0
    ) -> int:
        """Read the partitions to their end (last stable offset) into `state`; records read."""
        todo = set()
        for partition in partitions:
            low, high = self.watermarks(partition)
            if high > low:
                todo.add(partition)
        if not todo:
            return 0
        self.consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in todo])
        records = 0
        deadline = time.monotonic() + timeout_s
        try:
            while todo:
                if time.monotonic() > deadline:
                    raise FinriskError(
                        f"restoring state from {self.topic} partitions {sorted(todo)} took over "
                        f"{timeout_s:.0f} s"
                    )
                for msg in self.consumer.consume(10_000, 0.5):
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            todo.discard(where(msg)[0])
                        elif not transient(error):
                            raise FinriskError(f"reading state changelog {self.topic}: {error}")
                        continue
                    key = msg.key()
                    if key is None:
                        continue
                    state.restore(key, msg.value(), where(msg)[0], headers_of(msg))
                    records += 1
        finally:
            self.consumer.unassign()
        return records
