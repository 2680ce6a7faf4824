"""The bridge: consume transactions, score them in micro-batches, write outputs, then commit.

One thread runs the loop; Kafka's rebalance callbacks (rebalance.py) run inside its consume
calls. Each turn collects a micro-batch (or takes what is buffered while the previous one is
being scored), prepares it (stages.py: PREPARED), sends the oldest prepared batch once scored,
and makes sent batches durable behind the loop, as the delivery mode (at_least_once.py,
exactly_once.py) does it. A stall or a backpressure bound hands the turn to flow control
(flow_control.py), which pauses consumption and resumes it by itself.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from finrisk.schema import Schema
from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.accounting import Accounting
from finrisk.serving.bridge.at_least_once import AtLeastOnce
from finrisk.serving.bridge.batch import Batch, prepare
from finrisk.serving.bridge.batching import MicroBatcher
from finrisk.serving.bridge.binding import RestartToBind
from finrisk.serving.bridge.consumer_errors import ConsumerErrors
from finrisk.serving.bridge.delivery import Delivery
from finrisk.serving.bridge.delivery_mode import DeliveryMode
from finrisk.serving.bridge.exactly_once import ExactlyOnce
from finrisk.serving.bridge.flow_control import FlowControl
from finrisk.serving.bridge.membership import Membership
from finrisk.serving.bridge.merchant_risk import open_merchant_risk
from finrisk.serving.bridge.messages import MessageParser
from finrisk.serving.bridge.metrics import BridgeMetrics, OpsServer
from finrisk.serving.bridge.rebalance import Rebalance
from finrisk.serving.bridge.records import OutRecord
from finrisk.serving.bridge.restore import ChangelogReader
from finrisk.serving.bridge.runtime import RunStats, Runtime
from finrisk.serving.bridge.scoring import Scorer
from finrisk.serving.bridge.sink_writer import SinkWriter
from finrisk.serving.bridge.state import StateStore
from finrisk.settings import BridgeSettings, Settings
from finrisk.sinks import AnomalySink

log = logging.getLogger("finrisk.bridge")

# How long a SIGTERM waits for unfinished batches before leaving them uncommitted.
STOP_GRACE_S = 15.0

__all__ = ["Bridge", "RunStats"]


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
        self.sink = sink
        sinker = SinkWriter(sink) if sink is not None else None
        self.runtime = runtime = Runtime(settings, scorer, sinker, MessageParser(schema))
        self.accounting = Accounting(runtime)
        self.membership = Membership(runtime)
        self.mode: DeliveryMode = (
            ExactlyOnce(runtime, self.accounting)
            if runtime.config.exactly_once
            else AtLeastOnce(runtime, self.accounting, self.membership)
        )
        self.flow = FlowControl(
            runtime, self.mode, self.membership, lambda: self._prepare([], checkpoint=True)
        )
        self.rebalance = Rebalance(runtime, self.mode, self.flow)
        self.consumer_errors = ConsumerErrors()
        self._serve_http = serve_http
        self._ops: OpsServer | None = None
        self._scoring = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bridge-scoring")

    @property
    def config(self) -> BridgeSettings:
        return self.runtime.config

    @property
    def state(self) -> StateStore:
        return self.runtime.state

    @property
    def metrics(self) -> BridgeMetrics:
        return self.runtime.metrics

    @property
    def stats(self) -> RunStats:
        return self.runtime.stats

    # ----------------------------------------------------------------- life cycle

    def stop(self) -> None:
        """Ask the loop to finish its batches, commit and close (safe from a signal handler)."""
        self.runtime.stop.set()

    @property
    def ops_port(self) -> int | None:
        return self._ops.port if self._ops else None

    def start(self) -> None:
        runtime = self.runtime
        settings, config = runtime.settings, runtime.config
        kafka_config.ensure_topics(settings)
        runtime.dead_letters.max_bytes = kafka_config.max_record_bytes(settings, config.dlq_topic)
        if self._serve_http:
            self._ops = OpsServer(
                config.http_host, config.http_port, runtime.metrics, runtime.health
            ).start()
            log.info("health and metrics on http://%s:%d", config.http_host, self._ops.port)
        runtime.delivery_ = Delivery(
            self.mode.new_producer(), kafka_config.MESSAGE_TIMEOUT_MS / 1000 + 5, self._rescue
        )
        runtime.reader_ = ChangelogReader(
            Consumer(kafka_config.restore_consumer_config(settings)),
            runtime.changelog_topic,
            runtime.backoff,
        )
        merchant = runtime.merchant_risk = open_merchant_risk(
            settings, runtime.scorer, runtime.metrics
        )
        if merchant is not None:
            runtime.state.merchants = merchant.placer.merchants
        consumer = runtime.consumer_ = Consumer(
            {**kafka_config.consumer_config(settings), "on_commit": self.membership.on_commit}
        )
        consumer.subscribe(
            [config.input_topic],
            on_assign=self.rebalance.on_assign,
            on_revoke=self.rebalance.on_revoke,
            on_lost=self.rebalance.on_lost,
        )
        runtime.health.ready = True
        log.info(
            "bridge %s: %s -> %s (dead letters %s, state %s), %s, sink %s",
            config.group_id,
            config.input_topic,
            config.scored_topic,
            config.dlq_topic,
            runtime.changelog_topic,
            "exactly once" if config.exactly_once else "at least once",
            self.sink.location if self.sink else "none",
        )

    def run(self, *, idle_exit_s: float | None = None) -> RunStats:
        """Loop until stop() (SIGTERM), or until nothing came for `idle_exit_s` seconds."""
        runtime, flow, mode = self.runtime, self.flow, self.mode
        in_flight, checkpoints = runtime.in_flight, runtime.checkpoints
        if runtime.consumer_ is None:
            self.start()
        batcher = in_flight.batcher = MicroBatcher(
            self._consume,
            runtime.config.batch_max_messages,
            runtime.config.batch_max_wait_ms / 1000,
            idle_s=0.1,
        )
        last_message = time.monotonic()
        try:
            while not runtime.stop.is_set():
                self.membership.turn()
                self.accounting.update_gauges()
                if flow.paused:
                    flow.retry_paused()
                    continue
                if flow.over_bound():
                    flow.wait_for_room()
                    continue
                if flow.throttled:
                    flow.unthrottle()
                # While a batch is being scored, take only what is already buffered.
                waited = not in_flight.pending
                messages = batcher.next_batch() if waited else batcher.buffered()
                if messages:
                    last_message = time.monotonic()
                    self._prepare(messages, checkpoint=checkpoints.due())
                elif not in_flight.pending and (
                    (checkpoints.owed and checkpoints.due())
                    or (runtime.monitor is not None and runtime.monitor.due())
                ):
                    # Quiet: make what came durable, and close a monitoring window that is due.
                    self._prepare([], checkpoint=True)
                pending = in_flight.pending
                ready = pending and (len(pending) > 1 or not messages)
                if ready and not flow.attempt(mode.send, pending[0]):
                    continue
                # Behind the loop; waiting only when nothing came for a while (not merely nothing
                # buffered while a batch was scored: blocking then stalls a steady stream).
                idle = waited and not messages and not in_flight.pending
                if not flow.attempt(mode.advance, idle):
                    continue
                quiet = time.monotonic() - last_message
                if (
                    idle
                    and not in_flight.durable
                    and idle_exit_s is not None
                    and quiet > idle_exit_s
                ):
                    break
            self._drain_on_stop()
        except RestartToBind:
            self._abandon_unsent()
            raise
        finally:
            self.close()
        return runtime.stats

    def close(self) -> None:
        runtime = self.runtime
        if runtime.consumer_ is not None:
            try:
                runtime.consumer_.close()  # leaves the group (its revocation callback runs)
            except (KafkaException, RuntimeError) as exc:
                log.warning("closing the consumer: %s", exc)
            runtime.consumer_ = None
        if runtime.delivery_ is not None:
            runtime.delivery_.producer.flush(10)
            runtime.delivery_ = None
        if runtime.reader_ is not None:
            runtime.reader_.close()
            runtime.reader_ = None
        if runtime.merchant_risk is not None:  # after the consumer left: no more revocations
            runtime.merchant_risk.close()
            runtime.merchant_risk = None
        self._scoring.shutdown(wait=True)
        if runtime.sinker is not None:
            runtime.sinker.close()
        runtime.scorer.close()
        if self._ops is not None:
            self._ops.stop()
            self._ops = None

    def _abandon_unsent(self) -> None:
        """The run ends to bind with features this bridge computes only from its start
        (binding.RestartToBind): the batches not sent were prepared without them and are
        dropped, uncommitted, for the next run to replay from the last commit and the
        changelog (exactly once, no transaction holds them: a batch's opens once it is
        scored). What was sent is made durable first, as on SIGTERM, but no new checkpoint
        is written: the users' state now includes the dropped batches."""
        in_flight = self.runtime.in_flight
        dropped = sum(batch.size for batch in in_flight.pending)
        in_flight.pending.clear()
        in_flight.held.clear()
        self.runtime.checkpoints.owed = False
        self._drain_on_stop()
        log.warning("ending the run to bind again: %d messages left for the next run", dropped)

    def _drain_on_stop(self) -> None:
        """Batches caught by SIGTERM get a grace period; what cannot finish stays uncommitted."""
        runtime, flow, mode = self.runtime, self.flow, self.mode
        in_flight = runtime.in_flight
        deadline = time.monotonic() + STOP_GRACE_S
        if runtime.checkpoints.owed:
            self._prepare([], checkpoint=True)
        while (in_flight.pending or in_flight.durable) and time.monotonic() < deadline:
            if flow.paused:
                flow.retry_paused(deadline)
            elif in_flight.pending:
                flow.attempt(mode.send, in_flight.pending[0])
            else:
                flow.attempt(mode.advance, True)
        left = sum(b.size for b in (*in_flight.pending, *in_flight.durable))
        if left:
            log.warning("stopping with %d messages uncommitted; the next run replays them", left)

    # ----------------------------------------------------------------- a batch

    def _consume(self, max_messages: int, timeout_s: float) -> list[Message]:
        in_flight = self.runtime.in_flight
        if in_flight.held:
            held = in_flight.held[:max_messages]
            in_flight.held = in_flight.held[max_messages:]
            return held
        return self.consumer_errors.messages(self.runtime.consumer.consume(max_messages, timeout_s))

    def _prepare(self, messages: list[Message], *, checkpoint: bool) -> None:
        runtime = self.runtime
        with runtime.step("prepare"):
            batch = prepare(
                messages,
                runtime.parser,
                runtime.state,
                checkpoint=checkpoint,
                transacted=runtime.config.exactly_once,
                max_message_bytes=runtime.config.max_message_bytes,
                merchant=runtime.merchant_risk,
            )
        runtime.checkpoints.prepared(checkpoint)
        self._submit(batch)
        runtime.in_flight.pending.append(batch)

    def _submit(self, batch: Batch) -> None:
        """Scoring in the worker thread: while the predictor works on this batch, the loop
        prepares the next one when it is already buffered."""
        if batch.rows:
            batch.future = self._scoring.submit(
                self.runtime.scorer.score, batch.tx_matrix, batch.user_matrix
            )
        else:
            batch.set_scores([])

    def _rescue(self, record: OutRecord, error: KafkaError) -> OutRecord | None:
        """What Delivery sends instead of a record Kafka refused for good."""
        runtime = self.runtime
        runtime.metrics.errors.labels("output_refused").inc()
        return runtime.dead_letters.rescue(record, error, input_topic=runtime.config.input_topic)
