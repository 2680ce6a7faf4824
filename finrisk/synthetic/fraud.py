"""Labelled fraud episodes, each kind with the footprint investigators know it by.

- card_testing: a burst of tiny online charges at merchants new to the user, seconds apart,
  sometimes followed by a large cash-out purchase.
- account_takeover: a few large online purchases at night, in categories and at merchants the
  user does not use.
- balance_drain: one to four large transfers out / cash withdrawals that empty the account
  and run into the overdraft.
- velocity_spike: a dense run of ordinary-looking purchases within minutes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from finrisk.schema import (
    ACCOUNT_TAKEOVER,
    BALANCE_DRAIN,
    CARD_TESTING,
    FRAUD_TYPES,
    VELOCITY_SPIKE,
)
from finrisk.synthetic.ledger import Ledger
from finrisk.synthetic.merchants import MerchantPool
from finrisk.synthetic.population import (
    CAT,
    CHAN,
    SPEND_CAT,
    SPEND_CHANNEL_CDF,
    SPEND_MEDIAN,
    SPENDING,
    Population,
)

FRAUD_CODE = {name: i + 1 for i, name in enumerate(FRAUD_TYPES)}  # 0 = no fraud
EPISODE_MIX = {CARD_TESTING: 0.3, ACCOUNT_TAKEOVER: 0.3, BALANCE_DRAIN: 0.2, VELOCITY_SPIKE: 0.2}
DAY = 86_400


@dataclass(frozen=True)
class DayState:
    start_second: int
    balance: np.ndarray  # per user, currency units, before today's transactions
    scale: np.ndarray  # per user spending scale of an ordinary purchase


def offsets(rng: np.random.Generator, m: np.ndarray, mean_gap: float, min_gap: float) -> np.ndarray:
    """Seconds since the episode start for each of m[i] transactions of episode i (first at 0)."""
    gaps = min_gap + rng.exponential(mean_gap, int(m.sum()))
    cs = np.cumsum(gaps)
    starts = np.cumsum(m) - m
    return cs - np.repeat(cs[starts] - gaps[starts], m)


def new_merchant(rng: np.random.Generator, pool: MerchantPool, category: np.ndarray) -> np.ndarray:
    # Uniform over the whole category pool, not popularity-skewed: mostly merchants new to the user.
    position = (pool.size[category] * rng.random(len(category))).astype(np.int64)
    return pool.offset[category] + position


def _pick(rng: np.random.Generator, names: list[str], p: list[float], size: int) -> np.ndarray:
    return np.array([CAT[n] for n in names])[rng.choice(len(names), size, p=p)]


def card_testing(
    rng: np.random.Generator, pool: MerchantPool, users: np.ndarray, day: DayState, ledger: Ledger
) -> None:
    k = len(users)
    m = 5 + rng.poisson(7, k)
    u = np.repeat(users, m)
    t0 = day.start_second + rng.uniform(0, DAY, k)
    t = np.repeat(t0, m) + offsets(rng, m, 40, 2)
    cat = _pick(
        rng,
        ["shopping", "entertainment", "gift_cards", "electronics"],
        [0.4, 0.25, 0.2, 0.15],
        len(u),
    )
    ledger.add(
        u,
        t,
        rng.uniform(0.3, 4.99, len(u)),
        credit=False,
        category=cat,
        merchant=new_merchant(rng, pool, cat),
        channel=CHAN["online"],
        fraud=FRAUD_CODE[CARD_TESTING],
    )
    cash_out = rng.random(k) < 0.5
    n_out = int(cash_out.sum())
    last = t[np.cumsum(m) - 1][cash_out]
    cat = _pick(rng, ["electronics", "gift_cards"], [0.6, 0.4], n_out)
    ledger.add(
        users[cash_out],
        last + 60 + rng.exponential(600, n_out),
        rng.lognormal(np.log(350), 0.6, n_out),
        credit=False,
        category=cat,
        merchant=new_merchant(rng, pool, cat),
        channel=CHAN["online"],
        fraud=FRAUD_CODE[CARD_TESTING],
    )


def account_takeover(
    rng: np.random.Generator,
    pool: MerchantPool,
    pop: Population,
    users: np.ndarray,
    day: DayState,
    ledger: Ledger,
) -> None:
    k = len(users)
    m = 2 + rng.poisson(2, k)
    u = np.repeat(users, m)
    t0 = day.start_second + rng.uniform(0.5, 5.0, k) * 3600  # small hours
    t = np.repeat(t0, m) + offsets(rng, m, 1200, 60)
    typical = day.scale[u] * pop.expected_purchase[u]
    amount = np.maximum(typical * rng.lognormal(np.log(8), 0.5, len(u)), 150)
    cat = _pick(
        rng, ["electronics", "gift_cards", "travel", "shopping"], [0.35, 0.3, 0.2, 0.15], len(u)
    )
    ledger.add(
        u,
        t,
        amount,
        credit=False,
        category=cat,
        merchant=new_merchant(rng, pool, cat),
        channel=CHAN["online"],
        fraud=FRAUD_CODE[ACCOUNT_TAKEOVER],
    )


def balance_drain(
    rng: np.random.Generator,
    pool: MerchantPool,
    pop: Population,
    users: np.ndarray,
    day: DayState,
    ledger: Ledger,
) -> None:
    k = len(users)
    m = 1 + rng.binomial(3, 0.5, k)
    episode = np.repeat(np.arange(k), m)
    u = users[episode]
    total = np.maximum(day.balance[users], 0) + pop.income[users] * rng.uniform(0.2, 0.5, k)
    share = rng.gamma(1.0, 1.0, len(u))
    share /= np.bincount(episode, weights=share, minlength=k)[episode]
    amount = total[episode] * share
    cash = rng.random(len(u)) < 0.3
    amount = np.where(cash, np.maximum(np.round(amount / 20) * 20, 20), np.maximum(amount, 20))
    cat = np.where(cash, CAT["cash_withdrawal"], CAT["transfer_out"])
    t0 = day.start_second + rng.uniform(0, DAY, k)
    t = np.repeat(t0, m) + offsets(rng, m, 480, 30)
    ledger.add(
        u,
        t,
        amount,
        credit=False,
        category=cat,
        merchant=new_merchant(rng, pool, cat),
        channel=np.where(cash, CHAN["atm"], CHAN["transfer"]),
        fraud=FRAUD_CODE[BALANCE_DRAIN],
    )


def velocity_spike(
    rng: np.random.Generator,
    pool: MerchantPool,
    pop: Population,
    users: np.ndarray,
    day: DayState,
    ledger: Ledger,
) -> None:
    k = len(users)
    m = 10 + rng.poisson(10, k)
    u = np.repeat(users, m)
    hour = np.clip(rng.normal(pop.hour_peak[users], pop.hour_spread[users]), 0, 23)
    t = np.repeat(day.start_second + hour * 3600, m) + offsets(rng, m, 90, 10)
    idx = (rng.random(len(u))[:, None] > pop.prefs_cdf[u]).sum(axis=1)
    idx = np.minimum(idx, len(SPENDING) - 1)
    # Card spending only: cash and transfers have their own fraud kind (balance_drain).
    card_only = np.isin(SPEND_CAT[idx], [CAT["cash_withdrawal"], CAT["transfer_out"]])
    idx = np.where(card_only, [c.name for c in SPENDING].index("shopping"), idx)
    amount = SPEND_MEDIAN[idx] * day.scale[u] * rng.lognormal(0.3, 0.6, len(u))
    channel = (rng.random(len(u))[:, None] > SPEND_CHANNEL_CDF[idx]).sum(axis=1)
    cat = SPEND_CAT[idx]
    ledger.add(
        u,
        t,
        amount,
        credit=False,
        category=cat,
        merchant=new_merchant(rng, pool, cat),
        channel=channel,
        fraud=FRAUD_CODE[VELOCITY_SPIKE],
    )


def add_episodes(
    rng: np.random.Generator,
    pool: MerchantPool,
    pop: Population,
    victims: np.ndarray,
    day: DayState,
    ledger: Ledger,
) -> np.ndarray:
    """Add one episode per victim; returns each victim's fraud code."""
    kinds = list(EPISODE_MIX)
    codes = np.array([FRAUD_CODE[k] for k in kinds])[
        rng.choice(len(kinds), len(victims), p=list(EPISODE_MIX.values()))
    ]
    card_testing(rng, pool, victims[codes == FRAUD_CODE[CARD_TESTING]], day, ledger)
    account_takeover(rng, pool, pop, victims[codes == FRAUD_CODE[ACCOUNT_TAKEOVER]], day, ledger)
    balance_drain(rng, pool, pop, victims[codes == FRAUD_CODE[BALANCE_DRAIN]], day, ledger)
    velocity_spike(rng, pool, pop, victims[codes == FRAUD_CODE[VELOCITY_SPIKE]], day, ledger)
    return codes
