"""Individual features on tiny hand-made frames with known answers."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from finrisk.errors import FinriskError
from finrisk.features import (
    LOW_BALANCE_THRESHOLD,
    SEED_USER_FEATURES,
    TRANSACTION_FEATURES,
    USER_FEATURES,
    OnlineFeatures,
    batch_features,
    transaction_features,
    user_features,
)
from finrisk.features.definitions import (
    COUNTED_CATEGORIES,
    DAYS_PER_MONTH,
    GAP_CAP_SECONDS,
    LOG_AMOUNT_VARIANCE_FLOOR,
    NEW_MERCHANT_WINDOWS,
    NO_CATEGORY_HISTORY_RATIO,
    RECENT_DECAY_DAYS,
    SUM_WINDOWS,
    WINDOWS,
)
from finrisk.features.formulas import is_gambling_merchant
from finrisk.features.online_saved_state import SAVED_STATE_VERSION
from finrisk.synthetic.merchants import build_pool
from finrisk.timestamps import to_ns

START = pd.Timestamp("2024-01-01 06:00", tz="UTC")  # a Monday


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Canonical transactions; each row gives `minutes` after START and overrides defaults."""
    records = []
    for i, row in enumerate(rows):
        record = {
            "transaction_id": f"t{i:03d}",
            "user_id": "u1",
            "amount": 10.0,
            "direction": "debit",
            "category": "groceries",
            "merchant": "shop",
            "channel": "card_present",
            "balance_after": 1000.0,
            **{k: v for k, v in row.items() if k != "minutes"},
        }
        record["timestamp"] = START + pd.Timedelta(minutes=row.get("minutes", i))
        records.append(record)
    return pd.DataFrame(records)


def test_names() -> None:
    assert SEED_USER_FEATURES == (
        "total_income",
        "total_expense",
        "n_transactions",
        "avg_expense",
        "max_expense",
        "low_balance_freq",
        "expense_income_ratio",
        "top_category_spend",
    )
    assert USER_FEATURES[: len(SEED_USER_FEATURES)] == SEED_USER_FEATURES
    for category in COUNTED_CATEGORIES:
        assert f"{category}_tx_per_month" in USER_FEATURES
    assert {"gambling_tx_per_month", "distress_share", "recent_distress_share"} <= set(
        USER_FEATURES
    )
    assert len(set(USER_FEATURES)) == len(USER_FEATURES)
    assert len(set(TRANSACTION_FEATURES)) == len(TRANSACTION_FEATURES)
    # The online state lists the summed windows' sums in WINDOWS order.
    assert [name for name, _ in WINDOWS if name in SUM_WINDOWS] == list(SUM_WINDOWS)


def test_amount_against_prior_debits() -> None:
    df = frame(
        [
            {"amount": 10.0},
            {"amount": 500.0, "direction": "credit", "category": "salary"},
            {"amount": 20.0},
            {"amount": 40.0},
        ]
    )
    f = transaction_features(df)
    np.testing.assert_allclose(f["log_amount"], np.log1p([10.0, 500.0, 20.0, 40.0]))
    assert f["is_debit"].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert f["log_prior_debit_count"].tolist() == pytest.approx(np.log1p([0, 1, 1, 2]))
    # z-score needs two prior debits; the credit is never compared with debits.
    prior = np.log1p([10.0, 20.0])
    expected = (math.log1p(40.0) - prior.mean()) / math.sqrt(
        prior.var() + LOG_AMOUNT_VARIANCE_FLOOR
    )
    assert f["amount_log_zscore"].tolist() == pytest.approx([0.0, 0.0, 0.0, expected])
    # First debit compared with itself; the credit scores 0; later ones against the prior max.
    assert f["log_amount_to_prior_max"].tolist() == pytest.approx(
        [0.0, 0.0, math.log(2.0), math.log(2.0)]
    )


