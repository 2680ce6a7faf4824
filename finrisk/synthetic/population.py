"""Users of the synthetic bank: a latent financial health and everything it shapes.

All attributes are arrays over users, drawn in one vectorised pass from one generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from finrisk.schema import CATEGORIES, CHANNELS
from finrisk.synthetic.merchants import MerchantPool

CAT = {name: i for i, name in enumerate(CATEGORIES)}
CHAN = {name: i for i, name in enumerate(CHANNELS)}


@dataclass(frozen=True)
class SpendCategory:
    name: str
    median: float  # amount at spending scale 1
    sigma: float  # log-normal spread of one purchase
    alpha: float  # baseline preference weight
    tilt: float  # extra preference per unit of *poor* health
    channels: dict[str, float]

    @property
    def mean(self) -> float:
        return self.median * float(np.exp(self.sigma**2 / 2))


# Day-to-day (discretionary) spending. Unhealthy users lean to cash, gift cards, gambling-like
# entertainment and transfers out: behaviour that carries signal without being a rule.
SPENDING: tuple[SpendCategory, ...] = (
    SpendCategory("groceries", 42, 0.6, 6.0, 0.0, {"card_present": 0.88, "online": 0.12}),
    SpendCategory("dining", 22, 0.55, 4.0, 0.0, {"card_present": 0.8, "online": 0.2}),
    SpendCategory("transport", 14, 0.7, 3.0, 0.0, {"card_present": 0.55, "online": 0.45}),
    SpendCategory("shopping", 38, 0.9, 3.0, 0.1, {"card_present": 0.45, "online": 0.55}),
    SpendCategory("entertainment", 28, 0.8, 1.5, 0.35, {"card_present": 0.4, "online": 0.6}),
    SpendCategory("health", 32, 0.8, 0.8, 0.0, {"card_present": 0.8, "online": 0.2}),
    SpendCategory("travel", 160, 0.9, 0.3, 0.0, {"card_present": 0.15, "online": 0.85}),
    SpendCategory("electronics", 110, 0.9, 0.3, 0.1, {"card_present": 0.4, "online": 0.6}),
    SpendCategory("gift_cards", 40, 0.6, 0.15, 0.6, {"card_present": 0.5, "online": 0.5}),
    SpendCategory("cash_withdrawal", 70, 0.6, 1.2, 0.4, {"atm": 1.0}),
    SpendCategory("transfer_out", 110, 0.9, 0.8, 0.3, {"transfer": 1.0}),
)
SPEND_CAT = np.array([CAT[c.name] for c in SPENDING], dtype=np.int64)
SPEND_MEAN = np.array([c.mean for c in SPENDING])
SPEND_MEDIAN = np.array([c.median for c in SPENDING])
SPEND_SIGMA = np.array([c.sigma for c in SPENDING])
# Cumulative channel probabilities per spending category, in CHANNELS order.
SPEND_CHANNEL_CDF = np.cumsum(
    [[c.channels.get(ch, 0.0) for ch in CHANNELS] for c in SPENDING], axis=1
)

N_FAVOURITES = 6
N_UTILITIES = 2
MAX_SUBSCRIPTIONS = 5
SUBSCRIPTION_PRICES = np.array([4.99, 7.99, 9.99, 12.99, 15.99, 24.99, 39.99])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Population:
    n: int
    health0: np.ndarray  # latent financial health at the start, ~N(0, 1)
    health_slope: np.ndarray  # drift over the whole period
    income: np.ndarray  # monthly net income
    biweekly: np.ndarray  # bool: paid every 14 days, else monthly
    payday: np.ndarray  # day of month (monthly) or phase 0..13 (biweekly)
    employer: np.ndarray  # merchant code
    rent: np.ndarray
    rent_day: np.ndarray
    landlord: np.ndarray
    utility_day: np.ndarray  # (n, N_UTILITIES)
    utility_amount: np.ndarray
    utility_merchant: np.ndarray
    sub_day: np.ndarray  # (n, MAX_SUBSCRIPTIONS); day 0 = no subscription in that slot
    sub_amount: np.ndarray
    sub_merchant: np.ndarray
    opening_balance: np.ndarray
    activity: np.ndarray  # discretionary purchases per day
    prefs_cdf: np.ndarray  # (n, len(SPENDING)) cumulative category preferences
    expected_purchase: np.ndarray  # mean purchase at scale 1 under the user's preferences
    favourites: np.ndarray  # (n, len(SPENDING), N_FAVOURITES) merchant codes
    contacts: np.ndarray  # (n, 3) transfer_in counterparties
    hour_peak: np.ndarray
    hour_spread: np.ndarray
    spend_ratio0: np.ndarray  # monthly outflow / income at health0

    @property
    def fixed_monthly(self) -> np.ndarray:
        return (
            self.rent
            + self.utility_amount.sum(axis=1)
            + np.where(self.sub_day > 0, self.sub_amount, 0.0).sum(axis=1)
        )


def salary_due(pop: Population, day_index: int, day_of_month: int) -> np.ndarray:
    """Bool per user: the salary falls due that day (monthly on the payday, or every 14 days)."""
    return np.where(pop.biweekly, (day_index + pop.payday) % 14 == 0, pop.payday == day_of_month)


def draw_population(rng: np.random.Generator, n: int, pool: MerchantPool) -> Population:
    h0 = rng.normal(0.0, 1.0, n)
    slope = rng.normal(0.0, 1.0, n)
    income = np.round(np.exp(np.log(3200) + 0.2 * h0 + rng.normal(0, 0.3, n)), -1)
    biweekly = rng.random(n) < 0.3
    payday = np.where(biweekly, rng.integers(0, 14, n), rng.choice([1, 15, 25, 28], n))

    def codes(category: str, shape: int | tuple[int, ...]) -> np.ndarray:
        c = np.full(shape, CAT[category])
        return pool.popular(c, rng.random(shape))

    employer = codes("salary", n)
    rent_share = np.clip(0.30 - 0.04 * h0 + rng.normal(0, 0.06, n), 0.12, 0.6)
    rent = np.round(income * rent_share, 0)
    rent_day = rng.integers(1, 6, n)
    landlord = codes("rent", n)

    utility_day = rng.integers(1, 29, (n, N_UTILITIES))
    utility_amount = income[:, None] * rng.uniform(0.012, 0.03, (n, N_UTILITIES))
    utility_merchant = codes("utilities", (n, N_UTILITIES))

    n_subs = np.minimum(rng.poisson(2.0, n), MAX_SUBSCRIPTIONS)
    sub_day = rng.integers(1, 29, (n, MAX_SUBSCRIPTIONS))
    sub_day[np.arange(MAX_SUBSCRIPTIONS)[None, :] >= n_subs[:, None]] = 0
    sub_amount = rng.choice(SUBSCRIPTION_PRICES, (n, MAX_SUBSCRIPTIONS))
    sub_merchant = codes("subscriptions", (n, MAX_SUBSCRIPTIONS))

    opening = np.round(income * np.exp(rng.normal(0.2 + 0.5 * h0, 0.6)), 2)
    activity = np.exp(rng.normal(np.log(2.3), 0.45, n))

    alpha = np.array([c.alpha for c in SPENDING])
    tilt = np.array([c.tilt for c in SPENDING])
    weights = rng.gamma(alpha[None, :] * 1.5 * np.exp(-tilt[None, :] * h0[:, None]))
    prefs = weights / weights.sum(axis=1, keepdims=True)
    prefs_cdf = np.cumsum(prefs, axis=1)
    prefs_cdf[:, -1] = 1.0

    fav_cat = np.broadcast_to(SPEND_CAT[None, :, None], (n, len(SPENDING), N_FAVOURITES))
    favourites = pool.popular(fav_cat, rng.random(fav_cat.shape))
    contacts = codes("transfer_in", (n, 3))

    return Population(
        n=n,
        health0=h0,
        health_slope=slope,
        income=income,
        biweekly=biweekly,
        payday=payday,
        employer=employer,
        rent=rent,
        rent_day=rent_day,
        landlord=landlord,
        utility_day=utility_day,
        utility_amount=utility_amount,
        utility_merchant=utility_merchant,
        sub_day=sub_day,
        sub_amount=sub_amount,
        sub_merchant=sub_merchant,
        opening_balance=opening,
        activity=activity,
        prefs_cdf=prefs_cdf,
        expected_purchase=prefs @ SPEND_MEAN,
        favourites=favourites,
        contacts=contacts,
        hour_peak=np.clip(rng.normal(14.5, 2.5, n), 8, 21),
        hour_spread=rng.uniform(2.5, 4.5, n),
        spend_ratio0=0.97 - 0.05 * h0 + rng.normal(0, 0.09, n),
    )
