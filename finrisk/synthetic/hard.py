"""The hard scenario: legitimate look-alikes of fraud, and fraud that looks legitimate.

`generate(..., scenario="hard")` (docs/synthetic-data.md, "The hard scenario"). On the default
data a detector that reads the raw fields alone (amount, hour, category, channel) already
finds most fraud: every default kind is odd in itself (tiny online charges, large purchases at
night, transfers that empty the account). Here what is odd in itself is often legitimate, and
the fraud is odd only against the user's own history or other users':

Legitimate look-alikes (`is_fraud` 0; which rows they are is kept in the ledger's `pattern`
and counted in the manifest):
- travel_abroad: an online booking, then days of card-present purchases and cash withdrawals
  at merchants new to the user, at hours shifted by a time zone (the schema has no country:
  abroad shows as new merchants at odd hours);
- large_planned_purchase: one purchase of 6-20x the user's usual amount, in electronics,
  travel or shopping, at a merchant new to the user;
- holiday_burst: on holidays (and rarely on other days) a run of purchases minutes apart at
  merchants new to the user, gift cards among them;
- salary_day_spike: on payday, several purchases of 2-5x the usual amount and a transfer out.

Harder fraud (`is_fraud` 1, with its own `fraud_type`), in place of most of the default kinds
(which stay at a fifth of their share):
- slow_card_testing: one or two tiny online charges a day for 5-14 days at the user's usual
  hours, at merchants new to the user, then sometimes a purchase of an ordinary size;
- mimicking_takeover: purchases in the user's own categories at their usual hours, 2-4x
  their usual amount, online at merchants new to them, tens of minutes apart;
- merchant_compromise: a popular merchant's card data is stolen; for days the fraudster
  charges its customers and others, one or two ordinary-sized online charges each, at
  that merchant.

Everything the scenario draws comes from its own random stream (seeded by the dataset's seed),
so the default data (no scenario) is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from finrisk.schema import (
    ACCOUNT_TAKEOVER,
    BALANCE_DRAIN,
    CARD_TESTING,
    MERCHANT_COMPROMISE,
    MIMICKING_TAKEOVER,
    SLOW_CARD_TESTING,
    VELOCITY_SPIKE,
)
from finrisk.synthetic.fraud import (
    DAY,
    FRAUD_CODE,
    DayState,
    account_takeover,
    balance_drain,
    card_testing,
    new_merchant,
    offsets,
    velocity_spike,
)
from finrisk.synthetic.ledger import Ledger
from finrisk.synthetic.merchants import MerchantPool
from finrisk.synthetic.population import (
    CAT,
    CHAN,
    SPEND_CAT,
    SPEND_MEDIAN,
    SPENDING,
    Population,
    salary_due,
)

HARD = "hard"
# Kept apart from the generator's stream, the labels' and the drift scenario's.
HARD_STREAM = 1_000_037

TRAVEL_ABROAD = "travel_abroad"
LARGE_PLANNED_PURCHASE = "large_planned_purchase"
HOLIDAY_BURST = "holiday_burst"
SALARY_DAY_SPIKE = "salary_day_spike"
LOOK_ALIKES: tuple[str, ...] = (
    TRAVEL_ABROAD,
    LARGE_PLANNED_PURCHASE,
    HOLIDAY_BURST,
    SALARY_DAY_SPIKE,
)
PATTERN_CODE = {name: i + 1 for i, name in enumerate(LOOK_ALIKES)}  # 0 = none

# Per user-day (travel, large purchases, bursts off holidays) or per payday (salary spikes).
TRIP_RATE = 0.002
LARGE_PURCHASE_RATE = 0.003
HOLIDAY_BURST_RATE = 0.06  # on a holiday
OTHER_DAY_BURST_RATE = 0.001
SALARY_SPIKE_RATE = 0.2
# (month, day): when shops are busy and people buy at shops they never use.
HOLIDAYS: tuple[tuple[int, int], ...] = (
    (1, 1), (2, 14), (3, 17), (4, 18), (4, 21), (5, 1), (7, 4), (10, 31), (11, 28),
    (11, 29), (12, 24), (12, 26), (12, 31),
)  # fmt: skip

# Fraud: the mix of kinds for the episodes the generator starts (at its default rate, per
# user-day). The default kinds keep a fifth of their share: fraud teams still see them.
HARD_EPISODE_MIX = {
    SLOW_CARD_TESTING: 0.4,
    MIMICKING_TAKEOVER: 0.4,
    CARD_TESTING: 0.06,
    ACCOUNT_TAKEOVER: 0.06,
    BALANCE_DRAIN: 0.04,
    VELOCITY_SPIKE: 0.04,
}
COMPROMISE_EVENT_RATE = 1 / 20  # per day: a new compromised merchant
COMPROMISE_DAYS = (3, 8)  # how long the fraudster uses its data, [low, high)
COMPROMISE_VICTIM_RATE = 0.001  # per user-day while a merchant is compromised
COMPROMISED_CATEGORIES: tuple[str, ...] = ("groceries", "dining", "shopping", "electronics")

_SPEND = [c.name for c in SPENDING]
_CARD_SPENDING = np.array(
    [i for i, c in enumerate(SPENDING) if c.name not in ("cash_withdrawal", "transfer_out")]
)


@dataclass
class HardScenario:
    rng: np.random.Generator
    n: int
    trip_left: np.ndarray = field(init=False)  # days of the trip still to come, per user
    trip_shift: np.ndarray = field(init=False)  # hours of the time zone abroad, per user
    testing_left: np.ndarray = field(init=False)  # days of slow card testing still to come
    compromised: list[tuple[int, int]] = field(default_factory=list)  # (merchant, last day)
    compromised_merchants: list[int] = field(default_factory=list)  # every one, in order
    look_alike_episodes: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.trip_left = np.zeros(self.n, dtype=np.int64)
        self.trip_shift = np.zeros(self.n)
        self.testing_left = np.zeros(self.n, dtype=np.int64)
        self.look_alike_episodes = dict.fromkeys(LOOK_ALIKES, 0)


def draw_hard(scenario: str | None, seed: int, users: int) -> HardScenario | None:
    return (
        HardScenario(np.random.default_rng([seed, HARD_STREAM]), users)
        if scenario == HARD
        else None
    )


def _typical(pop: Population, day: DayState, users: np.ndarray) -> np.ndarray:
    return day.scale[users] * pop.expected_purchase[users]


def _own_categories(rng: np.random.Generator, pop: Population, u: np.ndarray) -> np.ndarray:
    """Spending indices drawn from each user's own preferences, card spending only."""
    idx = np.minimum((rng.random(len(u))[:, None] > pop.prefs_cdf[u]).sum(axis=1), len(_SPEND) - 1)
    return np.where(np.isin(idx, _CARD_SPENDING), idx, _SPEND.index("shopping"))