def test_amount_against_the_users_prior_mean_in_its_category_in_both_paths() -> None:
    none = NO_CATEGORY_HISTORY_RATIO
    df = frame(
        [
            {"amount": 10.0},  # groceries' first: no prior spend there
            {"amount": 100.0, "category": "electronics"},  # a category's first, again
            {"amount": 30.0},  # groceries' mean so far 10
            {"amount": 500.0, "direction": "credit", "category": "salary"},  # a credit
            {"amount": 500.0, "direction": "credit", "category": "salary"},
            {"amount": 40.0},  # groceries' mean (10 + 30) / 2 = 20; electronics not in it
            {"amount": 50.0, "category": "electronics"},  # electronics' mean 100
            {"amount": 5.0, "user_id": "u2"},  # another user's groceries: their first
        ]
    )
    expected = [none, none, math.log(3.0), 0.0, 0.0, math.log(2.0), math.log(0.5), none]
    name = "log_amount_to_category_mean"
    assert transaction_features(df)[name].tolist() == pytest.approx(expected, abs=1e-15)
    online = OnlineFeatures()
    got = [online.update(row)[name] for row in df.to_dict("records")]
    assert got == pytest.approx(expected, abs=1e-15)


def test_velocity_windows_and_gaps() -> None:
    df = frame(
        [
            {"minutes": 0, "amount": 1.0},
            {"minutes": 5, "amount": 2.0},
            {"minutes": 9, "amount": 100.0, "direction": "credit", "category": "refund"},
            {"minutes": 15, "amount": 4.0},
            {"minutes": 70, "amount": 8.0},
        ]
    )
    f = transaction_features(df)
    assert f["tx_count_10m"].tolist() == [1, 2, 3, 2, 1]
    assert f["tx_count_1h"].tolist() == [1, 2, 3, 4, 2]
    assert f["tx_count_24h"].tolist() == [1, 2, 3, 4, 5]
    # The credit adds nothing to debit sums; at 70 min the 1 h window holds 15 and 70.
    np.testing.assert_allclose(f["log_debit_sum_1h"], np.log1p([1.0, 3.0, 3.0, 7.0, 12.0]))
    np.testing.assert_allclose(f["log_debit_sum_24h"], np.log1p([1.0, 3.0, 3.0, 7.0, 15.0]))
    np.testing.assert_allclose(
        f["log_seconds_since_prev"], np.log1p([GAP_CAP_SECONDS, 300, 240, 360, 3300])
    )


def test_a_window_edge_is_exclusive() -> None:
    f = transaction_features(frame([{"minutes": 0}, {"minutes": 60}, {"minutes": 60 * 24 + 60}]))
    # Exactly one hour (and exactly 24 h) earlier has expired.
    assert f["tx_count_1h"].tolist() == [1, 1, 1]
    assert f["tx_count_24h"].tolist() == [1, 2, 1]


def test_gap_is_capped() -> None:
    f = transaction_features(frame([{"minutes": 0}, {"minutes": 60 * 24 * 90}]))
    assert f["log_seconds_since_prev"].tolist() == pytest.approx([math.log1p(GAP_CAP_SECONDS)] * 2)


def test_hour_and_day_of_week() -> None:
    # START is Monday 06:00 UTC; +36 h is Tuesday 18:00.
    f = transaction_features(frame([{"minutes": 0}, {"minutes": 36 * 60}]))
    assert f["hour_sin"].tolist() == pytest.approx([1.0, -1.0])
    assert f["hour_cos"].tolist() == pytest.approx([0.0, 0.0], abs=1e-12)
    assert f["dow_sin"].tolist() == pytest.approx([0.0, math.sin(2 * math.pi / 7)])
    assert f["dow_cos"].tolist() == pytest.approx([1.0, math.cos(2 * math.pi / 7)])


def test_novelty_per_user() -> None:
    df = frame(
        [
            {"category": "groceries", "merchant": "a"},
            {"category": "dining", "merchant": "a"},
            {"category": "groceries", "merchant": "b"},
            {"user_id": "u2", "category": "groceries", "merchant": "a"},
        ]
    )
    f = transaction_features(df)
    assert f["is_new_category"].tolist() == [1.0, 1.0, 0.0, 1.0]
    assert f["is_new_merchant"].tolist() == [1.0, 0.0, 1.0, 1.0]


