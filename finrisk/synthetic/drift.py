"""The drift scenario: from a given day, fraud the models never saw and a spending shift.

`generate(..., scenario="drift", drift_day=D)` (docs/synthetic-data.md, "The drift scenario"):

- a new fraud kind, `gift_card_scam`: a victim talked into buying gift cards (a scammer on the
  phone "protecting the account") buys 3 or more in person (card present), at their own usual
  hours, tens of minutes apart, for round sums of 50 to a few hundred, at shops new to them.
  Every earlier kind is online, at night, seconds to minutes apart, or a transfer: a detector
  that learnt those misses it, yet its transactions are plain in the features (a gift card,
  card present, at a new merchant, far above the user's usual amount) once labelled;
- a legitimate spending shift: `SHIFTED_SHARE` of users spend `SHIFT_FACTOR` times more on
  everyday categories and pay for them online (delivery apps replacing the shop round), so the
  population itself drifts. Smaller shifts (30% of users, 1.5-2x in four categories) moved no
  monitored feature's PSI above 0.14 in a 1,000-transaction window: no major shift to catch.

Everything the scenario draws comes from its own random stream (seeded by the dataset's seed),
and nothing changes before the drift day: the days before it are those of the default data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from finrisk.errors import FinriskError
from finrisk.schema import GIFT_CARD_SCAM
from finrisk.synthetic.fraud import DAY, FRAUD_CODE, DayState, new_merchant, offsets
from finrisk.synthetic.hard import HARD
from finrisk.synthetic.ledger import Ledger
from finrisk.synthetic.merchants import MerchantPool
from finrisk.synthetic.population import CAT, CHAN, SPENDING, Population

DRIFT = "drift"
# Every scenario of the generator: this one and the hard one (finrisk.synthetic.hard).
SCENARIOS: tuple[str, ...] = (DRIFT, HARD)
# Kept apart from the generator's stream (and the labels', finrisk.synthetic.labels).
DRIFT_STREAM = 1_000_033

SHIFTED_SHARE = 0.5
SHIFT_FACTOR = (2.0, 3.0)  # uniform per shifted user
SHIFTED_CATEGORIES: tuple[str, ...] = (
    "groceries", "dining", "transport", "shopping", "entertainment", "travel",
)  # fmt: skip
# Scam episodes per user-day from the drift day on: as often as all the older kinds together,
# so that the new kind is a real share of the fraud after the shift.
SCAM_EPISODE_RATE = 0.0019


def default_drift_day(days: int) -> int:
    """Half-way: as much history before the shift as after it."""
    return days // 2


@dataclass(frozen=True)
class DriftScenario:
    day: int  # the first drifted day (0-based; 0: drifted from the start)
    shifted: np.ndarray  # bool per user: spends more from `day` on
    # (users, len(SPENDING)) multiplier of everyday purchase amounts from `day` on; where it is
    # above 1, the purchase is made online.
    factor: np.ndarray
    rng: np.random.Generator

    def amount_factor(self, day: int) -> np.ndarray | None:
        return self.factor if day >= self.day else None


def draw_scenario(
    scenario: str | None, drift_day: int | None, seed: int, users: int, days: int
) -> DriftScenario | None:
    """The scenario's users and factors, or None for the default data and other scenarios."""
    if scenario is not None and scenario not in SCENARIOS:
        raise FinriskError(f"unknown scenario {scenario!r}: one of {list(SCENARIOS)}")
    if scenario != DRIFT:
        if drift_day is not None:
            raise FinriskError("--drift-day needs --scenario drift")
        return None
    day = default_drift_day(days) if drift_day is None else drift_day
    if not 0 <= day < days:
        raise FinriskError(f"--drift-day must be in [0, {days - 1}] for {days} days, got {day}")
    rng = np.random.default_rng([seed, DRIFT_STREAM])
    shifted = rng.random(users) < SHIFTED_SHARE
    per_user = rng.uniform(*SHIFT_FACTOR, users)
    categories = np.isin([c.name for c in SPENDING], SHIFTED_CATEGORIES)
    factor = np.where(shifted[:, None] & categories[None, :], per_user[:, None], 1.0)
    return DriftScenario(day=day, shifted=shifted, factor=factor, rng=rng)


def gift_card_scam(
    rng: np.random.Generator,
    pool: MerchantPool,
    pop: Population,
    users: np.ndarray,
    day: DayState,
    ledger: Ledger,
) -> None:
    k = len(users)
    m = 3 + rng.poisson(2, k)
    u = np.repeat(users, m)
    hour = np.clip(rng.normal(pop.hour_peak[users], 1.5), 9, 18)
    t = np.repeat(day.start_second + hour * 3600, m) + offsets(rng, m, 40 * 60, 15 * 60)
    amount = np.maximum(np.round(rng.lognormal(np.log(200), 0.45, len(u)) / 50) * 50, 50)
    cat = np.full(len(u), CAT["gift_cards"])
    ledger.add(
        u,
        np.minimum(t, day.start_second + DAY - 1),
        amount,
        credit=False,
        category=cat,
        merchant=new_merchant(rng, pool, cat),
        channel=CHAN["card_present"],
        fraud=FRAUD_CODE[GIFT_CARD_SCAM],
    )


def add_scams(
    scenario: DriftScenario,
    pool: MerchantPool,
    pop: Population,
    day: DayState,
    ledger: Ledger,
) -> np.ndarray:
    """The day's scam victims (from the drift day on), each with one episode added."""
    victims = np.flatnonzero(scenario.rng.random(pop.n) < SCAM_EPISODE_RATE)
    gift_card_scam(scenario.rng, pool, pop, victims, day, ledger)
    return victims
