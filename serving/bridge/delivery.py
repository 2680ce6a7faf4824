"""Getting records into Kafka for sure: tracked acknowledgements, Kafka transactions, commits."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from finrisk.errors import FinriskError
from finrisk.serving.bridge.dead_letters import refused_for_good
from finrisk.serving.bridge.records import OutRecord, as_record

log = logging.getLogger("finrisk.bridge")


class OutputUnavailable(Exception):
    """Kafka did not acknowledge outputs, or refused the transaction: retry the step later."""


class BridgeFenced(FinriskError):
    """Another instance with the same transactional id took over: this one must stop."""


# What to send instead of a record Kafka refused for good; None: nothing can stand in for it.
Rescue = Callable[[OutRecord, KafkaError], "OutRecord | None"]


class Tracker:
    """Acknowledgements of one group of records (a batch's outputs, or its changelog)."""

    def __init__(self) -> None:
        self.outstanding = 0
        # Records Kafka did not take, with its error: refused at produce, or reported failed.
        self.failed: list[tuple[OutRecord, KafkaError]] = []
        self.error: KafkaError | None = None
        self.attempts = 0

    def on_delivery(self, error: KafkaError | None, msg: Message) -> None:
        """A record without headers: its delivery report holds all of it."""
        self.outstanding -= 1
        if error is not None:
            self.refused(as_record(msg), error)

    def on_delivery_of(self, record: OutRecord, error: KafkaError | None, _msg: Message) -> None:
        """A record with headers, which delivery reports do not carry: the record itself."""
        self.outstanding -= 1
        if error is not None:
            self.refused(record, error)

    def refused(self, record: OutRecord, error: KafkaError) -> None:
        self.failed.append((record, error))
        self.error = error


class Delivery:
    """One producer (idempotent, or transactional in exactly-once mode).

    A record Kafka refuses for good (too large, invalid) is never sent again as it is:
    `rescue` gives what stands in for it (a truncated dead letter), and every later send of the
    same record (a retry, or a replay after an aborted transaction) sends that instead.
    """

    # Sends of the same records before the step counts as failed (the bridge then pauses).
    max_attempts = 3

    def __init__(self, producer: Producer, flush_timeout_s: float, rescue: Rescue) -> None:
        self.producer = producer
        # Longer than message.timeout.ms: after it every record is acknowledged or failed.
        self.flush_timeout_s = flush_timeout_s
        self.rescue = rescue
        self.rescued = 0
        # (topic, key, value) of records refused for good -> what is sent instead.
        self._instead: dict[tuple[str, bytes | None, bytes | None], OutRecord] = {}

    def send(self, records: Sequence[OutRecord], tracker: Tracker) -> None:
        """Produce records without waiting; `tracker` follows their acknowledgements."""
        tracker.attempts += 1
        self._produce_all(records, tracker)

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
            self.learn(tracker.failed)
            if tracker.attempts >= self.max_attempts:
                tracker.attempts = 0  # a later call (after a pause) starts a fresh round
                raise OutputUnavailable(
                    f"Kafka did not take {len(tracker.failed)} outputs: {tracker.error}"
                )
            failed, tracker.failed = tracker.failed, []
            log.warning(
                "%d outputs not acknowledged, sending again: %s", len(failed), tracker.error
            )
            self.send([record for record, _ in failed], tracker)
            if not block:
                return False

    def learn(self, failed: Sequence[tuple[OutRecord, KafkaError]]) -> None:
        """Remember what stands in for each record refused for good (sent in its place from now)."""
        for record, error in failed:
            if not refused_for_good(error):
                continue
            replacement = self.rescue(record, error)
            if replacement is None:
                log.error("Kafka refuses a record of %s for good: %s", record[0], error)
                continue
            topic, key, value, _, _ = record
            log.warning(
                "Kafka refuses a record of %s for good (%s); a dead letter of %d bytes stands in",
                topic,
                error,
                len(replacement[2] or b""),
            )
            self._instead[(topic, key, value)] = replacement
            self.rescued += 1

    def poll(self) -> None:
        """Serve delivery callbacks that are due."""
        self.producer.poll(0)

    def _produce_all(self, records: Sequence[OutRecord], tracker: Tracker) -> None:
        produce = self.producer.produce
        instead = self._instead
        for record in records:
            if instead:
                record = instead.pop(record[:3], record)
            topic, key, value, headers, partition = record
            while True:
                on_delivery = (
                    tracker.on_delivery
                    if headers is None
                    else functools.partial(tracker.on_delivery_of, record)
                )
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
                    tracker.outstanding += 1
                    break
                except BufferError:  # the local queue is full: let it drain
                    self.producer.poll(0.05)
                except KafkaException as exc:  # refused before it was queued (e.g. too large)
                    error = exc.args[0]
                    self.learn([(record, error)])
                    replacement = self._instead.pop(record[:3], None)
                    if replacement is None:
                        tracker.refused(record, error)
                        break
                    topic, key, value, headers, partition = record = replacement

    def transact(
        self, records: Sequence[OutRecord], offsets: list[TopicPartition], consumer: Consumer
    ) -> None:
        """Records and input offsets in one Kafka transaction: all visible, or none."""
        producer = self.producer
        timeout = self.flush_timeout_s
        tracker = Tracker()
        try:
            producer.begin_transaction()
            self._produce_all(records, tracker)
            if tracker.failed:
                raise KafkaException(
                    KafkaError(KafkaError._STATE, "outputs refused", txn_requires_abort=True)
                )
            if offsets:
                producer.send_offsets_to_transaction(
                    offsets, consumer.consumer_group_metadata(), timeout
                )
            producer.commit_transaction(timeout)
        except KafkaException as exc:
            self.learn(tracker.failed)
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
