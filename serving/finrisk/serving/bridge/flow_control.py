"""When the bridge stops taking new messages, and how it starts again by itself.

- A stall (the predictor or the sink unavailable, Kafka not acknowledging): every assigned
  partition is paused, the batch stays in memory and the stalled step is retried with backoff
  (the circuit breaker's wait at least); nothing is dropped, nothing committed.
- Backpressure: past `max_in_flight_batches` or `sink_max_backlog_rows`, partitions are paused
  while the batches in flight go out and become durable.

Either way the group is still served (rebalances, heartbeats), and a message fetched before
the pause is held and consumed first afterwards, in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from finrisk.serving.bridge.delivery import OutputUnavailable
from finrisk.serving.bridge.delivery_mode import DeliveryMode
from finrisk.serving.bridge.membership import Membership
from finrisk.serving.bridge.runtime import Runtime
from finrisk.serving.bridge.v2_client import EndpointUnavailable
from finrisk.sinks import SinkError

log = logging.getLogger("finrisk.bridge")

# What pauses consumption until it passes.
STALLS = (EndpointUnavailable, SinkError, OutputUnavailable)


class FlowControl:
    def __init__(
        self,
        runtime: Runtime,
        mode: DeliveryMode,
        membership: Membership,
        prepare_checkpoint: Callable[[], None],
    ) -> None:
        self.runtime = runtime
        self.mode = mode
        self.membership = membership
        # Prepares an empty checkpoint batch (the sink is flushed at checkpoints only).
        self.prepare_checkpoint = prepare_checkpoint
        self.paused = False  # a step failed: retried with backoff (retry_paused)
        self.throttled = False  # at a backpressure bound: waiting for room (wait_for_room)
        self._retries = 0

    @property
    def holding(self) -> bool:
        """Whether partitions are kept paused (a partition assigned now is paused too)."""
        return self.paused or self.throttled

    def attempt(self, step: Callable[..., None], *args: object) -> bool:
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
        self.runtime.metrics.errors.labels(kind).inc()
        return kind

    # ----------------------------------------------------------------- backpressure

    def over_bound(self) -> bool:
        """Whether in-flight batches or the sink's backlog reached their bound."""
        runtime = self.runtime
        backlog = runtime.sinker.backlog if runtime.sinker is not None else 0
        return (
            len(runtime.in_flight) >= runtime.config.max_in_flight_batches
            or backlog >= runtime.config.sink_max_backlog_rows
        )

    def wait_for_room(self) -> None:
        """At a bound: take nothing new (partitions paused, the group still served) while the
        batches in flight go out and become durable."""
        runtime = self.runtime
        consumer, in_flight, sinker = runtime.consumer, runtime.in_flight, runtime.sinker
        if not self.throttled:
            consumer.pause(consumer.assignment())
            self.throttled = True
            runtime.metrics.backpressure.set(1)
            log.info(
                "backpressure: %d batches in flight, %d anomaly rows for the sink; waiting",
                len(in_flight),
                sinker.backlog if sinker is not None else 0,
            )
        msg = consumer.poll(0.02)  # rebalances and the group; a message fetched before is held
        if msg is not None:
            in_flight.held.append(msg)
        sink_full = sinker is not None and sinker.backlog >= runtime.config.sink_max_backlog_rows
        if sink_full and not any(b.checkpoint for b in (*in_flight.pending, *in_flight.durable)):
            self.prepare_checkpoint()
        if in_flight.pending and not self.attempt(self.mode.send, in_flight.pending[0]):
            return
        self.attempt(self.mode.advance, False)

    def unthrottle(self) -> None:
        consumer = self.runtime.consumer
        consumer.resume(consumer.assignment())
        self.throttled = False
        self.runtime.metrics.backpressure.set(0)
        log.info("backpressure: room again; consuming")

    # ----------------------------------------------------------------- stalls

    def _pause(self, why: str) -> None:
        if self.paused:
            return
        runtime = self.runtime
        consumer = runtime.consumer
        consumer.pause(consumer.assignment())
        self.paused = True
        runtime.stats.pauses += 1
        runtime.metrics.paused.set(1)
        runtime.health.ready = False
        log.warning("pausing consumption; the batch is kept and retried: %s", why)

    def _resume(self) -> None:
        runtime = self.runtime
        consumer = runtime.consumer
        if not self.throttled:  # else they stay paused until there is room
            consumer.resume(consumer.assignment())
        self.paused = False
        self._retries = 0
        runtime.metrics.paused.set(0)
        runtime.health.ready = True
        log.info("resumed consumption")

    def retry_paused(self, until: float | None = None) -> None:
        """Serve rebalances while paused; retry the stalled steps when the backoff allows."""
        runtime = self.runtime
        in_flight = runtime.in_flight
        self._retries += 1
        wait = max(runtime.backoff.delay(min(self._retries, 30)), self._breaker_wait())
        deadline = time.monotonic() + wait
        if until is not None:
            deadline = min(deadline, until)
        consumer = runtime.consumer
        while time.monotonic() < deadline and not (runtime.stop.is_set() and until is None):
            self.membership.turn()
            # Paused partitions fetch nothing new; anything already buffered is held, in order.
            msg = consumer.poll(min(0.1, max(0.0, deadline - time.monotonic())))
            if msg is not None:
                in_flight.held.append(msg)
        while in_flight.pending and in_flight.pending[0].empty:
            in_flight.pending.popleft()  # everything in it was revoked meanwhile
        try:
            self.mode.advance(True)
            for batch in in_flight.pending:
                batch.forget_failed_scoring()  # failed during the outage: score it again
            while in_flight.pending:
                self.mode.send(in_flight.pending[0])
        except STALLS as exc:
            log.debug("still stalled (%s): %s", self._count_stall(exc), exc)
            return
        self._resume()

    def _breaker_wait(self) -> float:
        scorer = self.runtime.scorer
        waits = [
            client.breaker.retry_in()
            for client in (getattr(scorer, "detector", None), getattr(scorer, "risk", None))
            if client is not None and hasattr(client, "breaker")
        ]
        return max(waits, default=0.0)
