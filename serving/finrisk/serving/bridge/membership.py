"""Whether this member still belongs to the group, and the group's answers to its commits.

A gap of half the session timeout between two turns of the loop may have let the group expire
this member (a stopped or starved process sends no heartbeats either) and give its partitions
to another. Until the group confirms the member, no state is written: a changelog record
written then could later be restored over the new owner's newer state.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from finrisk.serving.bridge.runtime import Runtime

log = logging.getLogger("finrisk.bridge")

# How often, at most, to ask the group whether this member survived a stall.
PROBE_INTERVAL_S = 0.5


class Membership:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.stall_s = runtime.config.session_timeout_ms / 2000
        self.last_turn = time.monotonic()
        self.unsure = False
        self.next_probe = 0.0

    def turn(self) -> None:
        """One turn of the loop: liveness, and whether the loop stalled since the last."""
        self.last_turn = self._note_stall()
        self.runtime.health.tick()

    def _note_stall(self) -> float:
        """Now; the membership unsure if the loop has not turned for a stall's length."""
        now = time.monotonic()
        if now - self.last_turn > self.stall_s:
            self.unsure = True
        return now

    def may_write_state(self) -> bool:
        """Whether a changelog may be written now. librdkafka tells of a loss (the rebalance's
        on_lost) only once it hears back from the coordinator, and a resumed loop can reach
        this point before that: after a stall, a synchronous commit of offsets already
        committed asks the coordinator first (it refuses a member it expired)."""
        now = self._note_stall()
        if not self.unsure:
            return True
        if now < self.next_probe:
            return False
        self.next_probe = now + PROBE_INTERVAL_S
        runtime = self.runtime
        consumer = runtime.consumer
        topic = runtime.config.input_topic
        try:
            assignment = consumer.assignment()
            committed = consumer.committed(assignment, timeout=10) if assignment else []
            offsets = runtime.commits.latest({tp.partition: tp.offset for tp in committed})
            if offsets:  # else nothing is committed yet, and nothing can be asked with
                consumer.commit(
                    offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()],
                    asynchronous=False,
                )
        except KafkaException as exc:
            runtime.metrics.errors.labels("membership").inc()
            log.warning("writing no state until the group confirms this member: %s", exc)
            return False
        log.info("the group confirmed this member after a stall")
        self.unsure = False
        return True

    def on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """The group's answer to a commit (librdkafka's on_commit, and synchronous commits')."""
        if error is not None and error.code() == KafkaError._NO_OFFSET:
            return
        refused = partitions if error is not None else [tp for tp in partitions if tp.error]
        if not refused:
            return
        # Outputs and changelog are durable: a replay is skipped by the state, so a lost commit
        # costs time, not correctness; the next checkpoint (a quiet one if nothing comes)
        # commits it again.
        self.runtime.metrics.errors.labels("commit").inc()
        log.warning(
            "offset commit of partitions %s failed: %s",
            sorted(tp.partition for tp in refused),
            error or refused[0].error,
        )
        if self.runtime.commits.refused(refused):
            self.runtime.checkpoints.owed = True
