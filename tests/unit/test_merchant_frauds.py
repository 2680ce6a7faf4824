"""Known frauds per merchant as merchant-frauds records: the served count equals the batch
path's, and a hostile record is refused with a reason naming what is wrong."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

from finrisk.features.batch_merchants import merchant_features
from finrisk.features.definitions import MERCHANT_RISK_WINDOW_NS
from finrisk.features.merchant_frauds import (
    KnownFrauds,
    MerchantFraud,
    MerchantFraudError,
    decode,
    merchant_frauds_of,
)
from finrisk.schema import MERCHANT, TIMESTAMP
from finrisk.synthetic import generate
from finrisk.synthetic.labels import synthetic_labels
from finrisk.timestamps import series_to_ns

DAY = 86_400 * 10**9


@pytest.fixture(scope="module")
def hard() -> pd.DataFrame:
    transactions, _, _ = generate(users=300, days=45, seed=8, scenario="hard")
    return transactions


def test_count_from_records_equals_the_batch_path(hard: pd.DataFrame) -> None:
    labels = synthetic_labels(hard, 8)
    expected = np.expm1(merchant_features(hard, labels)["log_merchant_recent_frauds"].to_numpy())
    frauds = merchant_frauds_of(hard, labels)
    assert len(frauds) > 20  # the test means something only with frauds to count
    known = KnownFrauds()
    # Through the wire: what a reader of the topic gets, each record twice (at least once).
    for fraud in [*frauds, *frauds]:
        known.add(decode(fraud.value))
    stamps = series_to_ns(hard[TIMESTAMP], TIMESTAMP)
    order = np.argsort(stamps, kind="stable")
    got = np.empty(len(hard))
    merchants = hard[MERCHANT].astype(str).to_numpy()
    for chunk in np.array_split(order, 40):  # batches in time order, expiring as they go
        got[chunk] = known.counts(merchants[chunk].tolist(), stamps[chunk].tolist())
    assert expected.max() > 0
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_count_is_as_of_the_transaction_time() -> None:
    known = KnownFrauds()
    known.add(MerchantFraud("m", "t1", event_time_ns=10 * DAY, labelled_at_ns=12 * DAY))
    assert known.count("m", 11 * DAY) == 0  # not known yet at 11
    assert known.count("m", 12 * DAY) == 1  # known at exactly its labelled_at
    assert known.count("m", 10 * DAY + MERCHANT_RISK_WINDOW_NS) == 0  # out of the window
    assert known.count("other", 12 * DAY) == 0


def test_earliest_label_wins_and_repeats_change_nothing() -> None:
    known = KnownFrauds()
    assert known.add(MerchantFraud("m", "t1", 10 * DAY, 14 * DAY))
    assert known.add(MerchantFraud("m", "t1", 10 * DAY, 12 * DAY))
    assert not known.add(MerchantFraud("m", "t1", 10 * DAY, 13 * DAY))
    assert len(known) == 1
    assert known.count("m", 12 * DAY) == 1


def test_old_frauds_expire_behind_the_newest_transaction() -> None:
    known = KnownFrauds()
    known.add(MerchantFraud("m", "t1", 1 * DAY, 2 * DAY))
    known.counts(["m"], [3 * DAY])
    assert len(known) == 1
    known.counts(["x"], [40 * DAY])
    assert len(known) == 0


def test_keys_are_one_per_fraud_and_unambiguous() -> None:
    a = MerchantFraud("a|b", "c", 1, 2)
    b = MerchantFraud("a", "b|c", 1, 2)
    assert a.key != b.key
    assert MerchantFraud("a", "t1", 1, 2).key != MerchantFraud("a", "t2", 1, 2).key


@pytest.mark.parametrize(
    ("value", "names"),
    [
        (None, "no value"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"merchant": "m"}', "lacks the field"),
        (
            b'{"merchant": 5, "transaction_id": "t", "event_time_ns": 1, "labelled_at_ns": 2}',
            "merchant must be",
        ),
        (
            b'{"merchant": "m", "transaction_id": "", "event_time_ns": 1, "labelled_at_ns": 2}',
            "transaction_id must be",
        ),
        (
            b'{"merchant": "m", "transaction_id": "t", "event_time_ns": "1", "labelled_at_ns": 2}',
            "event_time_ns must be an integer",
        ),
        (
            b'{"merchant": "m", "transaction_id": "t", "event_time_ns": 1, "labelled_at_ns": true}',
            "labelled_at_ns must be an integer",
        ),
        (
            b'{"merchant": "m", "transaction_id": "t", "event_time_ns": 5, "labelled_at_ns": 2}',
            "before event_time_ns",
        ),
    ],
)
def test_hostile_values_are_refused_naming_the_fault(value: bytes | None, names: str) -> None:
    with pytest.raises(MerchantFraudError, match=names):
        decode(value)


def test_value_round_trips() -> None:
    fraud = MerchantFraud("m", "t", 1, 2)
    assert decode(fraud.value) == fraud
    assert orjson.loads(fraud.key) == ["m", "t"]
