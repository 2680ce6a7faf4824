"""The online path gives the batch path's features, on a realistic stream of 10k+ transactions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finrisk.features import (
    TRANSACTION_FEATURES,
    USER_FEATURES,
    OnlineFeatures,
    transaction_features,
    user_features,
)
from finrisk.synthetic import generate

RTOL = 1e-9
ATOL = 1e-9


@pytest.fixture(scope="module")
def stream() -> pd.DataFrame:
    transactions, _, _ = generate(users=60, days=75, seed=7)
    frame = transactions.copy()
    # Ties in timestamp within a user: give every 50th transaction its predecessor's stamp
    # (same user), so that the transaction_id tie-break is exercised.
    frame = frame.sort_values(["user_id", "timestamp", "transaction_id"]).reset_index(drop=True)
    same_user = frame["user_id"].eq(frame["user_id"].shift())
    tie = same_user & (np.arange(len(frame)) % 50 == 0)
    frame.loc[tie, "timestamp"] = frame["timestamp"].shift()[tie]
    assert tie.sum() > 50
    # Batch accepts any row order; shuffle to prove it.
    return frame.sample(frac=1.0, random_state=3)


def _streaming_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Interleaved users in time order, each user's rows in canonical order."""
    return frame.sort_values(["timestamp", "user_id", "transaction_id"])


def _epoch_ms_records(frame: pd.DataFrame) -> list[dict[str, object]]:
    wire = frame.copy()
    wire["timestamp"] = wire["timestamp"].dt.as_unit("ns").array.asi8 // 1_000_000
    return wire.to_dict("records")


def _run_online(
    records: list[dict[str, object]], online: OnlineFeatures, size: int = 250
) -> np.ndarray:
    """Transaction features of the records, fed in micro-batches of `size` as the bridge does."""
    return _run_micro_batches(records, size, online)[0]


def test_stream_is_large_enough(stream: pd.DataFrame) -> None:
    assert len(stream) >= 10_000


def test_online_transaction_features_equal_batch(stream: pd.DataFrame) -> None:
    batch = transaction_features(stream)
    assert list(batch.columns) == list(TRANSACTION_FEATURES)
    assert batch.index.equals(stream.index)
    assert (batch.dtypes == np.float64).all()

    ordered = _streaming_order(stream)
    online = _run_online(ordered.to_dict("records"), OnlineFeatures())
    expected = batch.loc[ordered.index].to_numpy()
    for j, name in enumerate(TRANSACTION_FEATURES):
        np.testing.assert_allclose(online[:, j], expected[:, j], rtol=RTOL, atol=ATOL, err_msg=name)
    # The stream must exercise the features, not compare constants.
    assert (batch["tx_count_10m"] > 1).any()
    assert 0 < batch["is_new_merchant"].mean() < 1
    assert (batch["log_amount_to_category_mean"] > 0).any()
    assert (batch["log_amount_to_category_mean"] < 0).any()
    assert (batch["new_merchants_24h"] < batch["new_merchants_3d"]).any()
    assert (batch["new_merchants_3d"] < batch["new_merchants_7d"]).any()


def test_online_user_features_equal_batch(stream: pd.DataFrame) -> None:
    online = OnlineFeatures()
    _run_online(_epoch_ms_records(_streaming_order(stream)), online)
    batch = user_features(stream)
    assert list(batch.columns) == list(USER_FEATURES)
    assert sorted(online.users()) == list(batch.index)
    got = pd.DataFrame([online.user_features(u) for u in batch.index], index=batch.index)
    for name in USER_FEATURES:
        np.testing.assert_allclose(got[name], batch[name], rtol=RTOL, atol=ATOL, err_msg=name)
    # The stream must exercise the distress counts and the recent (decayed) sums.
    assert (batch["gambling_tx_per_month"] > 0).mean() > 0.2
    assert ((batch["recent_overdraft_share"] > 0) & (batch["recent_overdraft_share"] < 1)).any()
    assert not np.allclose(batch["recent_distress_share"], batch["distress_share"])