def test_new_merchants_are_counted_over_their_window_in_both_paths() -> None:
    day = 60 * 24
    df = frame(
        [
            {"minutes": 0, "merchant": "a"},
            {"minutes": day, "merchant": "b"},
            {"minutes": 2 * day, "merchant": "a"},  # a second visit: not new
            {"minutes": 7 * day, "merchant": "c"},  # the first, exactly 7 days earlier, expired
            {"minutes": 8 * day, "merchant": "d"},  # b's first visit expired too
            {"minutes": 8 * day + 1, "merchant": "b"},
            {"minutes": 8 * day + 2, "merchant": "c", "user_id": "u2"},  # per user
        ]
    )
    ns_per_minute = 60 * 10**9
    assert dict(NEW_MERCHANT_WINDOWS) == {
        "7d": 7 * day * ns_per_minute,
        "3d": 3 * day * ns_per_minute,
        "24h": day * ns_per_minute,
    }
    expected = {
        "new_merchants_7d": [1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.0],
        # a's first visit expired on day 3, b's on day 4; d and c are new on days 7 and 8.
        "new_merchants_3d": [1.0, 2.0, 2.0, 1.0, 2.0, 2.0, 1.0],
        # Each first visit expires a day later exactly: a's at b's, b's at the second a's.
        "new_merchants_24h": [1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0],
    }
    batch = transaction_features(df)
    online = OnlineFeatures()
    got = [online.update(row) for row in df.to_dict("records")]
    for name, values in expected.items():
        assert batch[name].tolist() == values, name
        assert [result[name] for result in got] == values, name


def test_online_new_merchants_survive_a_saved_state() -> None:
    day = 60 * 24
    rows = frame([{"minutes": i * day, "merchant": f"m{i % 3}"} for i in range(6)])
    records = rows.to_dict("records")
    online = OnlineFeatures()
    for row in records[:4]:
        online.update(row)
    restored = OnlineFeatures()
    restored.restore("u1", online.saved_state("u1"))
    # m0, m1, m2 are new on days 0-2: on days 4 and 5 the week still holds them, three days
    # only m2 on day 4 and none on day 5, a day none, the restored state as the one it was
    # saved from.
    names = ("new_merchants_7d", "new_merchants_3d", "new_merchants_24h")
    expected = [(3.0, 1.0, 0.0), (3.0, 0.0, 0.0)]
    for features in (restored, online):
        got = [features.update(row) for row in records[4:]]
        assert [tuple(result[name] for name in names) for result in got] == expected


def test_balance_features() -> None:
    df = frame(
        [
            {"amount": 50.0, "balance_after": 50.0},
            {"amount": 30.0, "balance_after": -20.0},
            {"amount": 500.0, "balance_after": 480.0, "direction": "credit", "category": "salary"},
            {"amount": 10.0, "balance_after": -5000.0},
        ]
    )
    f = transaction_features(df)
    # 50 of 100; 30 of 10; credit 0; 10 of a balance below the floor: capped.
    assert f["amount_to_balance_before"].tolist() == pytest.approx([0.5, 3.0, 0.0, 10.0])
    assert f["is_overdrawn"].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert f["signed_log_balance_after"].tolist() == pytest.approx(
        [math.log1p(50), -math.log1p(20), math.log1p(480), -math.log1p(5000)]
    )


def test_indicators() -> None:
    df = frame(
        [
            {"channel": "online", "category": "gift_cards"},
            {"channel": "atm", "category": "cash_withdrawal"},
            {"channel": "direct_debit", "category": "rent"},
        ]
    )
    f = transaction_features(df)
    assert f["channel_online"].tolist() == [1.0, 0.0, 0.0]
    assert f["channel_atm"].tolist() == [0.0, 1.0, 0.0]
    assert f["channel_card_present"].tolist() == [0.0, 0.0, 0.0]
    assert f["category_gift_cards"].tolist() == [1.0, 0.0, 0.0]
    assert f["category_cash_withdrawal"].tolist() == [0.0, 1.0, 0.0]
    assert f["category_electronics"].tolist() == [0.0, 0.0, 0.0]


