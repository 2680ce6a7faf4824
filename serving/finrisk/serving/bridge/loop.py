"""The bridge: consume transactions, score them in micro-batches, write outputs, then commit.

One thread runs the loop; Kafka's rebalance callbacks run inside its consume calls. A batch
goes through these steps in order, and a step that completed is not redone when a later one
fails:

1. `prepare`: parse and check every message (bad ones become dead letters), skip messages the
   restored state already includes, update the online features; a checkpoint batch (one per
   `checkpoint_interval_ms`) also snapshots every user changed since the last checkpoint;
2. score with the V2 calls (detector, risk model) in a worker thread: while the predictor works
   on batch N, the loop prepares batch N+1 when it is already buffered;
3. send the scored records and dead letters, and hand the anomalies to the sink's thread;
4. once the outputs are acknowledged and the sink flushed: a checkpoint batch sends its state
   changelog (other batches are done here);
5. once the changelog is acknowledged: commit the offsets of every batch up to the checkpoint.

Steps 4 and 5 run behind the loop (it checks them between batches and waits only when idle,
stopping or rebalancing), so no batch waits for the previous one's acknowledgements. The order
is what at least once needs: a durable changelog record means durable outputs for everything
in its state (the replay skip relies on it), and a commit means a durable changelog. A
checkpoint per interval rather than per batch saves snapshotting a user at every batch; a crash
replays from the last checkpoint, as duplicates. Exactly once: every batch is a checkpoint, and
steps 3-5 are one Kafka transaction (scored records, dead letters, changelog, offsets), after
the sink flush.

When the predictor or the sink is unavailable, or Kafka does not acknowledge, the batch stays
in memory, every assigned partition is paused, and the step is retried with backoff: nothing is
dropped, nothing is committed, and consumption resumes by itself once the step passes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from finrisk.schema import Schema
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.backoff import Backoff
from finrisk.serving.bridge.batch import CHANGELOG_SENT, FLUSHED, SENT, Batch, prepare
from finrisk.serving.bridge.batching import MicroBatcher
from finrisk.serving.bridge.dead_letters import MODEL_REJECTED, SINK_REJECTED, DeadLetters
from finrisk.serving.bridge.delivery import (
    BridgeFenced,
    CommitLedger,
    Delivery,
    OutputUnavailable,
    ProducerFailed,
    Tracker,
    TransactionAborted,
    commit,
)
from finrisk.serving.bridge.messages import MessageParser
from finrisk.serving.bridge.metrics import BridgeMetrics, Health, OpsServer
from finrisk.serving.bridge.outputs import HISTORY_DAYS_COLUMN, Score, anomaly_record, scored_values
from finrisk.serving.bridge.records import OutRecord, headers_of, where
from finrisk.serving.bridge.restore import ChangelogReader, transient
from finrisk.serving.bridge.scoring import Scorer
from finrisk.serving.bridge.sink_writer import SinkWriter
from finrisk.serving.bridge.state import StateStore
from finrisk.serving.bridge.v2_client import EndpointUnavailable, RequestRejected
from finrisk.settings import Settings
from finrisk.sinks import AnomalySink, SinkError
from finrisk.sinks.base import Rejected

log = logging.getLogger("finrisk.bridge")

# How long a SIGTERM waits for unfinished batches before leaving them uncommitted.
STOP_GRACE_S = 15.0
# What pauses consumption until it passes.
STALLS = (EndpointUnavailable, SinkError, OutputUnavailable)
# A transactional producer failing for good again this soon after it was renewed means another
# instance uses the same transactional id (see _renew_producer).
PRODUCER_RENEWAL_WINDOW_S = 60.0
# How often, at most, to ask the group whether this member survived a stall (see _turn).
MEMBERSHIP_PROBE_INTERVAL_S = 0.5

__all__ = ["Bridge", "BridgeFenced", "RunStats"]


@dataclass
class RunStats:
    batches: int = 0
    scored: int = 0
    dead_lettered: int = 0
    replay_skipped: int = 0
    anomalies: int = 0
    pauses: int = 0
    restored_records: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Bridge:
    def __init__(
        self,
        settings: Settings,
        scorer: Scorer,
        sink: AnomalySink | None,
        *,
        schema: Schema | None = None,
        serve_http: bool = True,
    ) -> None:
        self.settings = settings
        self.config = settings.bridge
        self.scorer = scorer
        self.sink = sink
        self.parser = MessageParser(schema)
        self.state = StateStore(self.config.dedup_window_s, self.config.dedup_max_ids)
        self.metrics = BridgeMetrics()
        self.health = Health()
        self.stats = RunStats()
        self.exactly_once = self.config.exactly_once
        self.changelog_topic = kafka_config.changelog_topic(self.config)
        # Sized to what the dead-letter topic takes when the bridge starts.
        self.dead_letters = DeadLetters(self.config.dlq_topic, kafka_config.PRODUCER_MAX_BYTES)
        self.backoff = Backoff(
            self.config.backoff_initial_s,
            max(self.config.backoff_max_s, self.config.backoff_initial_s),
        )
        self._stop = threading.Event()
        self._paused = False  # a step failed: retried with backoff (_retry_paused)
        self._throttled = False  # at a backpressure bound: waiting for room (_wait_for_room)
        self._retries = 0
        # Prepared, being scored or waiting to be sent (step 1-3), oldest first.
        self._pending: deque[Batch] = deque()
        # Sent, waiting for acknowledgements, the sink, the changelog or the commit (4-5).
        self._durable: deque[Batch] = deque()
        self._held: list[Message] = []
        self._batcher: MicroBatcher[Message] | None = None  # while run() collects batches
        self._assigned: set[int] = set()
        self._serve_http = serve_http
        self._ops: OpsServer | None = None
        self._consumer: Consumer | None = None
        self._delivery: Delivery | None = None
        self._reader: ChangelogReader | None = None
        self._scoring = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bridge-scoring")
        self.sinker = SinkWriter(sink) if sink is not None else None
        self._last_gauges = 0.0
        self._last_count = 0
        self._checkpoint_every_s = (
            0.0 if self.exactly_once else self.config.checkpoint_interval_ms / 1000
        )
        self._last_checkpoint = time.monotonic()
        # A batch was prepared since the last checkpoint (its offsets wait for the next one).
        self._since_checkpoint = False
        # Input offsets of durable batches after the last committed checkpoint.
        self._commits = CommitLedger()
        # A gap this long between two turns of the loop may have let the group expire this
        # member (a stopped or starved process sends no heartbeats either); until the group
        # confirms it, no state is written (_may_write_state).
        self._stall_s = self.config.session_timeout_ms / 2000
        self._last_turn = time.monotonic()
        self._membership_unsure = False
        self._next_probe = 0.0
        self._renewed_at = -PRODUCER_RENEWAL_WINDOW_S

    # ----------------------------------------------------------------- life cycle

    def stop(self) -> None:
        """Ask the loop to finish its batches, commit and close (safe from a signal handler)."""
        self._stop.set()

    @property
    def ops_port(self) -> int | None:
        return self._ops.port if self._ops else None

    def start(self) -> None:
        kafka_config.ensure_topics(self.settings)
        self.dead_letters.max_bytes = kafka_config.max_record_bytes(
            self.settings, self.config.dlq_topic
        )
        if self._serve_http:
            self._ops = OpsServer(
                self.config.http_host, self.config.http_port, self.metrics, self.health
            ).start()
            log.info("health and metrics on http://%s:%d", self.config.http_host, self._ops.port)
        producer = (
            self._transactional_producer()
            if self.exactly_once
            else Producer(kafka_config.producer_config(self.settings, transactional=False))
        )
        self._delivery = Delivery(
            producer, kafka_config.MESSAGE_TIMEOUT_MS / 1000 + 5, rescue=self._rescue
        )
        self._reader = ChangelogReader(
            Consumer(kafka_config.restore_consumer_config(self.settings)),
            self.changelog_topic,
            self.backoff,
        )
        self._consumer = Consumer(
            {**kafka_config.consumer_config(self.settings), "on_commit": self._on_commit}
        )
        self._consumer.subscribe(
            [self.config.input_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self.health.ready = True
        log.info(
            "bridge %s: %s -> %s (dead letters %s, state %s), %s, sink %s",
            self.config.group_id,
            self.config.input_topic,
            self.config.scored_topic,
            self.config.dlq_topic,
            self.changelog_topic,
            "exactly once" if self.exactly_once else "at least once",
            self.sink.location if self.sink else "none",
        )

    def _transactional_producer(self) -> Producer:
        """A producer with the bridge's transactional id, its transactions initialised: this
        fences an earlier one with the same id and aborts its open transaction."""
        producer = Producer(kafka_config.producer_config(self.settings, transactional=True))
        for attempt in range(1, 31):
            try:
                producer.init_transactions(60)
                return producer
            except KafkaException as exc:
                if not exc.args[0].retriable() or attempt == 30:
                    raise BridgeFenced(f"cannot start Kafka transactions: {exc}") from None
                time.sleep(self.backoff.delay(attempt))
        raise AssertionError("unreachable")

    def run(self, *, idle_exit_s: float | None = None) -> RunStats:
        """Loop until stop() (SIGTERM), or until nothing came for `idle_exit_s` seconds."""
        if self._consumer is None:
            self.start()
        batcher = self._batcher = MicroBatcher(
            self._consume,
            self.config.batch_max_messages,
            self.config.batch_max_wait_ms / 1000,
            idle_s=0.1,
        )
        last_message = time.monotonic()
        try:
            while not self._stop.is_set():
                self._turn()
                self._update_gauges()
                if self._paused:
                    self._retry_paused()
                    continue
                if self._over_bound():
                    self._wait_for_room()
                    continue
                if self._throttled:
                    self._unthrottle()
                # While a batch is being scored, take only what is already buffered.
                waited = not self._pending
                messages = batcher.next_batch() if waited else batcher.buffered()
                if messages:
                    last_message = time.monotonic()
                    self._prepare(messages, checkpoint=self._checkpoint_due())
                elif not self._pending and self._since_checkpoint and self._checkpoint_due():
                    self._prepare([], checkpoint=True)  # quiet: make what came durable
                ready = self._pending and (len(self._pending) > 1 or not messages)
                if ready and not self._attempt(self._send, self._pending[0]):
                    continue
                # Behind the loop; waiting only when nothing came for a while (not merely nothing
                # buffered while a batch was scored: blocking then stalls a steady stream).
                idle = waited and not messages and not self._pending
                if not self._attempt(self._advance, idle):
                    continue
                quiet = time.monotonic() - last_message
                if idle and not self._durable and idle_exit_s is not None and quiet > idle_exit_s:
                    break
            self._drain_on_stop()
        finally:
            self.close()
        return self.stats

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()  # leaves the group (its revocation callback runs)
            except (KafkaException, RuntimeError) as exc:
                log.warning("closing the consumer: %s", exc)
            self._consumer = None
        if self._delivery is not None:
            self._delivery.producer.flush(10)
            self._delivery = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        self._scoring.shutdown(wait=True)
        if self.sinker is not None:
            self.sinker.close()
        self.scorer.close()
        if self._ops is not None:
            self._ops.stop()
            self._ops = None

    def _drain_on_stop(self) -> None:
        """Batches caught by SIGTERM get a grace period; what cannot finish stays uncommitted."""
        deadline = time.monotonic() + STOP_GRACE_S
        if self._since_checkpoint:
            self._prepare([], checkpoint=True)
        while (self._pending or self._durable) and time.monotonic() < deadline:
            if self._paused:
                self._retry_paused(deadline)
            elif self._pending:
                self._attempt(self._send, self._pending[0])
            else:
                self._attempt(self._advance, True)
        left = sum(b.size for b in (*self._pending, *self._durable))
        if left:
            log.warning("stopping with %d messages uncommitted; the next run replays them", left)

    # ----------------------------------------------------------------- consuming

    def _consumer_(self) -> Consumer:
        assert self._consumer is not None, "bridge not started"
        return self._consumer

    def _delivery_(self) -> Delivery:
        assert self._delivery is not None, "bridge not started"
        return self._delivery

    def _consume(self, max_messages: int, timeout_s: float) -> list[Message]:
        if self._held:
            held, self._held = self._held[:max_messages], self._held[max_messages:]
            return held
        return self._consumer_().consume(max_messages, timeout_s)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        assert self._reader is not None
        records = self._reader.restore(numbers, self.state)
        self.stats.restored_records += records
        self.metrics.restored.inc(records)
        consumer.incremental_assign(partitions)
        if self._paused or self._throttled:
            consumer.pause(partitions)
        self._assigned.update(numbers)
        self.metrics.assigned.set(len(self._assigned))
        log.info("assigned partitions %s; restored %d state records", numbers, records)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # What was sent gets its changelog and commit now, before the next owner restores.
        try:
            self._advance(block=True)
        except STALLS as exc:
            log.warning("revocation: outputs not durable (%s); the next owner replays them", exc)
        self._forget({tp.partition for tp in partitions}, "revoked")
        self._abort_open_transaction()

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The group expired this member (it stalled past the session timeout): another owns
        these partitions already. Nothing of theirs is written or committed any more: a
        changelog record written now could be restored over the new owner's newer state."""
        log.warning(
            "lost partitions %s (this member was expired from the group); dropping their work",
            sorted(tp.partition for tp in partitions),
        )
        self._forget({tp.partition for tp in partitions}, "lost")
        self._abort_open_transaction()

    def _abort_open_transaction(self) -> None:
        """Exactly once, a transaction left open by a stall (a retriable error) holds records
        of partitions now gone: committing it would be refused (its group generation is stale),
        so it is aborted, and the partitions kept replay from their committed offsets."""
        delivery = self._delivery
        if delivery is None or not delivery.in_transaction:
            return
        try:
            delivery.abort()
        except ProducerFailed as exc:
            self._renew_producer(str(exc))
        self._replay(set(self._assigned), "the rebalance aborted the open transaction")

    def _renew_producer(self, why: str) -> None:
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
        self.metrics.errors.labels("producer").inc()
        log.warning("%s; starting a new transactional producer", why)
        delivery = self._delivery_()
        with contextlib.suppress(KafkaException, RuntimeError):
            delivery.producer.flush(0)
        delivery.renew(self._transactional_producer())

    def _replay(self, partitions: set[int], why: str) -> None:
        """Start these partitions over from their last commit (exactly once, after an aborted
        transaction): drop everything after it, restore their users from the changelog (the
        aborted changelog records are invisible to it) and seek the input back."""
        self.metrics.errors.labels("transaction").inc()
        log.warning("%s; replaying partitions %s from their commits", why, sorted(partitions))
        self._forget(partitions, "replaying")
        self._pending.clear()
        consumer = self._consumer_()
        topic = self.config.input_topic
        committed = self._committed(consumer, [TopicPartition(topic, p) for p in partitions])
        assert self._reader is not None
        restored = self._reader.restore(sorted(partitions), self.state)
        self.stats.restored_records += restored
        self.metrics.restored.inc(restored)
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            consumer.seek(TopicPartition(topic, tp.partition, offset))
        self._assigned |= partitions
        self.metrics.assigned.set(len(self._assigned))
        self._since_checkpoint = False

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
                time.sleep(self.backoff.delay(attempt))
        raise AssertionError("unreachable")

    def _forget(self, gone: set[int], how: str) -> None:
        """Drop the unfinished work, offsets and users' state of partitions no longer ours."""
        for batch in (*self._pending, *self._durable):
            batch.drop_partitions(gone)
        # Durable but after the last checkpoint: the next owner replays them from its state.
        self._commits.drop(gone)
        self._held = [m for m in self._held if where(m)[0] not in gone]
        # Messages of those partitions in the batch being collected: their users' state goes
        # below, and the next owner consumes them from the last commit.
        if self._batcher is not None:
            self._batcher.discard(lambda msg: where(msg)[0] in gone)
        dropped = self.state.drop_partitions(gone)
        self._assigned -= gone
        self.metrics.assigned.set(len(self._assigned))
        for partition in gone:
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(str(partition))
        log.info("%s partitions %s; dropped the state of %d users", how, sorted(gone), dropped)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if error is not None and error.code() == KafkaError._NO_OFFSET:
            return
        refused = partitions if error is not None else [tp for tp in partitions if tp.error]
        if not refused:
            return
        # Outputs and changelog are durable: a replay is skipped by the state, so a lost commit
        # costs time, not correctness; the next checkpoint (a quiet one if nothing comes)
        # commits it again.
        self.metrics.errors.labels("commit").inc()
        log.warning(
            "offset commit of partitions %s failed: %s",
            sorted(tp.partition for tp in refused),
            error or refused[0].error,
        )
        if self._commits.refused(refused):
            self._since_checkpoint = True

    # ----------------------------------------------------------------- a batch

    def _checkpoint_due(self) -> bool:
        return time.monotonic() - self._last_checkpoint >= self._checkpoint_every_s

    def _prepare(self, messages: list[Message], *, checkpoint: bool) -> None:
        with self._step("prepare"):
            batch = prepare(
                messages,
                self.parser,
                self.state,
                checkpoint=checkpoint,
                max_message_bytes=self.config.max_message_bytes,
            )
        if checkpoint:
            self._last_checkpoint = time.monotonic()
        self._since_checkpoint = not checkpoint
        self._submit(batch)
        self._pending.append(batch)

    def _submit(self, batch: Batch) -> None:
        if batch.rows:
            batch.future = self._scoring.submit(
                self.scorer.score, batch.tx_matrix, batch.user_matrix
            )
        else:
            batch.set_scores([])

    def _attempt(self, step: Callable[..., None], *args: object) -> bool:
        """Run a step; on a stall, pause consumption (the step is retried later): False."""
        try:
            step(*args)
        except STALLS as exc:
            self._pause(f"{self._count_stall(exc)}: {exc}")
            return False
        return True

    def _count_stall(self, exc: Exception) -> str:
        kind = (
            "endpoint"
            if isinstance(exc, EndpointUnavailable)
            else "sink"
            if isinstance(exc, SinkError)
            else "produce"
        )
        self.metrics.errors.labels(kind).inc()
        return kind

    @contextlib.contextmanager
    def _step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.metrics.step_seconds.labels(name).observe(time.perf_counter() - started)

    def _send(self, batch: Batch) -> None:
        """Steps 2-3 for the oldest pending batch (all of 2-5 in one transaction, exactly once)."""
        if batch.scores is None:
            with self._step("score_wait"):
                self._score(batch)
        if batch.outputs is None:
            batch.outputs = self._outputs(batch)
            if self.sinker is not None:
                self._anomalies(batch)
        delivery = self._delivery_()
        if self.exactly_once:
            # The sink is outside the transaction: made durable first (idempotent by id).
            if self.sinker is not None:
                self.sinker.write(batch.anomalies, batch.anomaly_messages)
                batch.anomalies, batch.anomaly_messages = [], []
                flush = self.sinker.flush()
                if flush is not None:
                    with self._step("sink"):
                        batch.outputs.extend(self._refused_by_sink(self.sinker.finish(flush)))
            offsets = [
                TopicPartition(self.config.input_topic, p, o) for p, o in batch.next_offsets.items()
            ]
            with self._step("transaction"):
                try:
                    delivery.transact(
                        batch,
                        [*batch.outputs, *self._changelog_records(batch)],
                        offsets,
                        self._consumer_(),
                    )
                except TransactionAborted as exc:
                    self._replay(set(self._assigned), str(exc))
                    return
                except ProducerFailed as exc:
                    self._renew_producer(str(exc))
                    self._replay(set(self._assigned), str(exc))
                    return
            self.metrics.checkpoints.inc()
            self._pending.popleft()
            self._account(batch)
            return
        batch.outputs_sent = Tracker()
        with self._step("send"):
            delivery.send(batch.outputs, batch.outputs_sent)
        if self.sinker is not None:  # buffered in the sink; flushed at the next checkpoint
            self.sinker.write(batch.anomalies, batch.anomaly_messages)
            batch.anomalies, batch.anomaly_messages = [], []
        batch.stage = SENT
        self._pending.popleft()
        self._durable.append(batch)
        self._account(batch)

    def _advance(self, block: bool) -> None:
        """Steps 4-5 for sent batches, in order, as far as acknowledgements allow."""
        delivery = self._delivery_()
        delivery.poll()
        while self._durable:
            batch = self._durable[0]
            if batch.stage == SENT:
                assert batch.outputs_sent is not None
                if not delivery.settle(batch.outputs_sent, block=block):
                    return
                if not batch.checkpoint:  # its offsets wait for the next checkpoint
                    self._commits.add(batch.next_offsets)
                    self._durable.popleft()
                    continue
                if not self._sink_flushed(batch, block):
                    return
                batch.stage = FLUSHED
            if batch.stage == FLUSHED:
                # Dead letters of rows the sink refused, before the state that passed them.
                if batch.late_sent is not None and not delivery.settle(
                    batch.late_sent, block=block
                ):
                    return
                if not self._may_write_state():
                    return
                batch.changelog_sent = Tracker()
                delivery.send(self._changelog_records(batch), batch.changelog_sent)
                batch.stage = CHANGELOG_SENT
            assert batch.changelog_sent is not None
            if not delivery.settle(batch.changelog_sent, block=block):
                return
            self._commits.add(batch.next_offsets)
            with self._step("commit"):
                commit(
                    self._consumer_(),
                    self.config.input_topic,
                    self._commits.take(),
                    wait=block,
                    answer=self._on_commit,
                )
            self.metrics.checkpoints.inc()
            self._durable.popleft()

    def _turn(self) -> None:
        """One turn of the loop: liveness, and whether the loop stalled since the last."""
        self._last_turn = self._note_stall()
        self.health.tick()

    def _note_stall(self) -> float:
        """Now; the membership unsure if the loop has not turned for a stall's length."""
        now = time.monotonic()
        if now - self._last_turn > self._stall_s:
            self._membership_unsure = True
        return now

    def _may_write_state(self) -> bool:
        """Whether a changelog may be written now: not while the group may have expired this
        member in a stall and given its partitions to another, whose newer state a changelog
        record written now could later be restored over. librdkafka tells of such a loss
        (`_on_lost`) only once it hears back from the coordinator, and a resumed loop can reach
        this point before that: after a stall, a synchronous commit of offsets already
        committed asks the coordinator first (it refuses a member it expired)."""
        now = self._note_stall()
        if not self._membership_unsure:
            return True
        if now < self._next_probe:
            return False
        self._next_probe = now + MEMBERSHIP_PROBE_INTERVAL_S
        consumer = self._consumer_()
        topic = self.config.input_topic
        try:
            assignment = consumer.assignment()
            committed = consumer.committed(assignment, timeout=10) if assignment else []
            offsets = self._commits.latest({tp.partition: tp.offset for tp in committed})
            if offsets:  # else nothing is committed yet, and nothing can be asked with
                consumer.commit(
                    offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                    asynchronous=False,
                )
        except KafkaException as exc:
            self.metrics.errors.labels("membership").inc()
            log.warning("writing no state until the group confirms this member: %s", exc)
            return False
        log.info("the group confirmed this member after a stall")
        self._membership_unsure = False
        return True

    def _sink_flushed(self, batch: Batch, block: bool) -> bool:
        """Whether every anomaly written up to this checkpoint batch is durable in the sink (a
        flush handed to its thread now if none was); rows it refused go out as dead letters.
        SinkError when the flush failed: paused, and flushed again on the retry."""
        if self.sinker is None:
            return True
        if batch.sink_flush is None:
            batch.sink_flush = self.sinker.flush()
            if batch.sink_flush is None:
                return True  # nothing written since the last flush
        if not block and not batch.sink_flush.future.done():
            return False
        flush, batch.sink_flush = batch.sink_flush, None
        with self._step("sink_wait"):
            refused = self.sinker.finish(flush)
        if refused:
            batch.late_sent = Tracker()
            self._delivery_().send(self._refused_by_sink(refused), batch.late_sent)
        return True

    def _refused_by_sink(self, refused: list[tuple[Message, Rejected]]) -> list[OutRecord]:
        """Dead letters of the transactions whose anomaly rows the sink refused for good."""
        if not refused:
            return []
        assert self.sinker is not None
        where_to = self.sinker.sink.location
        self.metrics.errors.labels(SINK_REJECTED).inc(len(refused))
        log.warning(
            "%s refused %d anomaly rows for good: %s", where_to, len(refused), refused[0][1]
        )
        return [
            self._dead_letter(
                msg, SINK_REJECTED, f"{where_to} refused the anomaly row: {rejected.reason}"
            )
            for msg, rejected in refused
        ]

    def _dead_letter(self, msg: Message, kind: str, reason: str) -> OutRecord:
        """The dead letter of an input message: its key, value and headers, and where it was."""
        return self.dead_letters.record(
            kind,
            reason,
            key=msg.key(),
            value=msg.value(),
            source=(msg.topic() or self.config.input_topic, *where(msg)),
            headers=headers_of(msg),
        )

    def _changelog_records(self, batch: Batch) -> list[OutRecord]:
        return [
            (self.changelog_topic, r.key, r.value, r.headers, r.partition) for r in batch.changelog
        ]

    def _score(self, batch: Batch) -> None:
        future, batch.future = batch.future, None
        try:
            if future is not None:
                batch.set_scores(future.result())
            else:
                batch.set_scores(self.scorer.score(batch.tx_matrix, batch.user_matrix))
        except RequestRejected as exc:
            self._isolate_rejected(batch, exc)

    def _isolate_rejected(self, batch: Batch, first: RequestRejected) -> None:
        """Split the batch until the rows the models reject are alone; dead-letter those."""
        log.warning("the predictor rejected a batch of %d: %s", len(batch.rows), first)
        scores: dict[int, Score] = {}
        rejected: dict[int, str] = {}

        def visit(indices: list[int]) -> None:
            try:
                got = self.scorer.score(batch.tx_matrix[indices], batch.user_matrix[indices])
            except RequestRejected as exc:
                if len(indices) == 1:
                    rejected[indices[0]] = exc.message
                    return
                half = len(indices) // 2
                visit(indices[:half])
                visit(indices[half:])
                return
            scores.update(zip(indices, got, strict=True))

        visit(list(range(len(batch.rows))))
        for index, reason in rejected.items():
            batch.dead.append((batch.rows[index][0], MODEL_REJECTED, reason))
        keep = sorted(scores)
        batch.keep_rows(keep)
        batch.set_scores([scores[i] for i in keep])

    def _outputs(self, batch: Batch) -> list[OutRecord]:
        assert batch.scores is not None
        scored_topic = self.config.scored_topic
        values = scored_values(
            [tx for _, tx in batch.rows],
            batch.scores,
            scored_at_ms=batch.scored_at_ms,
            latencies_ms=batch.latencies_ms,
            positions=batch.positions,
            history_days=batch.user_matrix[:, HISTORY_DAYS_COLUMN].tolist(),
        )
        records: list[OutRecord] = [
            (scored_topic, msg.key(), value, None, None)
            for (msg, _), value in zip(batch.rows, values, strict=True)
        ]
        records.extend(self._dead_letter(msg, kind, reason) for msg, kind, reason in batch.dead)
        return records

    def _rescue(self, record: OutRecord, error: KafkaError) -> OutRecord | None:
        """What Delivery sends instead of a record Kafka refused for good."""
        self.metrics.errors.labels("output_refused").inc()
        return self.dead_letters.rescue(record, error, input_topic=self.config.input_topic)

    def _anomalies(self, batch: Batch) -> None:
        """The batch's anomaly records for the sink, and their input messages."""
        assert batch.scores is not None
        for (msg, tx), score, latency in zip(
            batch.rows, batch.scores, batch.latencies_ms, strict=True
        ):
            if score.is_anomaly:
                batch.anomalies.append(
                    anomaly_record(tx, score, scored_at_ms=batch.scored_at_ms, latency_ms=latency)
                )
                batch.anomaly_messages.append(msg)

    def _account(self, batch: Batch) -> None:
        if not batch.size:
            return  # a checkpoint with nothing new
        n = len(batch.rows)
        now_ms = time.time() * 1000
        stamps = batch.stamps_ms[batch.stamps_ms > 0]
        self.metrics.event_to_score.observe_many(np.maximum(0.0, now_ms - stamps) / 1000)
        anomalies = sum(1 for s in batch.scores or () if s.is_anomaly)
        self.metrics.messages.labels("scored").inc(n)
        self.metrics.messages.labels("dead_lettered").inc(len(batch.dead))
        self.metrics.messages.labels("replay_skipped").inc(batch.skipped)
        self.metrics.anomalies.inc(anomalies)
        for _, kind, _ in batch.dead:
            self.metrics.errors.labels(kind).inc()
        if batch.consume_errors:
            self.metrics.errors.labels("consume").inc(batch.consume_errors)
        self.metrics.batch_size.observe(batch.size)
        self.metrics.batch_seconds.observe(time.perf_counter() - batch.started)
        self.stats.batches += 1
        self.stats.scored += n
        self.stats.dead_lettered += len(batch.dead)
        self.stats.replay_skipped += batch.skipped
        self.stats.anomalies += anomalies

    # ----------------------------------------------------------------- pausing

    def _over_bound(self) -> bool:
        """Whether in-flight batches or the sink's backlog reached their bound."""
        backlog = self.sinker.backlog if self.sinker is not None else 0
        return (
            len(self._pending) + len(self._durable) >= self.config.max_in_flight_batches
            or backlog >= self.config.sink_max_backlog_rows
        )

    def _wait_for_room(self) -> None:
        """At a bound: take nothing new (partitions paused, the group still served) while the
        batches in flight go out and become durable."""
        consumer = self._consumer_()
        if not self._throttled:
            consumer.pause(consumer.assignment())
            self._throttled = True
            self.metrics.backpressure.set(1)
            log.info(
                "backpressure: %d batches in flight, %d anomaly rows for the sink; waiting",
                len(self._pending) + len(self._durable),
                self.sinker.backlog if self.sinker is not None else 0,
            )
        msg = consumer.poll(0.02)  # rebalances and the group; a message fetched before is held
        if msg is not None:
            self._held.append(msg)
        sink_full = (
            self.sinker is not None and self.sinker.backlog >= self.config.sink_max_backlog_rows
        )
        if sink_full and not any(b.checkpoint for b in (*self._pending, *self._durable)):
            self._prepare([], checkpoint=True)  # the sink is flushed at checkpoints only
        if self._pending and not self._attempt(self._send, self._pending[0]):
            return
        self._attempt(self._advance, False)

    def _unthrottle(self) -> None:
        consumer = self._consumer_()
        consumer.resume(consumer.assignment())
        self._throttled = False
        self.metrics.backpressure.set(0)
        log.info("backpressure: room again; consuming")

    def _pause(self, why: str) -> None:
        if self._paused:
            return
        consumer = self._consumer_()
        consumer.pause(consumer.assignment())
        self._paused = True
        self.stats.pauses += 1
        self.metrics.paused.set(1)
        self.health.ready = False
        log.warning("pausing consumption; the batch is kept and retried: %s", why)

    def _resume(self) -> None:
        consumer = self._consumer_()
        if not self._throttled:  # else they stay paused until there is room
            consumer.resume(consumer.assignment())
        self._paused = False
        self._retries = 0
        self.metrics.paused.set(0)
        self.health.ready = True
        log.info("resumed consumption")

    def _retry_paused(self, until: float | None = None) -> None:
        """Serve rebalances while paused; retry the stalled steps when the backoff allows."""
        self._retries += 1
        wait = max(self.backoff.delay(min(self._retries, 30)), self._breaker_wait())
        deadline = time.monotonic() + wait
        if until is not None:
            deadline = min(deadline, until)
        consumer = self._consumer_()
        while time.monotonic() < deadline and not (self._stop.is_set() and until is None):
            self._turn()
            # Paused partitions fetch nothing new; anything already buffered is held, in order.
            msg = consumer.poll(min(0.1, max(0.0, deadline - time.monotonic())))
            if msg is not None:
                self._held.append(msg)
        while self._pending and self._pending[0].empty:
            self._pending.popleft()  # everything in it was revoked meanwhile
        try:
            self._advance(block=True)
            for batch in self._pending:
                batch.forget_failed_scoring()  # failed during the outage: score it again
            while self._pending:
                self._send(self._pending[0])
        except STALLS as exc:
            log.debug("still stalled (%s): %s", self._count_stall(exc), exc)
            return
        self._resume()

    def _breaker_wait(self) -> float:
        waits = [
            client.breaker.retry_in()
            for client in (
                getattr(self.scorer, "detector", None),
                getattr(self.scorer, "risk", None),
            )
            if client is not None and hasattr(client, "breaker")
        ]
        return max(waits, default=0.0)

    # ----------------------------------------------------------------- gauges

    def _update_gauges(self, every_s: float = 2.0) -> None:
        now = time.monotonic()
        if now - self._last_gauges < every_s or self._consumer is None:
            return
        elapsed = now - self._last_gauges
        self._last_gauges = now
        total = self.stats.scored + self.stats.dead_lettered + self.stats.replay_skipped
        self.metrics.throughput.set((total - self._last_count) / elapsed)
        self._last_count = total
        self.metrics.state_users.set(len(self.state))
        self.metrics.in_flight.set(len(self._pending) + len(self._durable))
        self.metrics.sink_backlog.set(self.sinker.backlog if self.sinker is not None else 0)
        consumer = self._consumer
        try:
            assignment = consumer.assignment()
            for tp in consumer.position(assignment):
                _, high = consumer.get_watermark_offsets(tp, cached=True)
                if high >= 0 and tp.offset >= 0:
                    self.metrics.consumer_lag.labels(str(tp.partition)).set(high - tp.offset)
        except KafkaException as exc:
            log.debug("lag not available: %s", exc)
