"""Backpressure: at a bound (batches in flight, the sink's backlog) the bridge takes nothing
new, still serving the group, and consumes again by itself once there is room."""

from __future__ import annotations

from confluent_kafka import TopicPartition

from finrisk.serving.bridge.loop import Bridge


class _Pausable:
    def __init__(self) -> None:
        self.paused: list[int] = []

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("tx", 0), TopicPartition("tx", 1)]

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused = [tp.partition for tp in partitions]

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused = []

    def poll(self, timeout: float) -> None:
        return None


def test_at_the_in_flight_bound_consumption_pauses_and_resumes_by_itself(bridge: Bridge) -> None:
    consumer = _Pausable()
    bridge.runtime.consumer_ = consumer  # type: ignore[assignment]
    bridge.mode.advance = lambda block: None  # type: ignore[method-assign]
    flow, durable = bridge.flow, bridge.runtime.in_flight.durable
    bound = bridge.config.max_in_flight_batches
    durable.extend([object()] * bound)  # type: ignore[list-item]
    assert flow.over_bound()
    flow.wait_for_room()
    assert consumer.paused == [0, 1] and bridge.metrics.backpressure._value.get() == 1
    durable.clear()
    assert not flow.over_bound()
    flow.unthrottle()
    assert consumer.paused == [] and bridge.metrics.backpressure._value.get() == 0