def test_ties_are_broken_by_transaction_id_and_input_order_is_kept() -> None:
    df = frame(
        [
            {"minutes": 0, "transaction_id": "b", "merchant": "x"},
            {"minutes": 0, "transaction_id": "a", "merchant": "x"},
        ]
    ).set_index(pd.Index([10, 20]))
    f = transaction_features(df)
    assert f.index.tolist() == [10, 20]
    # "a" comes first: it sees only itself and meets merchant x first.
    assert f["tx_count_10m"].tolist() == [2.0, 1.0]
    assert f["is_new_merchant"].tolist() == [0.0, 1.0]


def test_features_are_causal_and_order_free() -> None:
    rng = np.random.default_rng(0)
    rows = [
        {
            "minutes": int(m),
            "user_id": f"u{rng.integers(3)}",
            "amount": float(rng.uniform(1, 300)),
            "merchant": f"m{rng.integers(6)}",
            "direction": "credit" if rng.random() < 0.2 else "debit",
            "balance_after": float(rng.normal(200, 300)),
        }
        for m in np.sort(rng.integers(0, 3 * 24 * 60, 120))
    ]
    df = frame(rows)
    full = transaction_features(df)
    cut = df["timestamp"] < df["timestamp"].iloc[60]
    pd.testing.assert_frame_equal(transaction_features(df[cut]), full[cut])
    shuffled = df.sample(frac=1.0, random_state=1)
    pd.testing.assert_frame_equal(transaction_features(shuffled).loc[df.index], full)


def test_seed_user_features() -> None:
    df = frame(
        [
            {"amount": 1000.0, "direction": "credit", "category": "salary", "balance_after": 1000},
            {"amount": 300.0, "category": "rent", "balance_after": 700.0},
            {"amount": 100.0, "category": "dining", "balance_after": 600.0},
            {"amount": 250.0, "category": "dining", "balance_after": 50.0},
            {"user_id": "u2", "amount": 5.0, "balance_after": -5.0},
        ]
    )
    u = user_features(df)
    assert u.index.tolist() == ["u1", "u2"]
    assert u.index.name == "user_id"
    assert list(u.columns) == list(USER_FEATURES)
    assert (u.dtypes == np.float64).all()
    u1 = u.loc["u1"]
    assert u1["total_income"] == 1000.0
    assert u1["total_expense"] == 650.0
    assert u1["n_transactions"] == 4.0
    assert u1["avg_expense"] == pytest.approx(650.0 / 3)
    assert u1["max_expense"] == 300.0
    assert LOW_BALANCE_THRESHOLD > 50.0
    assert u1["low_balance_freq"] == 0.25
    assert u1["expense_income_ratio"] == 0.65
    assert u1["top_category_spend"] == 350.0
    assert u1["discretionary_share"] == pytest.approx(350.0 / 650.0)
    assert u1["essential_share"] == pytest.approx(300.0 / 650.0)
    assert u1["min_balance"] == 50.0
    assert u1["last_balance"] == 50.0
    u2 = u.loc["u2"]
    assert u2["total_income"] == 0.0
    assert u2["expense_income_ratio"] == 5.0  # income floored at 1
    assert u2["overdraft_freq"] == 1.0


def test_richer_user_features() -> None:
    days = 24 * 60
    salaries = [
        {
            "minutes": d * days,
            "amount": 2000.0,
            "direction": "credit",
            "category": "salary",
            "balance_after": 0.0,
        }
        for d in (0, 30, 60, 91)
    ]
    # Balance grows by exactly 10 a day.
    daily = [{"minutes": d * days + 1, "balance_after": 10.0 * d} for d in range(0, 92, 7)]
    u = user_features(frame(sorted(salaries + daily, key=lambda r: r["minutes"]))).loc["u1"]
    intervals = np.array([30.0, 30.0, 31.0])
    assert u["income_irregularity"] == pytest.approx(intervals.std() / intervals.mean())
    assert u["salary_share"] == 1.0
    span = 91.0 + 1 / (24 * 60)  # the last daily row is a minute after the last salary
    assert u["active_days"] == pytest.approx(span)
    months = span / 30.4375
    assert u["income_per_month"] == pytest.approx(8000.0 / months)
    # Salary rows sit at 0, daily rows on the line; fit over both is not the line, so check
    # on the daily rows alone.
    only_daily = user_features(frame(daily)).loc["u1"]
    assert only_daily["balance_trend_per_month"] == pytest.approx(10.0 * 30.4375)
    assert only_daily["income_irregularity"] == 1.0  # no salary: as irregular as cv 1
    assert only_daily["merchant_diversity"] == pytest.approx(1 / len(daily))


