"""Input offsets between a durable batch and a commit Kafka accepted: none left behind."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from finrisk.serving.bridge.commits import CommitLedger, commit
from finrisk.serving.bridge.loop import Bridge


def _offsets(committed: dict[int, int]) -> list[TopicPartition]:
    return [TopicPartition("tx", p, o) for p, o in committed.items()]


def test_durable_offsets_are_due_once_at_their_highest() -> None:
    ledger = CommitLedger()
    ledger.add({0: 5, 1: 3})
    ledger.add({0: 9})
    assert ledger.take() == {0: 9, 1: 3}
    assert ledger.take() == {}


def test_a_refused_commit_is_due_again() -> None:
    ledger = CommitLedger()
    ledger.add({3: 100, 4: 80})
    asked = ledger.take()
    assert ledger.refused(_offsets(asked))
    assert ledger.take() == {3: 100, 4: 80}


def test_a_refused_commit_superseded_by_a_later_one_is_not_due_again() -> None:
    ledger = CommitLedger()
    ledger.add({3: 100})
    first = ledger.take()
    ledger.add({3: 150, 4: 10})
    ledger.take()
    # The first commit's refusal arrives after the second was asked: committing 100 again
    # would move the group back behind 150.
    assert not ledger.refused(_offsets(first))
    assert ledger.take() == {}


def test_revoked_partitions_are_neither_due_nor_due_again() -> None:
    ledger = CommitLedger()
    ledger.add({3: 100})
    asked = ledger.take()
    ledger.add({3: 120, 5: 7})
    ledger.drop({3})
    assert not ledger.refused(_offsets(asked))
    assert ledger.take() == {5: 7}


def test_the_bridge_commits_a_refused_commit_at_its_next_checkpoint(bridge: Bridge) -> None:
    commits, checkpoints = bridge.runtime.commits, bridge.runtime.checkpoints
    commits.add({3: 100, 4: 80})
    asked = commits.take()
    # What librdkafka hands on_commit when a rebalance made the commit's generation stale.
    bridge.membership.on_commit(KafkaError(KafkaError.ILLEGAL_GENERATION), _offsets(asked))
    assert checkpoints.owed  # so a quiet checkpoint follows, even if nothing comes
    assert commits.take() == {3: 100, 4: 80}
    # Accepted: nothing is due again.
    commits.add({3: 120})
    checkpoints.owed = False
    bridge.membership.on_commit(None, _offsets(commits.take()))
    assert not checkpoints.owed
    assert commits.take() == {}


class _RefusingConsumer:
    """Stands in for a consumer whose synchronous commit librdkafka refuses at once (raising, as
    confluent-kafka does): librdkafka does not call on_commit for it."""

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        raise KafkaException(KafkaError(KafkaError.REBALANCE_IN_PROGRESS))


def test_a_refused_synchronous_commit_is_answered_like_an_asynchronous_one(bridge: Bridge) -> None:
    commits, checkpoints = bridge.runtime.commits, bridge.runtime.checkpoints
    commits.add({2: 40})
    consumer = _RefusingConsumer()
    commit(consumer, "tx", commits.take(), wait=True, answer=bridge.membership.on_commit)  # type: ignore[arg-type]
    assert checkpoints.owed
    assert commits.take() == {2: 40}


def test_latest_is_the_later_of_committed_and_asked_per_partition() -> None:
    ledger = CommitLedger()
    ledger.add({1: 50, 2: 10})
    ledger.take()
    ledger.add({1: 70})  # due, not asked: not durable in the changelog yet, never offered
    assert ledger.latest({0: 5, 1: 40, 2: 30, 3: -1001}) == {0: 5, 1: 50, 2: 30}