def _travel(
    s: HardScenario, pool: MerchantPool, pop: Population, day: DayState, ledger: Ledger
) -> None:
    rng, code = s.rng, PATTERN_CODE[TRAVEL_ABROAD]
    leaving = np.flatnonzero((s.trip_left == 0) & (rng.random(s.n) < TRIP_RATE))
    s.look_alike_episodes[TRAVEL_ABROAD] += len(leaving)
    s.trip_left[leaving] = rng.integers(3, 11, len(leaving))
    s.trip_shift[leaving] = rng.choice([-9.0, -6.0, 6.0, 8.0, 9.0], len(leaving))
    travel = np.full(len(leaving), CAT["travel"])
    ledger.add(  # the booking, on the day of leaving
        leaving,
        day.start_second + rng.uniform(7, 22, len(leaving)) * 3600,
        pop.income[leaving] * rng.uniform(0.15, 0.45, len(leaving)),
        credit=False,
        category=travel,
        merchant=new_merchant(rng, pool, travel),
        channel=CHAN["online"],
        pattern=code,
    )
    away = np.flatnonzero(s.trip_left > 0)
    m = 2 + rng.poisson(2, len(away))
    u = np.repeat(away, m)
    idx = rng.choice(
        [_SPEND.index(c) for c in ("dining", "transport", "shopping", "entertainment")],
        len(u),
        p=[0.45, 0.25, 0.2, 0.1],
    )
    hour = (rng.normal(pop.hour_peak[u], 2.5) + s.trip_shift[u]) % 24
    cat = SPEND_CAT[idx]
    ledger.add(
        u,
        day.start_second + hour * 3600,
        SPEND_MEDIAN[idx] * day.scale[u] * rng.lognormal(0.3, 0.6, len(u)),
        credit=False,
        category=cat,
        merchant=new_merchant(rng, pool, cat),
        channel=CHAN["card_present"],
        pattern=code,
    )
    cash = away[rng.random(len(away)) < 0.35]
    atm = np.full(len(cash), CAT["cash_withdrawal"])
    ledger.add(
        cash,
        day.start_second
        + ((rng.normal(pop.hour_peak[cash], 2.5) + s.trip_shift[cash]) % 24) * 3600,
        np.round(rng.lognormal(np.log(150), 0.5, len(cash)) / 20) * 20 + 20,
        credit=False,
        category=atm,
        merchant=new_merchant(rng, pool, atm),
        channel=CHAN["atm"],
        pattern=code,
    )
    s.trip_left[away] -= 1