RECENT_FEATURES = tuple(name for name in USER_FEATURES if name.startswith("recent_"))
DAY_MINUTES = 24 * 60


def _recent_frame() -> pd.DataFrame:
    """u1: days 0, 20 and 40, so weights e^-2, e^-1 and 1; u2: one of each distress kind."""
    return frame(
        [
            {"minutes": 0, "amount": 100.0, "balance_after": -50.0},
            {
                "minutes": 20 * DAY_MINUTES,
                "amount": 400.0,
                "direction": "credit",
                "category": "transfer_in",
                "merchant": "A. Smith",
                "balance_after": 350.0,
            },
            {
                "minutes": 40 * DAY_MINUTES,
                "amount": 30.0,
                "category": "entertainment",
                "merchant": "BetBuddy #2",
                "balance_after": 50.0,
            },
            {"user_id": "u2", "minutes": 0, "category": "gift_cards", "merchant": "eGiftNow"},
            {"user_id": "u2", "minutes": 1, "category": "cash_withdrawal", "merchant": "ATM X"},
            {"user_id": "u2", "minutes": 2, "category": "dining", "merchant": "LUCKYSPIN Live"},
            {"user_id": "u2", "minutes": 3, "category": "entertainment", "merchant": "CineMax"},
            {
                "user_id": "u2",
                "minutes": 4,
                "amount": 2000.0,
                "direction": "credit",
                "category": "salary",
                "merchant": "Acme",
            },
        ]
    )


def test_counted_categories_gambling_and_distress() -> None:
    u = user_features(_recent_frame())
    months = 40.0 / DAYS_PER_MONTH  # u1 spans 40 days: more than a month
    u1 = u.loc["u1"]
    assert u1["transfer_in_tx_per_month"] == pytest.approx(1 / months)
    assert u1["entertainment_tx_per_month"] == pytest.approx(1 / months)
    assert u1["gambling_tx_per_month"] == pytest.approx(1 / months)
    assert u1["gift_cards_tx_per_month"] == 0.0
    assert u1["distress_share"] == 0.5  # of its two debits, the bet
    # u2 spans minutes: per-month rates divide by one month. Gambling goes by merchant name in
    # any case and category; cinema is entertainment but not gambling.
    u2 = u.loc["u2"]
    for category in ("gift_cards", "cash_withdrawal", "entertainment", "salary"):
        assert u2[f"{category}_tx_per_month"] == 1.0
    assert u2["gambling_tx_per_month"] == 1.0
    assert u2["distress_share"] == 0.75  # gift card, cash, LuckySpin of four debits


def test_recent_features_weigh_by_age_from_the_latest_transaction() -> None:
    u1 = user_features(_recent_frame()).loc["u1"]
    w = np.exp(-np.array([40.0, 20.0, 0.0]) / RECENT_DECAY_DAYS)
    assert RECENT_DECAY_DAYS == 20.0  # the weights below are e^-2, e^-1, 1
    assert u1["recent_expense_income_ratio"] == pytest.approx(
        (100 * w[0] + 30 * w[2]) / (400 * w[1])
    )
    assert u1["recent_overdraft_share"] == pytest.approx(w[0] / w.sum())
    assert u1["recent_low_balance_share"] == pytest.approx((w[0] + w[2]) / w.sum())
    assert u1["recent_distress_share"] == pytest.approx(w[2] / (w[0] + w[2]))
    assert u1["recent_mean_balance"] == pytest.approx((-50 * w[0] + 350 * w[1] + 50) / w.sum())
    assert u1["recent_transfer_in_per_month"] == pytest.approx(
        w[1] * DAYS_PER_MONTH / RECENT_DECAY_DAYS
    )
    # The whole period gives the old overdraft the same weight as the rest.
    assert u1["overdraft_freq"] == pytest.approx(1 / 3)


