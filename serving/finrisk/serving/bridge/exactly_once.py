"""Exactly once: every batch is a checkpoint, and its scored records, dead letters, changelog
and input offsets are one Kafka transaction, after the sink's flush (the sink is outside the
transaction: made durable first, idempotent by transaction id).

librdkafka's transactional contract, as delivery.Delivery.transact follows it: an error that
may pass is retried in the same transaction (a stall: paused, then retried); an abortable one
aborts, and the partitions replay from their committed offsets with the state restored from
the changelog (the aborted records are invisible to it); a fatal one gets a new producer with
the same transactional id (the pod's name, stable across restarts), then the same replay.
"""

from __future__ import annotations

import contextlib
import logging
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
)

from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.batch import Batch
from finrisk.serving.bridge.delivery import BridgeFenced, ProducerFailed, TransactionAborted
from finrisk.serving.bridge.delivery_mode import DeliveryMode
from finrisk.serving.bridge.restore import transient

log = logging.getLogger("finrisk.bridge")

# A transactional producer failing for good again this soon after it was renewed means another
# instance uses the same transactional id (see renew_producer).
PRODUCER_RENEWAL_WINDOW_S = 60.0


class ExactlyOnce(DeliveryMode):
    _renewed_at = -PRODUCER_RENEWAL_WINDOW_S

    def new_producer(self) -> Producer:
        """A producer with the bridge's transactional id, its transactions initialised: this
        fences an earlier one with the same id and aborts its open transaction."""
        runtime = self.runtime
        producer = Producer(kafka_config.producer_config(runtime.settings, transactional=True))
        for attempt in range(1, 31):
            try:
                producer.init_transactions(60)
                return producer
            except KafkaException as exc:
                if not exc.args[0].retriable() or attempt == 30:
                    raise BridgeFenced(f"cannot start Kafka transactions: {exc}") from None
                time.sleep(runtime.backoff.delay(attempt))
        raise AssertionError("unreachable")

    def _deliver(self, batch: Batch) -> None:
        runtime = self.runtime
        assert batch.outputs is not None
        sinker = runtime.sinker
        if sinker is not None:
            sinker.write(batch.anomalies, batch.anomaly_messages)
            batch.anomalies, batch.anomaly_messages = [], []
            flush = sinker.flush()
            if flush is not None:
                with runtime.step("sink"):
                    batch.outputs.extend(runtime.refused_by_sink(sinker.finish(flush)))
        topic = runtime.config.input_topic
        offsets = [TopicPartition(topic, p, o) for p, o in batch.next_offsets.items()]
        with runtime.step("transaction"):
            try:
                runtime.delivery.transact(
                    batch,
                    [*batch.outputs, *runtime.changelog_records(batch)],
                    offsets,
                    runtime.consumer,
                )
            except TransactionAborted as exc:
                self._replay(set(runtime.assigned), str(exc))
                return
            except ProducerFailed as exc:
                self.renew_producer(str(exc))
                self._replay(set(runtime.assigned), str(exc))
                return
        runtime.metrics.checkpoints.inc()
        batch.done()
        runtime.in_flight.pending.popleft()
        self.accounting.batch_sent(batch)

    def partitions_gone(self) -> None:
        """A transaction left open by a stall (a retriable error) holds records of partitions
        now gone: committing it would be refused (its group generation is stale), so it is
        aborted, and the partitions kept replay from their committed offsets."""
        delivery = self.runtime.delivery_
        if delivery is None or not delivery.in_transaction:
            return
        try:
            delivery.abort()
        except ProducerFailed as exc:
            self.renew_producer(str(exc))
        self._replay(set(self.runtime.assigned), "the rebalance aborted the open transaction")

    def renew_producer(self, why: str) -> None:
        """A new transactional producer in place of one that failed for good. After a long
        outage the broker may expire the open transaction and fence its producer although no
        other instance exists: a new producer (same transactional id) carries on. Fenced again
        soon after, another instance really uses the id: this one stops."""
        now = time.monotonic()
        if now - self._renewed_at < PRODUCER_RENEWAL_WINDOW_S:
            raise BridgeFenced(
                f"{why}, again within {PRODUCER_RENEWAL_WINDOW_S:.0f} s of a new producer: "
                "another instance uses this transactional id; this one stops"
            )
        self._renewed_at = now
        self.runtime.metrics.errors.labels("producer").inc()
        log.warning("%s; starting a new transactional producer", why)
        delivery = self.runtime.delivery
        with contextlib.suppress(KafkaException, RuntimeError):
            delivery.producer.flush(0)
        delivery.renew(self.new_producer())

    def _replay(self, partitions: set[int], why: str) -> None:
        """Start these partitions over from their last commit: drop everything after it,
        restore their users from the changelog and seek the input back."""
        runtime = self.runtime
        runtime.metrics.errors.labels("transaction").inc()
        log.warning("%s; replaying partitions %s from their commits", why, sorted(partitions))
        runtime.forget(partitions, "replaying")
        runtime.in_flight.pending.clear()
        consumer = runtime.consumer
        topic = runtime.config.input_topic
        committed = self._committed(consumer, [TopicPartition(topic, p) for p in partitions])
        runtime.restore(sorted(partitions))
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            consumer.seek(TopicPartition(topic, tp.partition, offset))
        runtime.set_assigned(runtime.assigned | partitions)
        runtime.checkpoints.owed = False

    def _committed(
        self, consumer: Consumer, partitions: list[TopicPartition]
    ) -> list[TopicPartition]:
        """The group's committed offsets, waiting out errors that pass by themselves."""
        for attempt in range(1, 61):
            try:
                return list(consumer.committed(partitions, timeout=10))
            except KafkaException as exc:
                if not transient(exc.args[0]) or attempt == 60:
                    raise
                time.sleep(self.runtime.backoff.delay(attempt))
        raise AssertionError("unreachable")
