"""Getting records into Kafka for sure: tracked acknowledgements and Kafka transactions."""

from __future__ import annotations

import functools
import logging
import time
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


class TransactionAborted(Exception):
    """Kafka aborted the batch's transaction: replay from the committed offsets."""


class ProducerFailed(Exception):
    """The transactional producer hit a fatal error (fenced, or its transaction expired by the
    broker during a long outage): a new producer, then a replay from the committed offsets."""


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
        # The batch whose transaction is open (exactly once), how far it got, its records.
        self._open: object | None = None
        self._offsets_sent = False
        self._txn = Tracker()
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

    @property
    def in_transaction(self) -> bool:
        return self._open is not None

    def transact(
        self,
        owner: object,
        records: Sequence[OutRecord],
        offsets: list[TopicPartition],
        consumer: Consumer,
    ) -> None:
        """Records and input offsets in one Kafka transaction: all visible, or none.

        librdkafka's contract, followed call by call: an error that may pass by itself
        (retriable) raises OutputUnavailable with the transaction left open where it stood, and
        the next call for the same `owner` (the batch) retries that same step; an abortable
        error aborts the transaction and raises TransactionAborted (the caller replays from the
        committed offsets and the state they go with); a fatal one raises ProducerFailed (the
        caller starts a new producer, which fences this one, and replays).
        """
        producer = self.producer
        timeout = self.flush_timeout_s
        try:
            if self._open is not owner:
                if self._open is not None:  # another batch's, left open: it is replayed
                    self.abort()
                producer.begin_transaction()
                self._open, self._offsets_sent = owner, False
                self._produce_all(records, self._txn)
                if self._txn.failed:  # refused at produce: the batch is replayed without them
                    raise KafkaException(
                        KafkaError(KafkaError._STATE, "outputs refused", txn_requires_abort=True)
                    )
            if offsets and not self._offsets_sent:
                producer.send_offsets_to_transaction(
                    offsets, consumer.consumer_group_metadata(), timeout
                )
            self._offsets_sent = True
            producer.commit_transaction(timeout)
        except KafkaException as exc:
            error = exc.args[0]
            if not isinstance(error, KafkaError) or error.fatal():
                self._open = None
                raise ProducerFailed(f"the transactional producer failed: {error}") from None
            if error.txn_requires_abort():
                self.abort()
                raise TransactionAborted(f"Kafka aborted the transaction: {error}") from None
            if error.retriable():
                raise OutputUnavailable(f"transaction not finished (retried): {error}") from None
            self._open = None
            raise ProducerFailed(f"the Kafka transaction failed: {error}") from None
        self._open = None
        self._txn = Tracker()

    def renew(self, producer: Producer) -> None:
        """Carry on with a new producer (the failed one's open transaction is forgotten)."""
        self.producer = producer
        self._open = None
        self._txn = Tracker()

    def abort(self) -> None:
        """Abort the open transaction (retrying while Kafka says it may pass); records it
        refused for good are remembered, so the replay sends what stands in for them."""
        self.producer.poll(0)  # delivery reports of the transaction's records
        self.learn(self._txn.failed)
        self._txn = Tracker()
        for attempt in range(1, 31):
            try:
                self.producer.abort_transaction(self.flush_timeout_s)
                break
            except KafkaException as exc:
                error = exc.args[0]
                if not (isinstance(error, KafkaError) and error.retriable()) or attempt == 30:
                    self._open = None
                    raise ProducerFailed(
                        f"aborting the Kafka transaction failed: {error}"
                    ) from None
                log.warning("aborting the Kafka transaction: %s; trying again", error)
                time.sleep(min(0.1 * attempt, 2.0))
        self._open = None