def test_recent_features_survive_long_gaps_and_late_arrivals() -> None:
    years = 365 * DAY_MINUTES
    df = frame(
        [
            {"minutes": 0, "category": "gift_cards", "balance_after": -10.0},
            {"minutes": 5, "category": "gift_cards", "balance_after": -20.0},
            # 50 years on, the old debits' weights underflow to 0: shares stay defined.
            {"minutes": 50 * years, "direction": "credit", "category": "refund"},
            {"minutes": 50 * years + 60, "direction": "credit", "category": "refund"},
        ]
    )
    u1 = user_features(df).loc["u1"]
    assert u1["recent_distress_share"] == 0.0
    assert u1["recent_overdraft_share"] == 0.0
    assert u1["recent_expense_income_ratio"] == 0.0
    assert u1["distress_share"] == 1.0
    assert np.isfinite(user_features(df).to_numpy()).all()
    # Online, in order and newest first (every later message late): the same recent features.
    for records in (df.to_dict("records"), df.iloc[::-1].to_dict("records")):
        online = OnlineFeatures()
        for record in records:
            online.update(record)
        got = online.user_features("u1")
        for name in RECENT_FEATURES:
            assert got[name] == pytest.approx(u1[name], rel=1e-12, abs=1e-12), name


def test_online_recent_sums_stay_exact_over_years() -> None:
    # A transaction every 45 days for 10 years: online, the sums' reference time moves on
    # several times; none of the old transactions' weights has underflowed yet at the end.
    rows = [
        {
            "minutes": k * 45 * DAY_MINUTES,
            "amount": 10.0 + k,
            "direction": "credit" if k % 3 == 0 else "debit",
            "category": "transfer_in" if k % 3 == 0 else ("gift_cards" if k % 2 else "dining"),
            "balance_after": 50.0 * (k % 5) - 75.0,
        }
        for k in range(81)
    ]
    df = frame(rows)
    batch = user_features(df).loc["u1"]
    online = OnlineFeatures()
    for record in df.to_dict("records"):
        online.update(record)
    got = online.user_features("u1")
    for name in RECENT_FEATURES:
        assert got[name] == pytest.approx(batch[name], rel=1e-12), name
    assert 0 < batch["recent_overdraft_share"] < 1
    assert 0 < batch["recent_distress_share"] < 1


def test_online_recent_features_do_not_depend_on_arrival_order() -> None:
    df = _recent_frame()
    batch = user_features(df)
    for seed in range(3):
        online = OnlineFeatures()
        for record in df.sample(frac=1.0, random_state=seed).to_dict("records"):
            online.update(record)
        for user in ("u1", "u2"):
            got = online.user_features(user)
            # Per-month rates are not order-free online (span runs from the first arrival).
            for name in (*RECENT_FEATURES, "distress_share"):
                assert got[name] == pytest.approx(batch.loc[user, name], rel=1e-12), name


def test_gambling_merchants_are_the_generators_betting_brands() -> None:
    pool = build_pool()
    flagged = {i for i, name in enumerate(pool.names) if is_gambling_merchant(name)}
    assert flagged == set(pool.betting.tolist())
    assert flagged


def test_saved_states_of_other_versions_are_refused_clearly() -> None:
    online = OnlineFeatures()
    online.update(frame([{}]).to_dict("records")[0])
    data = online.saved_state("u1")
    header, _ = data.split(b"\n", 1)
    assert orjson.loads(header)["version"] == SAVED_STATE_VERSION
    newer = data.replace(
        f'"version":{SAVED_STATE_VERSION}'.encode(), f'"version":{SAVED_STATE_VERSION + 1}'.encode()
    )
    assert newer != data
    with pytest.raises(FinriskError, match=f"version {SAVED_STATE_VERSION + 1}.*replay"):
        OnlineFeatures().restore("u1", newer)
    # Version 2 was one JSON document.
    with pytest.raises(FinriskError, match=r"version 2.*replay"):
        OnlineFeatures().restore("u1", b'{"version": 2, "n_tx": 3}')