def _large_purchases(
    s: HardScenario, pool: MerchantPool, pop: Population, day: DayState, ledger: Ledger
) -> None:
    rng = s.rng
    users = np.flatnonzero(rng.random(s.n) < LARGE_PURCHASE_RATE)
    s.look_alike_episodes[LARGE_PLANNED_PURCHASE] += len(users)
    idx = rng.choice([_SPEND.index(c) for c in ("electronics", "travel", "shopping")], len(users))
    cat = SPEND_CAT[idx]
    ledger.add(
        users,
        day.start_second + np.clip(rng.normal(pop.hour_peak[users], 2.0), 8, 22) * 3600,
        _typical(pop, day, users) * rng.uniform(6, 20, len(users)),
        credit=False,
        category=cat,
        merchant=new_merchant(rng, pool, cat),
        channel=np.where(rng.random(len(users)) < 0.6, CHAN["online"], CHAN["card_present"]),
        pattern=PATTERN_CODE[LARGE_PLANNED_PURCHASE],
    )


def _holiday_bursts(
    s: HardScenario,
    pool: MerchantPool,
    pop: Population,
    day: DayState,
    date: pd.Timestamp,
    ledger: Ledger,
) -> None:
    rng = s.rng
    rate = HOLIDAY_BURST_RATE if (date.month, date.day) in HOLIDAYS else OTHER_DAY_BURST_RATE
    users = np.flatnonzero(rng.random(s.n) < rate)
    s.look_alike_episodes[HOLIDAY_BURST] += len(users)
    m = 5 + rng.poisson(4, len(users))
    u = np.repeat(users, m)
    start = np.clip(rng.normal(pop.hour_peak[users], 1.5), 9, 16) * 3600
    t = np.repeat(day.start_second + start, m) + offsets(rng, m, 15 * 60, 60)
    idx = rng.choice(
        [_SPEND.index(c) for c in ("shopping", "gift_cards", "electronics", "dining")],
        len(u),
        p=[0.5, 0.2, 0.15, 0.15],
    )
    cat = SPEND_CAT[idx]
    ledger.add(
        u,
        np.minimum(t, day.start_second + DAY - 1),
        SPEND_MEDIAN[idx] * day.scale[u] * rng.lognormal(0.2, 0.6, len(u)),
        credit=False,
        category=cat,
        merchant=new_merchant(rng, pool, cat),
        channel=np.where(rng.random(len(u)) < 0.5, CHAN["online"], CHAN["card_present"]),
        pattern=PATTERN_CODE[HOLIDAY_BURST],
    )


