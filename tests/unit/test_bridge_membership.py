"""A member the group expired (a stall past the session timeout) writes no state and commits
nothing for the partitions it lost: a changelog record written then could be restored over the
next owner's newer state."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from finrisk.serving.bridge.loop import Bridge
from finrisk.serving.bridge.messages import MessageParser
from finrisk.serving.bridge.producer import synthetic_records


class _Group:
    """Stands in for the consumer's view of the group: the coordinator refuses commits of an
    expired member until it is told otherwise."""

    def __init__(self, expired: bool) -> None:
        self.expired = expired
        self.commits: list[list[TopicPartition]] = []

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("tx", 0), TopicPartition("tx", 1)]

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition("tx", 0, 40), TopicPartition("tx", 1, -1001)]

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert not asynchronous
        self.commits.append(offsets)
        if self.expired:
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_MEMBER_ID))


def test_lost_partitions_drop_their_work_without_writing_or_committing(bridge: Bridge) -> None:
    advanced: list[bool] = []
    bridge.mode.advance = lambda block: advanced.append(block)  # type: ignore[method-assign]
    parsed = MessageParser().parse_batch(
        [v for _, v in synthetic_records(30, users=5, days=5, seed=1)]
    )
    n = parsed.columns.size
    bridge.state.apply(parsed.columns, [(i % 2, i) for i in range(n)])
    bridge.runtime.assigned = {0, 1}
    bridge.rebalance.on_lost(None, [TopicPartition("tx", 1)])  # type: ignore[arg-type]
    assert advanced == []  # nothing sent, no changelog, no commit
    assert bridge.runtime.assigned == {0}
    assert all(record.partition == 0 for record in bridge.state.changelog())
    bridge.rebalance.on_revoke(None, [TopicPartition("tx", 0)])  # type: ignore[arg-type]
    assert advanced == [True]  # a revocation makes what was sent durable first


def test_after_a_stall_no_state_is_written_until_the_group_confirms_the_member(
    bridge: Bridge,
) -> None:
    group = _Group(expired=True)
    bridge.runtime.consumer_ = group  # type: ignore[assignment]
    membership = bridge.membership
    assert membership.may_write_state()  # no stall: no question asked
    assert group.commits == []
    membership.last_turn -= 60  # the process was stopped for a minute
    membership.turn()
    assert not membership.may_write_state()
    # The probe recommits what is committed already: it can move the group neither way.
    assert [(tp.partition, tp.offset) for tp in group.commits[0]] == [(0, 40)]
    assert not membership.may_write_state()  # asked again no sooner than the probe interval
    assert len(group.commits) == 1
    group.expired = False  # rejoined (librdkafka served the loss and a new assignment)
    membership.next_probe = 0.0
    assert membership.may_write_state()
    assert membership.may_write_state() and len(group.commits) == 2  # settled: asked once


class _Assignable:
    """Stands in for the consumer's assignment calls, remembering what is paused."""

    def __init__(self) -> None:
        self.paused: set[int] = set()

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {tp.partition for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {tp.partition for tp in partitions}


def test_an_assignment_sets_each_partitions_pause_afresh(bridge: Bridge) -> None:
    """librdkafka keeps a partition paused across its loss and a new assignment; a partition
    paused in a stall, lost, then assigned again must consume again once nothing holds it."""
    consumer = _Assignable()
    bridge.runtime.restore = lambda partitions: 0  # type: ignore[method-assign]
    partitions = [TopicPartition("tx", 0), TopicPartition("tx", 1)]
    consumer.paused = {0, 1}  # paused in the stall, before the loss
    bridge.rebalance.on_assign(consumer, partitions)  # type: ignore[arg-type]
    assert consumer.paused == set()
    bridge.flow.paused = True  # a stall now: what is assigned waits with the rest
    bridge.rebalance.on_assign(consumer, [TopicPartition("tx", 2)])  # type: ignore[arg-type]
    assert consumer.paused == {2}
