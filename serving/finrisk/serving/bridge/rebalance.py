"""The consumer group's rebalance callbacks (librdkafka runs them inside the loop's consume
calls): partitions assigned, revoked, or lost."""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, TopicPartition

from finrisk.serving.bridge.delivery_mode import DeliveryMode
from finrisk.serving.bridge.flow_control import STALLS, FlowControl
from finrisk.serving.bridge.runtime import Runtime

log = logging.getLogger("finrisk.bridge")


class Rebalance:
    def __init__(self, runtime: Runtime, mode: DeliveryMode, flow: FlowControl) -> None:
        self.runtime = runtime
        self.mode = mode
        self.flow = flow

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The partitions' users restored from the changelog before any message is read."""
        numbers = [tp.partition for tp in partitions]
        records = self.runtime.restore(numbers)
        consumer.incremental_assign(partitions)
        # librdkafka keeps a partition's pause across a loss and a new assignment: one paused
        # in a stall, lost, then assigned again stayed paused for good (the broker SIGKILL
        # test, exactly once, hung so 1 time in 4). Each assignment sets it afresh.
        if self.flow.holding:
            consumer.pause(partitions)
        else:
            consumer.resume(partitions)
        self.runtime.set_assigned(self.runtime.assigned | set(numbers))
        log.info("assigned partitions %s; restored %d state records", numbers, records)

    def on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """What was sent gets its changelog and commit now, before the next owner restores."""
        try:
            self.mode.advance(True)
        except STALLS as exc:
            log.warning("revocation: outputs not durable (%s); the next owner replays them", exc)
        self.runtime.forget({tp.partition for tp in partitions}, "revoked")
        self.mode.partitions_gone()

    def on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The group expired this member (it stalled past the session timeout): another owns
        these partitions already. Nothing of theirs is written or committed any more: a
        changelog record written now could be restored over the new owner's newer state."""
        log.warning(
            "lost partitions %s (this member was expired from the group); dropping their work",
            sorted(tp.partition for tp in partitions),
        )
        self.runtime.forget({tp.partition for tp in partitions}, "lost")
        self.mode.partitions_gone()
