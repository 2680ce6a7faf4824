"""Getting records into Kafka for sure: tracked acknowledgements, Kafka transactions, commits."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from finrisk.errors import FinriskError
from finrisk.serving.bridge.batch import OutRecord, headers_of

log = logging.getLogger("finrisk.bridge")


class OutputUnavailable(Exception):
    """Kafka did not acknowledge outputs, or refused the transaction: retry the step later."""


class BridgeFenced(FinriskError):
    """Another instance with the same transactional id took over: this one must stop."""


class Tracker:
    """Acknowledgements of one group of records (a batch's outputs, or its changelog)."""

    def __init__(self) -> None:
        self.outstanding = 0
        self.failed: list[Message] = []
        self.error: KafkaError | None = None
        self.attempts = 0

    def on_delivery(self, error: KafkaError | None, msg: Message) -> None:
        self.outstanding -= 1
        if error is not None:
            self.failed.append(msg)
            self.error = error


class Delivery:
    """One producer (idempotent, or transactional in exactly-once mode)."""

    # Sends of the same records before the step counts as failed (the bridge then pauses).
    max_attempts = 3

    def __init__(self, producer: Producer, changelog_topic: str, flush_timeout_s: float) -> None:
        self.producer = producer
        self.changelog_topic = changelog_topic
        # Longer than message.timeout.ms: after it every record is acknowledged or failed.
        self.flush_timeout_s = flush_timeout_s

    def send(self, records: Sequence[OutRecord], tracker: Tracker) -> None:
        """Produce records without waiting; `tracker` follows their acknowledgements."""
        tracker.attempts += 1
        tracker.outstanding += len(records)
        self._produce_all(records, tracker.on_delivery)

    def settle(self, tracker: Tracker, *, block: bool) -> bool:
        """True once Kafka acknowledged every record of `tracker`; failed ones are sent again.

        Only records Kafka reported as failed are sent again, so an acknowledged record is never
        sent twice. Without `block`, only callbacks already due are served. Raises
        OutputUnavailable when records keep failing (the caller pauses and calls again later).
        """
        while True:
            if tracker.outstanding:
                self.producer.poll(0)
                if tracker.outstanding and not block:
                    return False
                while tracker.outstanding:
                    if self.producer.flush(self.flush_timeout_s) > 0:
                        log.warning("Kafka has not acknowledged outputs yet; still waiting")
            if not tracker.failed:
                return True
            if tracker.attempts >= self.max_attempts:
                tracker.attempts = 0  # a later call (after a pause) starts a fresh round
                raise OutputUnavailable(
                    f"Kafka did not acknowledge {len(tracker.failed)} outputs: {tracker.error}"
                )
            failed, tracker.failed = tracker.failed, []
            log.warning(
                "%d outputs not acknowledged, sending again: %s", len(failed), tracker.error
            )
            self.send([self._as_record(msg) for msg in failed], tracker)
            if not block:
                return False

    def poll(self) -> None:
        """Serve delivery callbacks that are due."""
        self.producer.poll(0)

    def _produce_all(
        self,
        records: Sequence[OutRecord],
        on_delivery: Callable[[KafkaError | None, Message], None] | None,
    ) -> None:
        produce = self.producer.produce
        for topic, key, value, headers, partition in records:
            while True:
                try:
                    if partition is None:
                        produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                    else:
                        produce(
                            topic,
                            value,
                            key,
                            partition=partition,
                            headers=headers,
                            on_delivery=on_delivery,
                        )
                    break
                except BufferError:  # the local queue is full: let it drain
                    self.producer.poll(0.05)

    def _as_record(self, msg: Message) -> OutRecord:
        topic = msg.topic() or ""
        # Changelog records must stay in their input's partition number; others follow keys.
        partition = msg.partition() if topic == self.changelog_topic else None
        return (topic, msg.key(), msg.value(), headers_of(msg) or None, partition)

    def transact(
        self, records: Sequence[OutRecord], offsets: list[TopicPartition], consumer: Consumer
    ) -> None:
        """Records and input offsets in one Kafka transaction: all visible, or none."""
        producer = self.producer
        timeout = self.flush_timeout_s
        try:
            producer.begin_transaction()
            self._produce_all(records, None)
            if offsets:
                producer.send_offsets_to_transaction(
                    offsets, consumer.consumer_group_metadata(), timeout
                )
            producer.commit_transaction(timeout)
        except KafkaException as exc:
            error = exc.args[0]
            if isinstance(error, KafkaError) and error.txn_requires_abort():
                try:
                    producer.abort_transaction(timeout)
                except KafkaException as abort_exc:
                    log.warning("aborting the transaction: %s", abort_exc)
                raise OutputUnavailable(f"transaction aborted: {error}") from None
            if isinstance(error, KafkaError) and error.retriable():
                raise OutputUnavailable(f"transaction not committed: {error}") from None
            raise BridgeFenced(f"Kafka transaction failed for good: {error}") from None


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