# Saved states written by earlier releases after the first `saved_after` transactions of
# saved_states.json: version 3 by 6cf435c (a day of window entries, no merchant counts),
# version 4 by 3192be6 (a week of entries with merchant counts; the 7-day first-visit window).
DATA = Path(__file__).parent / "data"
NEW_MERCHANT_NAMES = tuple(f"new_merchants_{suffix}" for suffix, _ in NEW_MERCHANT_WINDOWS)


def _after_restoring(version: int) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """The features of the transactions after the save: (restored from the saved state of
    `version`, computed by a state that never stopped)."""
    saved = (DATA / f"saved_state_v{version}.bin").read_bytes()
    assert orjson.loads(saved.split(b"\n", 1)[0])["version"] == version
    plan = orjson.loads((DATA / "saved_states.json").read_bytes())
    rows = [{**row, "timestamp": pd.Timestamp(row["timestamp"])} for row in plan["transactions"]]
    upgraded = OnlineFeatures()
    upgraded.restore("u1", saved)
    never_stopped = OnlineFeatures()
    for row in rows[: plan["saved_after"]]:
        never_stopped.update(row)
    after = rows[plan["saved_after"] :]
    got = [upgraded.update(row) for row in after]
    # Saved again, the state is of this version and reads back to itself.
    again = upgraded.saved_state("u1")
    assert orjson.loads(again.split(b"\n", 1)[0])["version"] == SAVED_STATE_VERSION
    restored = OnlineFeatures()
    restored.restore("u1", again)
    assert _parts(restored.saved_state("u1")) == _parts(again)
    return got, [never_stopped.update(row) for row in after]


def test_a_version_4_saved_state_is_upgraded_exactly() -> None:
    """A bridge upgraded in place restores its predecessor's states: version 4 lacks only the
    3-day and 24-hour first-visit windows' starts, found again from its entries."""
    got, want = _after_restoring(4)
    assert got == want


def test_a_version_3_saved_state_is_upgraded() -> None:
    """Version 3 kept no merchant counts: every feature as if the bridge had never stopped,
    but the first visits to merchants before the upgrade are not counted."""
    got, want = _after_restoring(3)
    for restored, exact in zip(got, want, strict=True):
        others = set(restored) - set(NEW_MERCHANT_NAMES)
        assert {k: restored[k] for k in others} == {k: exact[k] for k in others}
        # The week, three days and day before had first visits, the upgraded state counts
        # none of them: web-d is a first visit after the upgrade, grocer is not.
        assert all(restored[name] == 1.0 < exact[name] for name in NEW_MERCHANT_NAMES)


def _parts(saved: bytes) -> tuple[dict[str, Any], bytes]:
    """A saved state's header (merchants sorted: a set's order is not kept) and numbers."""
    header, numbers = saved.split(b"\n", 1)
    fields = orjson.loads(header)
    return {**fields, "merchants": sorted(fields["merchants"])}, numbers


def test_saved_states_cut_short_or_padded_are_refused() -> None:
    online = OnlineFeatures()
    online.update(frame([{}]).to_dict("records")[0])
    data = online.saved_state("u1")
    restored = OnlineFeatures()
    restored.restore("u1", data)
    assert restored.saved_state("u1") == data
    for bad in (data[:-8], data + b"\0" * 8, data.split(b"\n", 1)[0]):
        with pytest.raises(FinriskError, match=r"u1.*(cut short|unreadable)"):
            OnlineFeatures().restore("u1", bad)


