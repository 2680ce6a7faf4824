"""Preparing a micro-batch: parse, skip replays, features, saved states; dropping revoked work."""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np
import orjson
import pytest
from confluent_kafka import Message

from finrisk.features import TRANSACTION_FEATURES, USER_FEATURES, OnlineFeatures
from finrisk.serving.bridge.batch import prepare
from finrisk.serving.bridge.dead_letters import TOO_LARGE
from finrisk.serving.bridge.messages import SCHEMA_INVALID, UNPARSEABLE, MessageParser
from finrisk.serving.bridge.outputs import Score
from finrisk.serving.bridge.producer import synthetic_records
from finrisk.serving.bridge.state import StateStore


def _messages(records: list[tuple[bytes, bytes | None]], partitions: int = 2) -> list[Message]:
    offsets = [0] * partitions
    out = []
    for i, (key, value) in enumerate(records):
        p = sum(key) % partitions
        out.append(
            Message(
                topic="tx",
                partition=p,
                offset=offsets[p],
                key=key,
                value=value,
                timestamp=(1, 1000 + i),
            )
        )
        offsets[p] += 1
    return out


@pytest.fixture(scope="module")
def records() -> list[tuple[bytes, bytes | None]]:
    return list(synthetic_records(400, users=20, days=20, seed=3))


def test_prepare_computes_features_in_order_and_dead_letters_bad_messages(
    records: list[tuple[bytes, bytes | None]],
) -> None:
    stream = [*records[:100], (b"u-x", b"nope"), (b"u-x", b'{"amount": 1}'), *records[100:200]]
    messages = _messages(stream)
    batch = prepare(messages, MessageParser(), StateStore(), checkpoint=True)
    assert len(batch.rows) == 200
    assert [(kind) for _, kind, _ in batch.dead] == [UNPARSEABLE, SCHEMA_INVALID]
    assert batch.tx_matrix.shape == (200, len(TRANSACTION_FEATURES))
    assert batch.user_matrix.shape == (200, len(USER_FEATURES))
    # The values a plain OnlineFeatures gives when fed the good messages in order, one at a
    # time: the same bits.
    reference = OnlineFeatures()
    good = [MessageParser().parse(value) for key, value in stream if key != b"u-x"]
    for i, tx in enumerate(good):
        expected_tx, expected_user = reference.observe([tx.fields])
        np.testing.assert_array_equal(batch.tx_matrix[i], expected_tx[0])
        np.testing.assert_array_equal(batch.user_matrix[i], expected_user[0])
    # Offsets to commit cover every message, bad ones included.
    last = {}
    for msg in messages:
        last[msg.partition()] = msg.offset() + 1
    assert batch.next_offsets == last
    # One changelog record per user touched, taken before any later batch changes them.
    assert {r.key for r in batch.changelog} == {k for k, _ in stream if k != b"u-x"}


def test_messages_already_in_the_restored_state_are_skipped(
    records: list[tuple[bytes, bytes | None]],
) -> None:
    messages = _messages(records[:300])
    state = StateStore()
    first = prepare(messages[:200], MessageParser(), state, checkpoint=True)
    restored = StateStore()
    for record in first.changelog:
        restored.restore(record.key, record.value, record.partition, record.headers)
    replay = prepare(messages[100:300], MessageParser(), restored, checkpoint=True)
    assert replay.skipped == 100
    assert len(replay.rows) == 100
    again = prepare(messages[200:300], MessageParser(), state, checkpoint=True)
    assert (replay.tx_matrix == again.tx_matrix).all()


def test_only_a_checkpoint_writes_the_changelog_of_everything_since_the_last(
    records: list[tuple[bytes, bytes | None]],
) -> None:
    messages = _messages(records[:300])
    state = StateStore()
    between = [
        prepare(messages[i : i + 100], MessageParser(), state, checkpoint=False) for i in (0, 100)
    ]
    assert all(b.changelog == [] and not b.checkpoint for b in between)
    checkpoint = prepare(messages[200:], MessageParser(), state, checkpoint=True)
    # Every user changed in the three batches, at their last offset.
    last = {m.key(): (m.partition(), m.offset()) for m in messages}
    assert {r.key: (r.partition, r.source_offset) for r in checkpoint.changelog} == last
    # Restored from it, the state has all 300 messages: a replay of any of them is skipped.
    restored = StateStore()
    for record in checkpoint.changelog:
        restored.restore(record.key, record.value, record.partition, record.headers)
    assert prepare(messages, MessageParser(), restored, checkpoint=False).skipped == 300


