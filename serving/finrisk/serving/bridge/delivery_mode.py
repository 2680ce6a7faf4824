"""How a scored batch gets out and becomes durable: one interface, two guarantees.

`AtLeastOnce` (at_least_once.py) sends outputs, then makes them durable behind the loop
(sink flush, changelog, commit per checkpoint); `ExactlyOnce` (exactly_once.py) sends each
batch's outputs, changelog and offsets in one Kafka transaction. The loop, the rebalance
callbacks and flow control call only what is declared here. See stages.py for the steps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from confluent_kafka import Producer

from finrisk.serving.bridge.accounting import Accounting
from finrisk.serving.bridge.batch import Batch
from finrisk.serving.bridge.batch_outputs import collect_anomalies, records, take_scores
from finrisk.serving.bridge.runtime import Runtime


class DeliveryMode(ABC):
    def __init__(self, runtime: Runtime, accounting: Accounting) -> None:
        self.runtime = runtime
        self.accounting = accounting

    @abstractmethod
    def new_producer(self) -> Producer:
        """The producer this mode sends with, ready to use."""

    def send(self, batch: Batch) -> None:
        """Take the oldest pending batch's scores and send what it has to send; the batch
        leaves the pending queue once sent. A stall (STALLS) leaves it there, its completed
        steps kept, to be retried."""
        runtime = self.runtime
        if batch.scores is None:
            with runtime.step("score_wait"):
                take_scores(batch, runtime.scorer)
        if batch.outputs is None:
            if batch.monitoring is None:
                batch.monitoring = runtime.monitor.observe(batch) if runtime.monitor else []
            batch.outputs = [
                *records(batch, runtime.config.scored_topic, runtime.dead_letter),
                *batch.monitoring,
            ]
            if runtime.sinker is not None:
                collect_anomalies(batch)
        self._deliver(batch)

    @abstractmethod
    def _deliver(self, batch: Batch) -> None:
        """Send a scored batch's outputs (and, exactly once, all the rest)."""

    def advance(self, block: bool) -> None:
        """Make sent batches durable, in order, as far as acknowledgements allow; with
        `block`, wait for them."""
        self.runtime.delivery.poll()

    def partitions_gone(self) -> None:  # noqa: B027 (a hook: at least once has nothing open)
        """After partitions were revoked or lost and forgotten."""
