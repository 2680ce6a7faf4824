"""Feature state through the changelog: restore after a crash gives the scores of no crash."""

from __future__ import annotations

import zlib

import pytest

from finrisk.errors import FinriskError
from finrisk.serving.bridge.messages import MessageParser, Transaction
from finrisk.serving.bridge.producer import synthetic_records
from finrisk.serving.bridge.state import (
    SOURCE_OFFSET_HEADER,
    ChangelogRecord,
    StateStore,
)
from finrisk.transactions import transaction_columns

PARTITIONS = 3
Stream = list[tuple[int, int, Transaction]]  # (partition, offset, tx) in arrival order
Features = dict[str, tuple[tuple[float, ...], tuple[float, ...]]]


@pytest.fixture(scope="module")
def stream() -> Stream:
    parser = MessageParser()
    offsets = [0] * PARTITIONS
    out: Stream = []
    for key, value in synthetic_records(3_000, users=40, days=40, seed=5):
        partition = zlib.crc32(key) % PARTITIONS
        out.append((partition, offsets[partition], parser.parse(value)))
        offsets[partition] += 1
    return out


def _features(store: StateStore, stream: Stream) -> Features:
    """Each new transaction's features and its user's, the stream fed as one batch."""
    new = [(p, o, tx) for p, o, tx in stream if not store.applied(tx.user_id, p, o)]
    tx_matrix, user_matrix = store.apply(
        transaction_columns([tx.fields for _, _, tx in new]), [(p, o) for p, o, _ in new]
    )
    return {
        tx.transaction_id: (tuple(tx_matrix[i].tolist()), tuple(user_matrix[i].tolist()))
        for i, (_, _, tx) in enumerate(new)
    }


def _write_changelog(store: StateStore, log: list[ChangelogRecord]) -> None:
    log.extend(store.changelog())
    store.mark_clean()


def _restore(log: list[ChangelogRecord]) -> StateStore:
    store = StateStore()
    for record in log:
        store.restore(record.key, record.value, record.partition, record.headers)
    return store


def test_restore_after_a_crash_between_changelog_and_commit_equals_no_crash(
    stream: Stream,
) -> None:
    expected = _features(StateStore(), stream)

    batch = 250
    crashed = StateStore()
    log: list[ChangelogRecord] = []
    emitted: Features = {}
    committed = 0
    crash_at = 1_750  # batches 0..6 fully done; batch 7 wrote its changelog, died before commit
    for start in range(0, crash_at, batch):
        emitted.update(_features(crashed, stream[start : start + batch]))
        _write_changelog(crashed, log)
        if start + batch < crash_at:
            committed = start + batch

    restarted = _restore(log)
    replay = stream[committed:]
    replayed = _features(restarted, replay)

    # The uncommitted batch's transactions are in the restored state already: skipped, so no
    # duplicates, and every later transaction gets exactly the uninterrupted features.
    assert set(emitted) & set(replayed) == set()
    assert set(emitted) | set(replayed) == set(expected)
    assert {**emitted, **replayed} == expected


def test_restore_after_a_crash_before_the_changelog_replays_the_batch_identically(
    stream: Stream,
) -> None:
    expected = _features(StateStore(), stream)
    crashed = StateStore()
    log: list[ChangelogRecord] = []
    _features(crashed, stream[:1_000])
    _write_changelog(crashed, log)
    _features(crashed, stream[1_000:1_300])  # died before its changelog was written

    restarted = _restore(log)
    replayed = _features(restarted, stream[1_000:])
    assert set(replayed) == {tx.transaction_id for _, _, tx in stream[1_000:]}
    assert all(replayed[tx_id] == expected[tx_id] for tx_id in replayed)


def test_changelog_has_one_record_per_touched_user_with_its_last_offset(stream: Stream) -> None:
    store = StateStore()
    part = stream[:200]
    _features(store, part)
    records = {r.key.decode(): r for r in store.changelog()}
    last = {}
    for partition, offset, tx in part:
        last[tx.user_id] = (partition, offset)
    assert {u: (r.partition, r.source_offset) for u, r in records.items()} == last
    for record in records.values():
        assert dict(record.headers)[SOURCE_OFFSET_HEADER] == str(record.source_offset).encode()
    store.mark_clean()
    assert store.changelog() == []


def test_revoked_partitions_drop_their_users_only(stream: Stream) -> None:
    store = StateStore()
    _features(store, stream[:500])
    users_by_partition: dict[int, set[str]] = {}
    for partition, _, tx in stream[:500]:
        users_by_partition.setdefault(partition, set()).add(tx.user_id)
    dropped = store.drop_partitions({1})
    assert dropped == len(users_by_partition[1])
    assert len(store) == sum(len(u) for p, u in users_by_partition.items() if p != 1)
    assert all(r.partition != 1 for r in store.changelog())


def test_a_tombstone_forgets_the_user_and_an_offsetless_record_is_refused(stream: Stream) -> None:
    store = StateStore()
    _features(store, stream[:50])
    record = store.changelog()[0]
    store.restore(record.key, None, record.partition, [])
    assert not store.applied(record.key.decode(), record.partition, 0)
    with pytest.raises(FinriskError, match=SOURCE_OFFSET_HEADER):
        store.restore(record.key, record.value, record.partition, [])


def test_may_include_is_false_only_when_no_state_can_include_a_position(stream: Stream) -> None:
    store = StateStore()
    assert not store.may_include([(0, 0)])
    _features(store, stream[:500])
    log: list[ChangelogRecord] = []
    _write_changelog(store, log)
    last = {p: o for p, o, _ in stream[:500]}
    later = [(p, o) for p, o, _ in stream[500:600]]
    assert not store.may_include(later)  # what comes next is new to every user
    restored = _restore(log)
    assert not restored.may_include(later)
    # Any position up to a partition's highest offset in the state may be in it, and is
    # exactly what `applied` is then asked about.
    for partition, offset in last.items():
        assert restored.may_include([*later, (partition, offset)])
        assert not restored.may_include([(partition, offset + 1)])
    in_state = [(p, o) for p, o, tx in stream[:500] if restored.applied(tx.user_id, p, o)]
    assert in_state and all(restored.may_include([at]) for at in in_state)
    restored.drop_partitions({0})
    assert not restored.may_include([(0, last[0])])
    assert restored.may_include([(1, last[1])])


def test_a_stale_record_written_after_a_newer_one_does_not_replace_it(stream: Stream) -> None:
    """A member that lost its partitions in a stall may write a user's record after the new
    owner's: the state that includes more of the user's stream wins, in either order."""
    owner = StateStore()
    _features(owner, stream[:1_000])
    stale = owner.changelog()
    owner.mark_clean()
    _features(owner, stream[1_000:2_000])
    newer = owner.changelog()
    assert {r.key for r in stale} & {r.key for r in newer}  # users in both
    latest = {r.key: r for r in stale} | {r.key: r for r in newer}
    users = [key.decode() for key in latest]
    expected = _restore(list(latest.values()))
    for log in (stale + newer, newer + stale):
        restored = _restore(log)
        for user in users:
            assert restored.features.user_values(user) == expected.features.user_values(user)
            record = latest[user.encode()]
            assert restored.applied(user, record.partition, record.source_offset)
            assert not restored.applied(user, record.partition, record.source_offset + 1)
