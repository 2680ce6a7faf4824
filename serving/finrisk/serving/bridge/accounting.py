"""Counting what the bridge did: per batch sent (metrics and run stats) and, every few seconds,
the gauges (throughput, state size, batches in flight, sink backlog, consumer lag)."""

from __future__ import annotations

import logging
import time

import numpy as np
from confluent_kafka import KafkaException

from finrisk.serving.bridge.batch import Batch
from finrisk.serving.bridge.runtime import Runtime

log = logging.getLogger("finrisk.bridge")


class Accounting:
    def __init__(self, runtime: Runtime, gauges_every_s: float = 2.0) -> None:
        self.runtime = runtime
        self.gauges_every_s = gauges_every_s
        self._last_gauges = 0.0
        self._last_count = 0

    def batch_sent(self, batch: Batch) -> None:
        if not batch.size:
            return  # a checkpoint with nothing new
        metrics, stats = self.runtime.metrics, self.runtime.stats
        n = len(batch.rows)
        now_ms = time.time() * 1000
        stamps = batch.stamps_ms[batch.stamps_ms > 0]
        metrics.event_to_score.observe_many(np.maximum(0.0, now_ms - stamps) / 1000)
        anomalies = sum(1 for s in batch.scores or () if s.is_anomaly)
        metrics.messages.labels("scored").inc(n)
        metrics.messages.labels("dead_lettered").inc(len(batch.dead))
        metrics.messages.labels("replay_skipped").inc(batch.skipped)
        metrics.anomalies.inc(anomalies)
        for _, kind, _ in batch.dead:
            metrics.errors.labels(kind).inc()
        if batch.consume_errors:
            metrics.errors.labels("consume").inc(batch.consume_errors)
        metrics.batch_size.observe(batch.size)
        metrics.batch_seconds.observe(time.perf_counter() - batch.started)
        stats.batches += 1
        stats.scored += n
        stats.dead_lettered += len(batch.dead)
        stats.replay_skipped += batch.skipped
        stats.anomalies += anomalies

    def update_gauges(self) -> None:
        runtime = self.runtime
        now = time.monotonic()
        if now - self._last_gauges < self.gauges_every_s or runtime.consumer_ is None:
            return
        metrics, stats = runtime.metrics, runtime.stats
        elapsed = now - self._last_gauges
        self._last_gauges = now
        total = stats.scored + stats.dead_lettered + stats.replay_skipped
        metrics.throughput.set((total - self._last_count) / elapsed)
        self._last_count = total
        metrics.state_users.set(len(runtime.state))
        metrics.in_flight.set(len(runtime.in_flight))
        metrics.sink_backlog.set(runtime.sinker.backlog if runtime.sinker is not None else 0)
        consumer = runtime.consumer_
        try:
            assignment = consumer.assignment()
            for tp in consumer.position(assignment):
                _, high = consumer.get_watermark_offsets(tp, cached=True)
                if high >= 0 and tp.offset >= 0:
                    metrics.consumer_lag.labels(str(tp.partition)).set(high - tp.offset)
        except KafkaException as exc:
            log.debug("lag not available: %s", exc)