def _run_micro_batches(
    records: list[dict[str, object]], size: int, online: OnlineFeatures | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each transaction's features and its user's after it, fed in micro-batches of `size`."""
    online = OnlineFeatures() if online is None else online
    parts = [
        online.observe(records[start : start + size]) for start in range(0, len(records), size)
    ]
    return np.vstack([tx for tx, _ in parts]), np.vstack([users for _, users in parts])


def test_micro_batch_features_equal_batch_whatever_the_batch_boundaries(
    stream: pd.DataFrame,
) -> None:
    ordered = _streaming_order(stream)
    records = _epoch_ms_records(ordered)
    tx, users = _run_micro_batches(records, 997)
    # Boundaries elsewhere must not change a single bit: a restarted bridge cuts other batches.
    for size in (1, 64):
        other_tx, other_users = _run_micro_batches(records[:3000], size)
        np.testing.assert_array_equal(other_tx, tx[:3000])
        np.testing.assert_array_equal(other_users, users[:3000])

    expected = transaction_features(stream).loc[ordered.index].to_numpy()
    for j, name in enumerate(TRANSACTION_FEATURES):
        np.testing.assert_allclose(tx[:, j], expected[:, j], rtol=RTOL, atol=ATOL, err_msg=name)
    # Each row's user features are those of the user's history up to that transaction.
    last_row = pd.Series(np.arange(len(records)), index=ordered["user_id"].to_numpy())
    last_row = last_row.groupby(level=0).max()
    batch_users = user_features(stream).loc[last_row.index].to_numpy()
    got = users[last_row.to_numpy()]
    for j, name in enumerate(USER_FEATURES):
        np.testing.assert_allclose(got[:, j], batch_users[:, j], rtol=RTOL, atol=ATOL, err_msg=name)
    # And one transaction at a time, by name.
    single = OnlineFeatures()
    named = [single.update(record) for record in records[:300]]
    assert all(tuple(result) == TRANSACTION_FEATURES for result in named)
    np.testing.assert_array_equal([list(result.values()) for result in named], tx[:300])


def test_timestamp_forms_give_identical_features(stream: pd.DataFrame) -> None:
    ordered = _streaming_order(stream).head(3000)
    from_timestamps = _run_online(ordered.to_dict("records"), OnlineFeatures())
    from_epoch_ms = _run_online(_epoch_ms_records(ordered), OnlineFeatures())
    iso = ordered.assign(timestamp=ordered["timestamp"].map(lambda t: t.isoformat()))
    from_iso = _run_online(iso.to_dict("records"), OnlineFeatures())
    np.testing.assert_array_equal(from_timestamps, from_epoch_ms)
    np.testing.assert_array_equal(from_timestamps, from_iso)


def test_snapshot_restore_mid_stream_continues_identically(stream: pd.DataFrame) -> None:
    records = _epoch_ms_records(_streaming_order(stream))
    half = len(records) // 2
    uninterrupted = OnlineFeatures()
    expected = _run_online(records, uninterrupted)

    before = OnlineFeatures()
    first_half = _run_online(records[:half], before)
    changelog = {user: before.saved_state(user) for user in before.users()}
    assert all(isinstance(data, bytes) for data in changelog.values())

    after = OnlineFeatures()  # a restarted consumer
    for user, data in changelog.items():
        after.restore(user, data)
    second_half = _run_online(records[half:], after)

    np.testing.assert_array_equal(np.vstack([first_half, second_half]), expected)
    for user in uninterrupted.users():
        assert after.user_features(user) == uninterrupted.user_features(user)


def test_windows_expire_in_both_paths() -> None:
    start = pd.Timestamp("2025-03-03 12:00", tz="UTC")
    offsets = [
        pd.Timedelta(0),
        pd.Timedelta(minutes=5),
        pd.Timedelta(hours=2),
        pd.Timedelta(hours=25, minutes=5),
        pd.Timedelta(hours=26, minutes=5),
    ]
    frame = pd.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(len(offsets))],
            "user_id": "u1",
            "timestamp": [start + offset for offset in offsets],
            "amount": [10.0, 20.0, 40.0, 80.0, 160.0],
            "direction": "debit",
            "category": "groceries",
            "merchant": "m",
            "channel": "card_present",
            "balance_after": 1000.0,
        }
    )
    batch = transaction_features(frame)
    online = OnlineFeatures()
    streamed = pd.DataFrame([online.update(r) for r in frame.to_dict("records")])
    for result in (batch, streamed):
        assert result["tx_count_24h"].tolist() == [1, 2, 3, 2, 2]
        assert result["tx_count_1h"].tolist() == [1, 2, 1, 1, 1]
        # 25 h 5 min after the start only the 2 h transaction (40) is still in the 24 h window.
        np.testing.assert_allclose(
            result["log_debit_sum_24h"], np.log1p([10.0, 30.0, 70.0, 120.0, 240.0]), rtol=1e-12
        )
