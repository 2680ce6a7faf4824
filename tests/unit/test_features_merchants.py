"""Merchant risk features: as-of correctness, batch/online parity on the hard scenario with its
label stream, saved and restored state, and label records that cannot be placed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from finrisk.errors import FinriskError
from finrisk.features.batch_merchants import merchant_features
from finrisk.features.definitions import MERCHANT_FEATURES, MERCHANT_RATE_PRIOR_TRANSACTIONS
from finrisk.features.online_merchants import (
    ALREADY_COUNTED,
    BEFORE_TRANSACTION,
    COUNTED,
    NOT_FRAUD,
    UNKNOWN_TRANSACTION,
    OnlineMerchantRisk,
)
from finrisk.labels import FRAUD_CONFIRMED, LEGITIMATE, LabelRecord
from finrisk.synthetic import generate
from finrisk.synthetic.labels import synthetic_labels
from finrisk.timestamps import series_to_ns

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FRAUDS, RATE = MERCHANT_FEATURES


def _frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """(transaction_id, merchant, days after T0) rows."""
    return pd.DataFrame(
        {
            "transaction_id": [r[0] for r in rows],
            "merchant": [r[1] for r in rows],
            "timestamp": [pd.Timestamp(T0 + timedelta(days=r[2])) for r in rows],
        }
    )


def _label(tx: str, event_days: float, known_days: float, outcome: str = FRAUD_CONFIRMED):
    return LabelRecord(
        transaction_id=tx,
        user_id="u",
        event_time=T0 + timedelta(days=event_days),
        outcome=outcome,
        labelled_at=T0 + timedelta(days=known_days),
        source="test",
    )


def _online(frame: pd.DataFrame, labels: list[LabelRecord], risk=None) -> np.ndarray:
    """Transactions and labels interleaved by time (a label before a transaction of the same
    instant), through the online path."""
    risk = risk or OnlineMerchantRisk()
    stamps = series_to_ns(frame["timestamp"], "timestamp")
    events: list[tuple[int, int, str, object]] = [
        (int(ts), 1, str(tx), k)
        for k, (ts, tx) in enumerate(zip(stamps, frame["transaction_id"], strict=True))
    ]
    events += [(pd.Timestamp(r.labelled_at).value, 0, "", r) for r in labels]
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    out = np.zeros((len(frame), len(MERCHANT_FEATURES)))
    merchants = frame["merchant"].astype(str).to_numpy()
    for ts, kind, tx, item in events:
        if kind == 0:
            risk.observe_label(item)  # type: ignore[arg-type]
        else:
            k = int(item)  # type: ignore[call-overload]
            out[k] = list(risk.observe_transaction(tx, merchants[k], ts).values())
    return out


def test_a_label_counts_only_from_when_it_is_known() -> None:
    frame = _frame([("f", "m", 0.0), ("a", "m", 1.0), ("b", "m", 2.0), ("c", "other", 2.5)])
    before = merchant_features(frame, [])
    # Known at day 2 exactly: it counts for b (at day 2) but not for a (day 1).
    after = merchant_features(frame, [_label("f", 0.0, 2.0)])
    assert after.loc[1].tolist() == before.loc[1].tolist() == [0.0, 0.0]
    assert after.loc[2, FRAUDS] == pytest.approx(np.log1p(1.0))
    assert after.loc[2, RATE] == pytest.approx(1 / (3 + MERCHANT_RATE_PRIOR_TRANSACTIONS))
    assert after.loc[3].tolist() == [0.0, 0.0]  # another merchant
    # Known a moment after b: b's features do not change.
    late = merchant_features(frame, [_label("f", 0.0, 2.000001)])
    assert late.loc[2].tolist() == [0.0, 0.0]


def test_a_fraud_older_than_the_window_no_longer_counts() -> None:
    frame = _frame([("f", "m", 0.0), ("a", "m", 3.0), ("b", "m", 6.9), ("c", "m", 7.0)])
    values = merchant_features(frame, [_label("f", 0.0, 1.0)])
    assert values[FRAUDS].tolist() == pytest.approx([0.0, np.log1p(1), np.log1p(1), 0.0])


def test_no_labels_give_the_no_history_values() -> None:
    frame = _frame([("a", "m", 0.0), ("b", "m", 1.0)])
    assert merchant_features(frame, None).to_numpy().tolist() == [[0.0, 0.0], [0.0, 0.0]]


@pytest.fixture(scope="module")
def hard() -> tuple[pd.DataFrame, list[LabelRecord]]:
    transactions, _, _ = generate(users=400, days=90, seed=7, scenario="hard")
    return transactions, synthetic_labels(transactions, 7)


def test_online_equals_batch_on_the_hard_scenario(
    hard: tuple[pd.DataFrame, list[LabelRecord]],
) -> None:
    transactions, labels = hard
    batch = merchant_features(transactions, labels).to_numpy()
    assert (batch[:, 0] > 0).sum() > 100  # the comparison covers merchants with known frauds
    np.testing.assert_allclose(_online(transactions, labels), batch, rtol=0, atol=1e-9)


def test_restored_state_continues_as_if_uninterrupted(
    hard: tuple[pd.DataFrame, list[LabelRecord]],
) -> None:
    transactions, labels = hard
    stamps = pd.to_datetime(transactions["timestamp"], utc=True)
    cut = stamps.quantile(0.5)
    early = (stamps <= cut).to_numpy()
    first = OnlineMerchantRisk()
    early_labels = [r for r in labels if pd.Timestamp(r.labelled_at) < cut]
    _online(transactions[early], early_labels, first)
    restored = OnlineMerchantRisk()
    for merchant in first.merchants():
        restored.restore(merchant, first.saved_state(merchant))
    rest = [r for r in labels if pd.Timestamp(r.labelled_at) >= cut]
    later = transactions[~early].reset_index(drop=True)
    expected = _online(later, rest, first)
    assert (expected[:, 0] > 0).any()
    np.testing.assert_array_equal(_online(later, rest, restored), expected)


def test_labels_that_cannot_be_placed_are_ignored_alike_in_both_paths() -> None:
    frame = _frame([("f", "m", 0.0), ("g", "m", 0.5), ("a", "m", 3.0)])
    hostile = [
        _label("nobody", 0.0, 1.0),  # no such transaction
        _label("g", 0.5, 0.4),  # "known" before its transaction happened
        _label("f", 0.0, 1.0, LEGITIMATE),
    ]
    assert merchant_features(frame, hostile).to_numpy().sum() == 0.0
    assert _online(frame, hostile).sum() == 0.0
    risk = OnlineMerchantRisk()
    risk.observe_transaction("f", "m", pd.Timestamp(T0).value)
    assert risk.observe_label(_label("nobody", 0.0, 1.0)) == UNKNOWN_TRANSACTION
    assert risk.observe_label(_label("f", 0.0, 1.0, LEGITIMATE)) == NOT_FRAUD
    assert risk.observe_label(_label("f", 0.0, -1.0)) == BEFORE_TRANSACTION
    assert risk.observe_label(_label("f", 0.0, 1.0)) == COUNTED
    assert risk.observe_label(_label("f", 0.0, 2.0)) == ALREADY_COUNTED
    # Two fraud outcomes of one transaction count it once, in both paths.
    twice = [_label("f", 0.0, 1.0), _label("f", 0.0, 2.0, "chargeback")]
    assert merchant_features(frame, twice)[FRAUDS].tolist()[2] == pytest.approx(np.log1p(1))
    assert _online(frame, twice)[2, 0] == pytest.approx(np.log1p(1))


@pytest.mark.parametrize(
    ("data", "says"),
    [(b"not json", "unreadable"), (b'{"version": 99}', "version 99"), (b"{}", "version None")],
)
def test_an_unreadable_saved_state_is_refused_by_name(data: bytes, says: str) -> None:
    with pytest.raises(FinriskError, match=says):
        OnlineMerchantRisk().restore("m", data)
