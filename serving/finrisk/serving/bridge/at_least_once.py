"""At least once: outputs go out at once; the sink flush, the changelog and the commit follow
per checkpoint, behind the loop (it checks them between batches and waits only when idle,
stopping or rebalancing), so no batch waits for the previous one's acknowledgements. A crash
replays what came after the last checkpoint: duplicates, never lost transactions."""

from __future__ import annotations

from confluent_kafka import Producer

from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.accounting import Accounting
from finrisk.serving.bridge.batch import Batch
from finrisk.serving.bridge.commits import commit
from finrisk.serving.bridge.delivery import Tracker
from finrisk.serving.bridge.delivery_mode import DeliveryMode
from finrisk.serving.bridge.membership import Membership
from finrisk.serving.bridge.runtime import Runtime
from finrisk.serving.bridge.stages import Stage


class AtLeastOnce(DeliveryMode):
    def __init__(self, runtime: Runtime, accounting: Accounting, membership: Membership) -> None:
        super().__init__(runtime, accounting)
        self.membership = membership

    def new_producer(self) -> Producer:
        return Producer(kafka_config.producer_config(self.runtime.settings, transactional=False))

    def _deliver(self, batch: Batch) -> None:
        runtime = self.runtime
        assert batch.outputs is not None
        tracker = Tracker()
        with runtime.step("send"):
            runtime.delivery.send(batch.outputs, tracker)
        if runtime.sinker is not None:  # buffered in the sink; flushed at the next checkpoint
            runtime.sinker.write(batch.anomalies, batch.anomaly_messages)
            batch.anomalies, batch.anomaly_messages = [], []
        batch.sent(tracker)
        runtime.in_flight.pending.popleft()
        runtime.in_flight.durable.append(batch)
        self.accounting.batch_sent(batch)

    def advance(self, block: bool) -> None:
        runtime = self.runtime
        delivery, durable = runtime.delivery, runtime.in_flight.durable
        delivery.poll()
        while durable:
            batch = durable[0]
            if batch.stage is Stage.SENT:
                assert batch.outputs_sent is not None
                if not delivery.settle(batch.outputs_sent, block=block):
                    return
                if not batch.checkpoint:  # its offsets wait for the next checkpoint
                    runtime.commits.add(batch.next_offsets)
                    batch.done()
                    durable.popleft()
                    continue
                if not self._sink_flushed(batch, block):
                    return
                batch.flushed()
            if batch.stage is Stage.FLUSHED:
                # Dead letters of rows the sink refused, before the state that passed them.
                if batch.late_sent is not None and not delivery.settle(
                    batch.late_sent, block=block
                ):
                    return
                if not self.membership.may_write_state():
                    return
                changelog = Tracker()
                delivery.send(runtime.changelog_records(batch), changelog)
                batch.changelog_out(changelog)
            assert batch.changelog_sent is not None
            if not delivery.settle(batch.changelog_sent, block=block):
                return
            runtime.commits.add(batch.next_offsets)
            with runtime.step("commit"):
                commit(
                    runtime.consumer,
                    runtime.config.input_topic,
                    runtime.commits.take(),
                    wait=block,
                    answer=self.membership.on_commit,
                )
            runtime.metrics.checkpoints.inc()
            batch.done()
            durable.popleft()

    def _sink_flushed(self, batch: Batch, block: bool) -> bool:
        """Whether every anomaly written up to this checkpoint batch is durable in the sink (a
        flush handed to its thread now if none was); rows it refused go out as dead letters.
        SinkError when the flush failed: paused, and flushed again on the retry."""
        runtime = self.runtime
        sinker = runtime.sinker
        if sinker is None:
            return True
        if batch.sink_flush is None:
            batch.sink_flush = sinker.flush()
            if batch.sink_flush is None:
                return True  # nothing written since the last flush
        if not block and not batch.sink_flush.future.done():
            return False
        flush, batch.sink_flush = batch.sink_flush, None
        with runtime.step("sink_wait"):
            refused = sinker.finish(flush)
        if refused:
            batch.late_sent = Tracker()
            runtime.delivery.send(runtime.refused_by_sink(refused), batch.late_sent)
        return True