def _score() -> Score:
    return Score(0.1, False, 0.5, 0.2, "LOW", [], "1", "1")


def test_dropping_revoked_partitions_keeps_the_rest_aligned(
    records: list[tuple[bytes, bytes | None]],
) -> None:
    messages = _messages([*records[:60], (b"u-y", b"bad")])
    batch = prepare(messages, MessageParser(), StateStore(), checkpoint=True)
    future: Future[list[Score]] = Future()
    future.set_result([_score() for _ in batch.rows])
    batch.future = future
    kept_rows = [(m.partition(), m.offset()) for m, _ in batch.rows if m.partition() != 1]
    kept_stamps = [m.timestamp()[1] for m, _ in batch.rows if m.partition() != 1]
    batch.drop_partitions({1})
    assert [(m.partition(), m.offset()) for m, _ in batch.rows] == kept_rows == batch.positions
    assert batch.stamps_ms.tolist() == kept_stamps
    assert batch.latencies_ms == [float(batch.scored_at_ms - stamp) for stamp in kept_stamps]
    assert batch.scores is not None and len(batch.scores) == len(kept_rows)
    assert len(batch.latencies_ms) == len(kept_rows) == len(batch.tx_matrix)
    assert set(batch.next_offsets) <= {0}
    assert all(r.partition != 1 for r in batch.changelog)
    assert all(msg.partition() != 1 for msg, _, _ in batch.dead)


def test_a_failed_scoring_is_forgotten_so_the_retry_scores_again(
    records: list[tuple[bytes, bytes | None]],
) -> None:
    messages = _messages(records[:10])
    # A message without a timestamp: its latency is unknown, counted as 0.
    no_stamp = messages[-1]
    messages[-1] = Message(
        topic="tx",
        partition=no_stamp.partition(),
        offset=no_stamp.offset(),
        key=no_stamp.key(),
        value=no_stamp.value(),
        timestamp=(0, -1),
    )
    batch = prepare(messages, MessageParser(), StateStore(), checkpoint=True)
    future: Future[list[Score]] = Future()
    future.set_exception(RuntimeError("endpoint down"))
    batch.future = future
    batch.forget_failed_scoring()
    assert batch.future is None and batch.scores is None
    done: Future[list[Score]] = Future()
    done.set_result([_score()] * 10)
    batch.future = done
    batch.forget_failed_scoring()
    assert batch.future is done
    batch.settle_future()
    assert batch.scores is not None and len(batch.scores) == 10
    expected = [float(batch.scored_at_ms - 1000 - i) for i in range(9)] + [0.0]
    assert batch.latencies_ms == expected


def test_dead_letter_values_are_kept_byte_for_byte(
    records: list[tuple[bytes, bytes | None]],
) -> None:
    raw = orjson.dumps({"transaction_id": "t", "amount": "lots"})
    batch = prepare(
        _messages([(b"u", raw), (b"u", None)]), MessageParser(), StateStore(), checkpoint=True
    )
    assert [msg.value() for msg, _, _ in batch.dead] == [raw, None]
    assert "'amount' must be a number" in batch.dead[0][2]


def test_messages_over_the_size_limit_are_dead_lettered_unread_and_their_offsets_advance(
    records: list[tuple[bytes, bytes | None]],
) -> None:
    big_value = (b"u-big", b"{" + b" " * 5_000 + b"}")
    big_key = (b"k" * 5_000, records[0][1])
    messages = _messages([*records[:50], big_value, big_key, *records[50:100]])
    batch = prepare(
        messages, MessageParser(), StateStore(), checkpoint=False, max_message_bytes=4_096
    )
    assert len(batch.rows) == 100
    assert [kind for _, kind, _ in batch.dead] == [TOO_LARGE, TOO_LARGE]
    assert "over max_message_bytes 4096" in batch.dead[0][2]
    # Every message is handled: the offsets to commit pass the dead letters too.
    for msg in messages:
        assert batch.next_offsets[msg.partition()] > msg.offset()