def _salary_spikes(
    s: HardScenario,
    pool: MerchantPool,
    pop: Population,
    day: DayState,
    day_index: int,
    date: pd.Timestamp,
    ledger: Ledger,
) -> None:
    rng, code = s.rng, PATTERN_CODE[SALARY_DAY_SPIKE]
    users = np.flatnonzero(
        salary_due(pop, day_index, date.day) & (rng.random(s.n) < SALARY_SPIKE_RATE)
    )
    s.look_alike_episodes[SALARY_DAY_SPIKE] += len(users)
    m = 3 + rng.poisson(2, len(users))
    u = np.repeat(users, m)
    # After the salary (credited 01:00-06:00), over the user's day.
    hour = np.clip(rng.normal(pop.hour_peak[u], 2.5), 7, 23)
    idx = _own_categories(rng, pop, u)
    cat = SPEND_CAT[idx]
    ledger.add(
        u,
        day.start_second + hour * 3600,
        SPEND_MEDIAN[idx] * day.scale[u] * rng.uniform(2, 5, len(u)),
        credit=False,
        category=cat,
        merchant=np.where(
            rng.random(len(u)) < 0.5,
            pop.favourites[u, idx, 0],
            new_merchant(rng, pool, cat),
        ),
        channel=np.where(rng.random(len(u)) < 0.5, CHAN["online"], CHAN["card_present"]),
        pattern=code,
    )
    out = np.full(len(users), CAT["transfer_out"])
    ledger.add(
        users,
        day.start_second + rng.uniform(8, 22, len(users)) * 3600,
        pop.income[users] * rng.uniform(0.1, 0.3, len(users)),
        credit=False,
        category=out,
        merchant=new_merchant(rng, pool, out),
        channel=CHAN["transfer"],
        pattern=code,
    )


def add_look_alikes(
    s: HardScenario,
    pool: MerchantPool,
    pop: Population,
    day: DayState,
    day_index: int,
    date: pd.Timestamp,
    ledger: Ledger,
) -> None:
    """The day's legitimate look-alikes of fraud, every kind."""
    _travel(s, pool, pop, day, ledger)
    _large_purchases(s, pool, pop, day, ledger)
    _holiday_bursts(s, pool, pop, day, date, ledger)
    _salary_spikes(s, pool, pop, day, day_index, date, ledger)


def _slow_card_testing(
    s: HardScenario, pool: MerchantPool, pop: Population, day: DayState, ledger: Ledger
) -> None:
    """One or two charges today for every user whose card is being tested."""
    rng, code = s.rng, FRAUD_CODE[SLOW_CARD_TESTING]
    testing = np.flatnonzero(s.testing_left > 0)
    m = 1 + (rng.random(len(testing)) < 0.4)
    u = np.repeat(testing, m)
    cat = np.array([CAT[c] for c in ("shopping", "entertainment", "subscriptions")])[
        rng.choice(3, len(u), p=[0.5, 0.3, 0.2])
    ]
    hour = np.clip(rng.normal(pop.hour_peak[u], pop.hour_spread[u]), 0, 23.9)
    ledger.add(
        u,
        day.start_second + hour * 3600,
        rng.uniform(0.5, 4.99, len(u)),
        credit=False,
        category=cat,
        merchant=new_merchant(rng, pool, cat),
        channel=CHAN["online"],
        fraud=code,
    )
    s.testing_left[testing] -= 1
    # The test passed: sometimes the card is used at once, for an ordinary-sized purchase.
    done = testing[(s.testing_left[testing] == 0) & (rng.random(len(testing)) < 0.5)]
    idx = _own_categories(rng, pop, done)
    cat = SPEND_CAT[idx]
    ledger.add(
        done,
        day.start_second + np.clip(rng.normal(pop.hour_peak[done], 2.0), 0, 23.9) * 3600,
        SPEND_MEDIAN[idx] * day.scale[done] * rng.lognormal(0.5, 0.4, len(done)),
        credit=False,
        category=cat,
        merchant=new_merchant(rng, pool, cat),
        channel=CHAN["online"],
        fraud=code,
    )