def test_batch_features_match_the_separate_calls() -> None:
    df = frame([{"amount": a} for a in (5.0, 50.0, 500.0)])
    tx, users = batch_features(df)
    pd.testing.assert_frame_equal(tx, transaction_features(df))
    pd.testing.assert_frame_equal(users, user_features(df))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda df: df.drop(columns="merchant"), "merchant"),
        (lambda df: df.assign(amount=[10.0, -1.0]), "amount"),
        (lambda df: df.assign(direction=["debit", "sideways"]), "sideways"),
        (lambda df: df.assign(timestamp=["2024-01-01", "not a time"]), "timestamp"),
        (lambda df: df.assign(balance_after=[1.0, None]), "balance_after"),
        (lambda df: df.iloc[:0], "empty"),
    ],
)
def test_bad_frames_get_a_clear_error(change: Any, message: str) -> None:
    with pytest.raises(FinriskError, match=message):
        transaction_features(change(frame([{}, {}])))


def test_online_rejects_bad_transactions() -> None:
    online = OnlineFeatures()
    good = frame([{}]).to_dict("records")[0]
    with pytest.raises(FinriskError, match="merchant"):
        online.update({k: v for k, v in good.items() if k != "merchant"})
    with pytest.raises(FinriskError, match="amount"):
        online.update({**good, "amount": 0.0})
    with pytest.raises(FinriskError, match="direction"):
        online.update({**good, "direction": "up"})
    with pytest.raises(FinriskError, match="timestamp"):
        online.update({**good, "timestamp": "yesterday"})
    with pytest.raises(FinriskError, match="u9"):
        online.user_features("u9")
    online.update(good)
    with pytest.raises(FinriskError, match="unreadable"):
        online.restore("u1", b"{not json")
    with pytest.raises(FinriskError, match="version"):
        online.restore("u1", b'{"version": 99}')


def test_online_late_transaction_does_not_rewind_windows() -> None:
    online = OnlineFeatures()
    base = frame([{}]).to_dict("records")[0]
    online.update(base)
    online.update({**base, "transaction_id": "t1", "timestamp": START + pd.Timedelta(hours=30)})
    late = online.update({**base, "transaction_id": "t2", "timestamp": START})
    assert late["log_seconds_since_prev"] == 0.0
    # The clock stays at +30 h: the transaction at START has expired from the 24 h window.
    assert late["tx_count_24h"] == 2.0


def test_online_windows_expire_from_their_head_in_arrival_order() -> None:
    # A late entry sits behind newer ones: it leaves a window only once everything that
    # arrived before it has (a search by time would assume the entries sorted).
    online = OnlineFeatures()
    base = frame([{}]).to_dict("records")[0]
    minutes = (0, 50, -30, 65)  # the third arrives late
    counts = [
        online.update(
            {**base, "transaction_id": f"t{i}", "timestamp": START + pd.Timedelta(minutes=m)}
        )["tx_count_1h"]
        for i, m in enumerate(minutes)
    ]
    # At +65 min only the head (at 0) has expired; the late one (at -30) stays counted.
    assert counts == [1.0, 2.0, 3.0, 3.0]


def test_timestamp_forms() -> None:
    moment = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    expected = int(pd.Timestamp(moment).value)
    assert to_ns(int(moment.timestamp() * 1000)) == expected
    assert to_ns(moment) == expected
    assert to_ns(moment.replace(tzinfo=None)) == expected
    assert to_ns(pd.Timestamp(moment)) == expected
    assert to_ns("2024-05-06T07:08:09.123Z") == expected
    assert to_ns("2024-05-06T09:08:09.123+02:00") == expected
    assert to_ns(moment.astimezone(timezone(timedelta(hours=-5)))) == expected
    with pytest.raises(FinriskError):
        to_ns(None)


def test_categorical_and_integer_columns_give_the_same_features() -> None:
    df = frame([{"user_id": "u2", "merchant": "b"}, {"user_id": "u1"}, {"category": "dining"}])
    as_categories = df.astype({c: "category" for c in ("user_id", "category", "merchant")})
    pd.testing.assert_frame_equal(transaction_features(as_categories), transaction_features(df))
    users = user_features(as_categories)
    assert users.index.tolist() == ["u1", "u2"]
    pd.testing.assert_frame_equal(users, user_features(df), check_index_type=False)
