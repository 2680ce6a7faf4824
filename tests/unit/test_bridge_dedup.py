"""One transaction, one score: a repeated transaction id is caught within the window, across
batches, restarts and rebalances (it travels in the changelog), and never counted twice."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from confluent_kafka import Message

from finrisk.errors import FinriskError
from finrisk.serving.bridge.batch import prepare
from finrisk.serving.bridge.dead_letters import DUPLICATE
from finrisk.serving.bridge.dedup import ALWAYS_KEPT, RecentIds
from finrisk.serving.bridge.messages import MessageParser
from finrisk.serving.bridge.producer import synthetic_records
from finrisk.serving.bridge.state import StateStore

HOUR = 3_600_000_000_000


def _ns(*hours: float) -> np.ndarray:
    return np.array([round(h * HOUR) for h in hours], dtype=np.int64)


def test_a_repeat_is_caught_in_the_same_batch_and_in_a_later_one() -> None:
    recent = RecentIds(24 * HOUR, 1_000)
    assert recent.repeats(["u1", "u1", "u2", "u1"], ["a", "b", "a", "a"], _ns(0, 1, 1, 2)) == [3]
    assert recent.repeats(["u2", "u1", "u1"], ["a", "c", "b"], _ns(3, 3, 3)) == [0, 2]
    assert len(recent) == 4  # u1: a, b, c; u2: a


def test_ids_older_than_the_window_behind_the_users_latest_are_forgotten() -> None:
    recent = RecentIds(24 * HOUR, 1_000)
    few = [f"t{i}" for i in range(ALWAYS_KEPT)]
    recent.repeats(["u1"] * (ALWAYS_KEPT + 1), ["old", *few], _ns(0, *[10] * ALWAYS_KEPT))
    recent.repeats(["u1"], ["later"], _ns(30))  # "old" is now 30 h behind
    assert recent.repeats(["u1", "u1"], ["old", "t0"], _ns(31, 31)) == [1]


def test_a_users_last_few_ids_are_kept_whatever_their_age() -> None:
    recent = RecentIds(24 * HOUR, 1_000)
    recent.repeats(["u1", "u1"], ["a", "b"], _ns(0, 100))
    assert recent.repeats(["u1"], ["a"], _ns(101)) == [0]


def test_at_most_max_per_user_ids_are_kept_the_oldest_go_first() -> None:
    recent = RecentIds(24 * HOUR, 3)
    recent.repeats(["u1"] * 5, ["a", "b", "c", "d", "e"], _ns(0, 0, 0, 0, 0))
    assert len(recent) == 3
    assert recent.repeats(["u1", "u1"], ["e", "a"], _ns(0, 0)) == [0]


def test_no_window_no_check() -> None:
    recent = RecentIds(0, 1_000)
    assert recent.repeats(["u1", "u1"], ["a", "a"], _ns(0, 0)) == []
    assert len(recent) == 0


def test_ids_round_trip_and_unreadable_ones_are_named() -> None:
    recent = RecentIds(24 * HOUR, 1_000)
    recent.repeats(["u1", "u1"], ["a", 'quote"and\\n'], _ns(0, 1))
    other = RecentIds(24 * HOUR, 1_000)
    other.restore("u1", recent.encode("u1"))
    assert other.repeats(["u1", "u1", "u1"], ["a", 'quote"and\\n', "z"], _ns(2, 2, 2)) == [0, 1]
    with pytest.raises(FinriskError, match="recent transaction ids of user 'u1'"):
        other.restore("u1", b"[[1]]")


def _messages(records: list[tuple[bytes, bytes]]) -> list[Message]:
    return [
        Message(topic="tx", partition=0, offset=i, key=k, value=v, timestamp=(1, 1000 + i))
        for i, (k, v) in enumerate(records)
    ]


@pytest.fixture(scope="module")
def records() -> list[tuple[bytes, bytes]]:
    return synthetic_records(300, users=10, days=20, seed=4)


def test_a_repeat_is_dead_lettered_and_the_features_are_those_without_it(
    records: list[tuple[bytes, bytes]],
) -> None:
    clean = prepare(_messages(records), MessageParser(), StateStore(), checkpoint=True)
    # A producer's retry of transaction 100 right after it, and of 150 much later.
    with_repeats = [*records[:101], records[100], *records[101:250], records[150], *records[250:]]
    batch = prepare(_messages(with_repeats), MessageParser(), StateStore(), checkpoint=True)
    assert [(kind, msg.offset()) for msg, kind, _ in batch.dead] == [
        (DUPLICATE, 101),
        (DUPLICATE, 251),
    ]
    tx_id = orjson.loads(records[100][1])["transaction_id"]
    assert f"transaction_id {tx_id!r}" in batch.dead[0][2]
    np.testing.assert_array_equal(batch.tx_matrix, clean.tx_matrix)
    np.testing.assert_array_equal(batch.user_matrix, clean.user_matrix)


def test_a_repeat_after_a_restore_from_the_changelog_is_still_caught(
    records: list[tuple[bytes, bytes]],
) -> None:
    first = StateStore()
    prepare(_messages(records[:200]), MessageParser(), first, checkpoint=False)
    restored = StateStore()
    for record in first.changelog():
        restored.restore(record.key, record.value, record.partition, record.headers)
    later = _messages([*records[:200], records[199], *records[200:]])[200:]
    batch = prepare(later, MessageParser(), restored, checkpoint=False)
    assert [kind for _, kind, _ in batch.dead] == [DUPLICATE]
    assert len(batch.rows) == 100


def test_a_changelog_record_written_before_ids_were_kept_still_restores(
    records: list[tuple[bytes, bytes]],
) -> None:
    store = StateStore()
    prepare(_messages(records[:50]), MessageParser(), store, checkpoint=False)
    record = store.changelog()[0]
    user = record.key.decode()
    bare = record.value.partition(b"\n")[2] if record.value else b""  # the features alone
    old = StateStore()
    old.restore(record.key, bare, record.partition, record.headers)
    assert old.features.user_values(user) == store.features.user_values(user)
    assert len(old.recent) == 0