def _mimicking_takeover(
    s: HardScenario,
    pool: MerchantPool,
    pop: Population,
    users: np.ndarray,
    day: DayState,
    ledger: Ledger,
) -> None:
    rng = s.rng
    m = 2 + rng.poisson(1.5, len(users))
    u = np.repeat(users, m)
    start = np.clip(rng.normal(pop.hour_peak[users], pop.hour_spread[users]), 0, 20)
    t = np.repeat(day.start_second + start * 3600, m) + offsets(rng, m, 40 * 60, 5 * 60)
    idx = _own_categories(rng, pop, u)
    cat = SPEND_CAT[idx]
    ledger.add(
        u,
        np.minimum(t, day.start_second + DAY - 1),
        SPEND_MEDIAN[idx] * day.scale[u] * rng.uniform(2, 4, len(u)),
        credit=False,
        category=cat,
        merchant=new_merchant(rng, pool, cat),
        channel=CHAN["online"],
        fraud=FRAUD_CODE[MIMICKING_TAKEOVER],
    )


def add_fraud(
    s: HardScenario,
    pool: MerchantPool,
    pop: Population,
    victims: np.ndarray,
    day: DayState,
    ledger: Ledger,
) -> np.ndarray:
    """Start one episode per victim (kinds per HARD_EPISODE_MIX), carry on the slow card
    tests under way; returns each victim's fraud code."""
    rng = s.rng
    kinds = list(HARD_EPISODE_MIX)
    codes = np.array([FRAUD_CODE[k] for k in kinds])[
        rng.choice(len(kinds), len(victims), p=list(HARD_EPISODE_MIX.values()))
    ]
    testing = victims[(codes == FRAUD_CODE[SLOW_CARD_TESTING]) & (s.testing_left[victims] == 0)]
    s.testing_left[testing] = rng.integers(5, 15, len(testing))
    _slow_card_testing(s, pool, pop, day, ledger)
    _mimicking_takeover(s, pool, pop, victims[codes == FRAUD_CODE[MIMICKING_TAKEOVER]], day, ledger)
    card_testing(rng, pool, victims[codes == FRAUD_CODE[CARD_TESTING]], day, ledger)
    account_takeover(rng, pool, pop, victims[codes == FRAUD_CODE[ACCOUNT_TAKEOVER]], day, ledger)
    balance_drain(rng, pool, pop, victims[codes == FRAUD_CODE[BALANCE_DRAIN]], day, ledger)
    velocity_spike(rng, pool, pop, victims[codes == FRAUD_CODE[VELOCITY_SPIKE]], day, ledger)
    return codes


def add_compromise(
    s: HardScenario, pool: MerchantPool, pop: Population, day: DayState, d: int, ledger: Ledger
) -> np.ndarray:
    """A merchant may be compromised today; every compromised one charges the day's victims.
    Returns the victims (one episode each)."""
    rng = s.rng
    if rng.random() < COMPROMISE_EVENT_RATE:
        category = CAT[COMPROMISED_CATEGORIES[rng.integers(len(COMPROMISED_CATEGORIES))]]
        # A popular merchant: many users' favourite, so for many victims not a new one.
        merchant = int(pool.popular(np.array([category]), rng.random(1))[0])
        s.compromised.append((merchant, d + int(rng.integers(*COMPROMISE_DAYS)) - 1))
        s.compromised_merchants.append(merchant)
    all_victims = []
    for merchant, _ in s.compromised:
        victims = np.flatnonzero(rng.random(s.n) < COMPROMISE_VICTIM_RATE)
        m = 1 + (rng.random(len(victims)) < 0.3)
        u = np.repeat(victims, m)
        category = int(np.searchsorted(pool.offset, merchant, side="right") - 1)
        median = SPEND_MEDIAN[list(SPEND_CAT).index(category)]
        ledger.add(
            u,
            day.start_second + rng.uniform(0, DAY, len(u)),
            median * day.scale[u] * rng.lognormal(0.3, 0.5, len(u)),
            credit=False,
            category=category,
            merchant=merchant,
            channel=CHAN["online"],
            fraud=FRAUD_CODE[MERCHANT_COMPROMISE],
        )
        all_victims.append(victims)
    s.compromised = [(m, last) for m, last in s.compromised if last > d]
    return np.concatenate(all_victims) if all_victims else np.zeros(0, dtype=np.int64)
