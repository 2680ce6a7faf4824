"""Committing input offsets: what is durable but not yet committed, and the commit itself."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition


class CommitLedger:
    """Input offsets made durable but not yet committed, per partition, and what was asked.

    A commit Kafka refuses (during a rebalance: a stale generation, or one in progress) is due
    again at the next checkpoint, unless a later commit of that partition was asked meanwhile:
    otherwise a partition that receives nothing more stays uncommitted for good, its lag never
    zero and a restart reading all of it again (skipped by the state, but read).
    """

    def __init__(self) -> None:
        self._due: dict[int, int] = {}
        self._asked: dict[int, int] = {}

    def add(self, next_offsets: dict[int, int]) -> None:
        for partition, offset in next_offsets.items():
            if offset > self._due.get(partition, -1):
                self._due[partition] = offset

    def take(self) -> dict[int, int]:
        """What to commit now (remembered as asked)."""
        due, self._due = self._due, {}
        self._asked.update(due)
        return due

    def refused(self, partitions: Sequence[TopicPartition]) -> bool:
        """Kafka refused these offsets: due again where nothing later was asked. True if any."""
        again = {
            tp.partition: tp.offset
            for tp in partitions
            if tp.offset >= 0 and self._asked.get(tp.partition) == tp.offset
        }
        self.add(again)
        return bool(again)

    def latest(self, committed: dict[int, int]) -> dict[int, int]:
        """Per partition, the later of its committed offset (negative: none) and the last one
        asked: what may be committed again without moving the group back or ahead."""
        latest = {p: o for p, o in committed.items() if o >= 0}
        for partition, offset in self._asked.items():
            latest[partition] = max(offset, latest.get(partition, -1))
        return latest

    def drop(self, partitions: set[int]) -> None:
        """Revoked partitions: their next owner commits from its own work."""
        self._due = {p: o for p, o in self._due.items() if p not in partitions}
        self._asked = {p: o for p, o in self._asked.items() if p not in partitions}


CommitAnswer = Callable[[KafkaError | None, list[TopicPartition]], None]


def commit(
    consumer: Consumer,
    topic: str,
    next_offsets: dict[int, int],
    *,
    wait: bool,
    answer: CommitAnswer,
) -> None:
    """Commit input offsets, waiting for Kafka's answer or not; the answer goes to `answer`,
    the consumer's `on_commit` callback, either way."""
    if not next_offsets:
        return
    offsets = [TopicPartition(topic, p, o) for p, o in next_offsets.items()]
    try:
        if not wait:
            consumer.commit(offsets=offsets, asynchronous=True)
            return
        done = consumer.commit(offsets=offsets, asynchronous=False)
    except KafkaException as exc:  # refused at once
        answer(exc.args[0], offsets)
        return
    answer(None, done)  # librdkafka calls on_commit for asynchronous commits only
