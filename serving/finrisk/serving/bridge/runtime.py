"""What the bridge's parts share: its settings, clients, state, batches in flight and metrics.

The loop (loop.py), the delivery modes (at_least_once.py, exactly_once.py), the rebalance
callbacks (rebalance.py), the group membership check (membership.py) and flow control
(flow_control.py) each hold the one Runtime of their bridge. The Kafka clients exist from
`Bridge.start` to `Bridge.close`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from confluent_kafka import Consumer, Message

from finrisk.serving.bridge import kafka_config
from finrisk.serving.bridge.backoff import Backoff
from finrisk.serving.bridge.batch import Batch
from finrisk.serving.bridge.batching import MicroBatcher
from finrisk.serving.bridge.commits import CommitLedger
from finrisk.serving.bridge.dead_letters import SINK_REJECTED, DeadLetters
from finrisk.serving.bridge.delivery import Delivery
from finrisk.serving.bridge.merchant_risk import MerchantRisk
from finrisk.serving.bridge.messages import MessageParser
from finrisk.serving.bridge.metrics import BridgeMetrics, Health
from finrisk.serving.bridge.monitoring import Monitor, MonitoringGauges, Profiles
from finrisk.serving.bridge.records import OutRecord, headers_of, where
from finrisk.serving.bridge.restore import ChangelogReader
from finrisk.serving.bridge.scoring import Scorer
from finrisk.serving.bridge.sink_writer import SinkWriter
from finrisk.serving.bridge.state import StateStore
from finrisk.settings import Settings
from finrisk.sinks.base import Rejected

log = logging.getLogger("finrisk.bridge")


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

    def add(self, other: RunStats) -> RunStats:
        """These stats plus `other`'s (the runs of one process, or its workers)."""
        for name, value in other.as_dict().items():
            setattr(self, name, getattr(self, name) + value)
        return self


@dataclass
class InFlight:
    """Batches between consuming and committing, oldest first, and messages held back."""

    # Prepared, being scored or waiting to be sent.
    pending: deque[Batch] = field(default_factory=deque)
    # Sent, waiting for acknowledgements, the sink, the changelog or the commit.
    durable: deque[Batch] = field(default_factory=deque)
    # Fetched while consumption was paused: consumed first when it resumes, in order.
    held: list[Message] = field(default_factory=list)
    # The batch being collected, while the loop runs.
    batcher: MicroBatcher[Message] | None = None

    def __len__(self) -> int:
        return len(self.pending) + len(self.durable)

    def drop_partitions(self, gone: set[int]) -> None:
        for batch in (*self.pending, *self.durable):
            batch.drop_partitions(gone)
        self.held = [m for m in self.held if where(m)[0] not in gone]
        # Messages of those partitions in the batch being collected: their users' state is
        # dropped too, and the next owner consumes them from the last commit.
        if self.batcher is not None:
            self.batcher.discard(lambda msg: where(msg)[0] in gone)


class Checkpoints:
    """When the next checkpoint is due, and whether one is owed (a batch prepared since the
    last, or a refused commit to make again)."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.last = time.monotonic()
        self.owed = False

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every_s

    def prepared(self, checkpoint: bool) -> None:
        if checkpoint:
            self.last = time.monotonic()
        self.owed = not checkpoint


class Runtime:
    def __init__(
        self, settings: Settings, scorer: Scorer, sinker: SinkWriter | None, parser: MessageParser
    ) -> None:
        self.settings = settings
        self.config = config = settings.bridge
        self.scorer = scorer
        self.sinker = sinker
        self.parser = parser
        self.state = StateStore(config.dedup_window_s, config.dedup_max_ids)
        self.metrics = BridgeMetrics()
        self.health = Health()
        self.stats = RunStats()
        self.stop = threading.Event()
        self.backoff = Backoff(
            config.backoff_initial_s, max(config.backoff_max_s, config.backoff_initial_s)
        )
        self.changelog_topic = kafka_config.changelog_topic(config)
        # Sized to what the dead-letter topic takes when the bridge starts.
        self.dead_letters = DeadLetters(config.dlq_topic, kafka_config.PRODUCER_MAX_BYTES)
        self.in_flight = InFlight()
        self.monitor = (
            Monitor(config, Profiles(scorer.profile), MonitoringGauges(self.metrics.registry))
            if config.monitoring
            else None
        )
        # Input offsets of durable batches after the last committed checkpoint.
        self.commits = CommitLedger()
        self.checkpoints = Checkpoints(
            0.0 if config.exactly_once else config.checkpoint_interval_ms / 1000
        )
        self.assigned: set[int] = set()
        self.consumer_: Consumer | None = None
        self.delivery_: Delivery | None = None
        self.reader_: ChangelogReader | None = None
        # Set at start when the detector reads merchant risk (merchant_risk.py).
        self.merchant_risk: MerchantRisk | None = None

    @property
    def consumer(self) -> Consumer:
        assert self.consumer_ is not None, "bridge not started"
        return self.consumer_

    @property
    def delivery(self) -> Delivery:
        assert self.delivery_ is not None, "bridge not started"
        return self.delivery_

    @property
    def reader(self) -> ChangelogReader:
        assert self.reader_ is not None, "bridge not started"
        return self.reader_

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.metrics.step_seconds.labels(name).observe(time.perf_counter() - started)

    def restore(self, partitions: list[int]) -> int:
        """The users of these partitions from the changelog; the records read."""
        records = self.reader.restore(partitions, self.state)
        if self.merchant_risk is not None:  # their users' labels, once their state is back
            self.merchant_risk.placer.assign(partitions)
        self.stats.restored_records += records
        self.metrics.restored.inc(records)
        return records

    def set_assigned(self, partitions: set[int]) -> None:
        self.assigned = partitions
        self.metrics.assigned.set(len(partitions))

    def forget(self, gone: set[int], how: str) -> None:
        """Drop the unfinished work, offsets and users' state of partitions no longer ours."""
        self.in_flight.drop_partitions(gone)
        if self.merchant_risk is not None:
            self.merchant_risk.placer.revoke(gone)
        # Durable but after the last checkpoint: the next owner replays them from its state.
        self.commits.drop(gone)
        dropped = self.state.drop_partitions(gone)
        self.set_assigned(self.assigned - gone)
        for partition in gone:
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(str(partition))
        log.info("%s partitions %s; dropped the state of %d users", how, sorted(gone), dropped)

    def dead_letter(self, msg: Message, kind: str, reason: str) -> OutRecord:
        """The dead letter of an input message: its key, value and headers, and where it was."""
        return self.dead_letters.record(
            kind,
            reason,
            key=msg.key(),
            value=msg.value(),
            source=(msg.topic() or self.config.input_topic, *where(msg)),
            headers=headers_of(msg),
        )

    def refused_by_sink(self, refused: list[tuple[Message, Rejected]]) -> list[OutRecord]:
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
            self.dead_letter(
                msg, SINK_REJECTED, f"{where_to} refused the anomaly row: {rejected.reason}"
            )
            for msg, rejected in refused
        ]

    def changelog_records(self, batch: Batch) -> list[OutRecord]:
        return [
            (self.changelog_topic, r.key, r.value, r.headers, r.partition) for r in batch.changelog
        ]
