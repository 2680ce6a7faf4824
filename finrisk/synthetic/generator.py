"""Day-by-day simulation of a bank's customers; see docs/synthetic-data.md for the model.

Vectorised over users: one loop iteration per simulated day, numpy arrays inside. One random
generator, used in a fixed order, makes the output a pure function of the arguments.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from finrisk.errors import FinriskError
from finrisk.schema import (
    AMOUNT,
    BALANCE_AFTER,
    CATEGORIES,
    CATEGORY,
    CHANNEL,
    CHANNELS,
    CREDIT,
    DEBIT,
    DIRECTION,
    FRAUD_TYPE,
    FRAUD_TYPES,
    GIFT_CARD_SCAM,
    IS_FRAUD,
    IS_RISKY,
    MERCHANT,
    MERCHANT_COMPROMISE,
    NO_FRAUD,
    TIMESTAMP,
    TRANSACTION_COLUMNS,
    TRANSACTION_ID,
    USER_ID,
)
from finrisk.synthetic.drift import (
    SCAM_EPISODE_RATE,
    SHIFT_FACTOR,
    SHIFTED_CATEGORIES,
    add_scams,
    draw_scenario,
)
from finrisk.synthetic.fraud import DAY, EPISODE_MIX, FRAUD_CODE, DayState, add_episodes
from finrisk.synthetic.hard import (
    HARD_EPISODE_MIX,
    LOOK_ALIKES,
    PATTERN_CODE,
    add_compromise,
    add_fraud,
    add_look_alikes,
    draw_hard,
)
from finrisk.synthetic.ledger import Ledger
from finrisk.synthetic.merchants import MerchantPool, build_pool
from finrisk.synthetic.population import (
    CAT,
    CHAN,
    N_FAVOURITES,
    SPEND_CAT,
    SPEND_CHANNEL_CDF,
    SPEND_MEDIAN,
    SPEND_SIGMA,
    SPENDING,
    Population,
    draw_population,
    salary_due,
    sigmoid,
)

# Bump when the same arguments would produce different data.
GENERATOR_VERSION = 1
DEFAULT_START = "2025-01-01"
# Episodes per user-day: gives roughly 0.5% fraudulent transactions.
DEFAULT_FRAUD_EPISODE_RATE = 0.0019
DAILY_HEALTH_VOLATILITY = 0.03
# Risk outcome: logit = RISK_INTERCEPT + RISK_SLOPE * final health + N(0, RISK_NOISE).
RISK_INTERCEPT = -2.2
RISK_SLOPE = -1.6
RISK_NOISE = 0.5
# Example transaction ids per look-alike kind in the hard scenario's manifest.
LOOK_ALIKE_EXAMPLES = 20

_CASH = [c.name for c in SPENDING].index("cash_withdrawal")
_SHOPPING = [c.name for c in SPENDING].index("shopping")
_ENTERTAINMENT = [c.name for c in SPENDING].index("entertainment")
_DISTRESS = np.array([_CASH, [c.name for c in SPENDING].index("gift_cards"), _ENTERTAINMENT])


def _ids(prefix: str, n: int) -> np.ndarray:
    width = max(6, len(str(max(n - 1, 0))))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)], dtype=object)


def _simulate_day(
    rng: np.random.Generator,
    pool: MerchantPool,
    pop: Population,
    ledger: Ledger,
    day_index: int,
    date: pd.Timestamp,
    health: np.ndarray,
    balance: np.ndarray,
    amount_factor: np.ndarray | None = None,
) -> np.ndarray:
    """Adds one day of ordinary transactions; returns each user's spending scale that day."""
    n = pop.n
    day0 = day_index * DAY
    dom = date.day
    everyone = np.arange(n)

    # Salary: monthly on the payday, or every 14 days; unhealthy users sometimes miss one.
    due = salary_due(pop, day_index, dom)
    paid = everyone[due & (rng.random(n) >= sigmoid(-4.0 - 2.0 * health))]
    volatility = 0.03 + 0.08 * sigmoid(-health[paid])
    amount = (
        pop.income[paid]
        * np.where(pop.biweekly[paid], 12 / 26, 1.0)
        * rng.lognormal(0.0, volatility)
    )
    ledger.add(
        paid,
        day0 + rng.uniform(1, 6, len(paid)) * 3600,
        amount,
        credit=True,
        category=CAT["salary"],
        merchant=pop.employer[paid],
        channel=CHAN["transfer"],
    )

    # Recurring bills, early in the morning.
    renters = everyone[pop.rent_day == dom]
    ledger.add(
        renters,
        day0 + rng.uniform(0, 8, len(renters)) * 3600,
        pop.rent[renters],
        credit=False,
        category=CAT["rent"],
        merchant=pop.landlord[renters],
        channel=CHAN["direct_debit"],
    )
    u, slot = np.nonzero(pop.utility_day == dom)
    ledger.add(
        u,
        day0 + rng.uniform(0, 8, len(u)) * 3600,
        pop.utility_amount[u, slot] * rng.lognormal(0.0, 0.15, len(u)),
        credit=False,
        category=CAT["utilities"],
        merchant=pop.utility_merchant[u, slot],
        channel=CHAN["direct_debit"],
    )
    u, slot = np.nonzero(pop.sub_day == dom)
    merchant = pop.sub_merchant[u, slot]
    ledger.add(
        u,
        day0 + rng.uniform(0, 8, len(u)) * 3600,
        pop.sub_amount[u, slot],
        credit=False,
        category=CAT["subscriptions"],
        merchant=merchant,
        channel=np.where(merchant % 2 == 0, CHAN["online"], CHAN["direct_debit"]),
    )

    # Everyday spending sized so that monthly outflow ~ spend_ratio * income; the ratio
    # worsens as health falls, and an overdraft makes disciplined (healthy) users hold back.
    spend_ratio = pop.spend_ratio0 - 0.05 * (health - pop.health0)
    budget = np.maximum(spend_ratio * pop.income - pop.fixed_monthly, 0.15 * pop.income)
    scale = budget / (30.44 * pop.activity * pop.expected_purchase)
    overdraft = np.maximum(-balance, 0.0)
    restraint = 1.0 / (1.0 + sigmoid(0.3 + 1.5 * health) * overdraft / (0.2 * pop.income))
    weekday_factor = 1.2 if date.weekday() >= 5 else 0.93
    count = rng.poisson(pop.activity * weekday_factor * restraint)
    u = np.repeat(everyone, count)
    k = len(u)
    idx = np.minimum((rng.random(k)[:, None] > pop.prefs_cdf[u]).sum(axis=1), len(SPENDING) - 1)
    # Distress: as health falls, purchases drift to cash, gift cards and betting.
    distressed = rng.random(k) < 0.4 * sigmoid(-2.0 - 2.0 * health[u])
    idx = np.where(distressed, rng.choice(_DISTRESS, k), idx)
    amount = SPEND_MEDIAN[idx] * scale[u] * np.exp(rng.normal(0.0, 1.0, k) * SPEND_SIGMA[idx])
    if amount_factor is not None:  # the drift scenario's spending shift
        amount = amount * amount_factor[u, idx]
    amount = np.where(idx == _CASH, np.maximum(np.round(amount / 10) * 10, 10), amount)
    hour = rng.normal(pop.hour_peak[u], pop.hour_spread[u])
    night_owl = rng.random(k) < 0.03
    hour = np.where(night_owl, rng.uniform(0, 24, k), hour) % 24
    channel = (rng.random(k)[:, None] > SPEND_CHANNEL_CDF[idx]).sum(axis=1)
    if amount_factor is not None:  # ...and the shifted users' shopping moves online
        channel = np.where(amount_factor[u, idx] > 1.0, CHAN["online"], channel)
    favourite = np.minimum(rng.geometric(0.4, k) - 1, N_FAVOURITES - 1)
    category = SPEND_CAT[idx]
    merchant = np.where(
        rng.random(k) < 0.8,
        pop.favourites[u, idx, favourite],
        pool.popular(category, rng.random(k)),
    )
    betting = distressed & (idx == _ENTERTAINMENT)
    merchant[betting] = rng.choice(pool.betting, int(betting.sum()))
    ledger.add(
        u,
        day0 + hour * 3600,
        amount,
        credit=False,
        category=category,
        merchant=merchant,
        channel=channel,
    )

    # Money in besides salary: occasional transfers, more often when overdrawn and struggling.
    p_in = 0.04 + 0.3 * (balance < 0) * sigmoid(-health)
    u = everyone[rng.random(n) < p_in]
    ledger.add(
        u,
        day0 + rng.uniform(8, 22, len(u)) * 3600,
        pop.income[u] * rng.lognormal(np.log(0.08), 0.7, len(u)),
        credit=True,
        category=CAT["transfer_in"],
        merchant=pop.contacts[u, rng.integers(0, 3, len(u))],
        channel=CHAN["transfer"],
    )
    u = everyone[rng.random(n) < 0.012]
    ledger.add(
        u,
        day0 + rng.uniform(8, 22, len(u)) * 3600,
        SPEND_MEDIAN[_SHOPPING] * scale[u] * rng.lognormal(0.0, 0.8, len(u)),
        credit=True,
        category=CAT["refund"],
        merchant=pool.popular(np.full(len(u), CAT["refund"]), rng.random(len(u))),
        channel=CHAN["online"],
    )
    return scale


def _assemble(
    ledger: Ledger, pool: MerchantPool, pop: Population, user_ids: np.ndarray, start: pd.Timestamp
) -> tuple[pd.DataFrame, np.ndarray]:
    """The transactions in file order, and each row's look-alike pattern code (0: none)."""
    col = ledger.columns()
    n = len(col["user"])
    seq = np.arange(n)
    # Balances: running sum per user in time order (ties broken by generation order).
    by_user = np.lexsort((seq, col["second"], col["user"]))
    signed = np.where(col["credit"], col["cents"], -col["cents"])[by_user]
    running = np.cumsum(signed)
    users_sorted = col["user"][by_user]
    first = np.ones(n, dtype=bool)
    first[1:] = users_sorted[1:] != users_sorted[:-1]
    before = np.zeros(pop.n, dtype=np.int64)
    before[users_sorted[first]] = (running - signed)[first]
    opening = np.round(pop.opening_balance * 100).astype(np.int64)
    balance = np.empty(n, dtype=np.int64)
    balance[by_user] = opening[users_sorted] + running - before[users_sorted]

    # File order: by time, then user, then generation order (a replayable stream).
    order = np.lexsort((seq, col["user"], col["second"]))
    fraud = col["fraud"][order].astype(np.int64)
    fraud_names = np.array((NO_FRAUD, *FRAUD_TYPES), dtype=object)
    ns = start.value + col["second"][order] * 1_000_000_000
    frame = pd.DataFrame(
        {
            TRANSACTION_ID: _ids("tx", n),
            USER_ID: user_ids[col["user"][order]],
            TIMESTAMP: pd.to_datetime(ns, unit="ns", utc=True),
            AMOUNT: col["cents"][order] / 100.0,
            DIRECTION: np.where(col["credit"][order], CREDIT, DEBIT).astype(object),
            CATEGORY: np.array(CATEGORIES, dtype=object)[col["category"][order]],
            MERCHANT: pool.names[col["merchant"][order]],
            CHANNEL: np.array(CHANNELS, dtype=object)[col["channel"][order]],
            BALANCE_AFTER: balance[order] / 100.0,
            IS_FRAUD: (fraud > 0).astype(np.int64),
            FRAUD_TYPE: fraud_names[fraud],
        },
        columns=list(TRANSACTION_COLUMNS),
        copy=False,  # no block consolidation: copying a million-row object block is slow
    )
    return frame, col["pattern"][order]


def generate(
    users: int,
    days: int,
    seed: int,
    start: str | pd.Timestamp = DEFAULT_START,
    *,
    fraud_episode_rate: float = DEFAULT_FRAUD_EPISODE_RATE,
    scenario: str | None = None,
    drift_day: int | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Simulate `users` customers over `days` days from midnight UTC of `start`.

    `scenario="drift"` adds, from day `drift_day` (0-based; default half-way), a fraud kind
    never seen before and a spending shift of a share of users (finrisk.synthetic.drift); the
    days before it are those of the default data.

    Returns (transactions in the canonical schema sorted by timestamp, one row per user with
    `user_id`, `is_risky` and generator-only ground truth, a JSON-able manifest).
    """
    if users < 1:
        raise FinriskError(f"--users must be at least 1, got {users}")
    if days < 1:
        raise FinriskError(f"--days must be at least 1, got {days}")
    if not 0 <= fraud_episode_rate < 1:
        raise FinriskError(f"fraud episode rate must be in [0, 1), got {fraud_episode_rate}")
    try:
        start_ts = pd.Timestamp(start)
    except ValueError:
        raise FinriskError(f"--start {start!r} is not a date") from None
    start_ts = (
        start_ts.tz_localize("UTC") if start_ts.tzinfo is None else start_ts.tz_convert("UTC")
    ).normalize()

    drifting = draw_scenario(scenario, drift_day, seed, users, days)
    hard = draw_hard(scenario, seed, users)
    rng = np.random.default_rng(seed)
    pool = build_pool()
    pop = draw_population(rng, users, pool)
    ledger = Ledger(users)
    balance = pop.opening_balance.copy()
    drift = np.zeros(users)
    health = pop.health0.copy()
    episodes = np.zeros((users, len(FRAUD_TYPES)), dtype=np.int64)
    warmup = min(7, days // 4)
    dates = pd.date_range(start_ts, periods=days, freq="D")

    for d in tqdm(
        range(days), desc="simulating days", unit="day", disable=not progress, file=sys.stderr
    ):
        drift += rng.normal(0.0, DAILY_HEALTH_VOLATILITY, users)
        health = pop.health0 + pop.health_slope * d / days + drift
        factor = None if drifting is None else drifting.amount_factor(d)
        scale = _simulate_day(rng, pool, pop, ledger, d, dates[d], health, balance, factor)
        state = DayState(start_second=d * DAY, balance=balance, scale=scale)
        if hard is not None:
            add_look_alikes(hard, pool, pop, state, d, dates[d], ledger)
        if warmup <= d < days - 1:
            victims = np.flatnonzero(rng.random(users) < fraud_episode_rate)
            if hard is None:
                codes = add_episodes(rng, pool, pop, victims, state, ledger)
            else:
                codes = add_fraud(hard, pool, pop, victims, state, ledger)
                hit = add_compromise(hard, pool, pop, state, d, ledger)
                compromise = np.full(len(hit), FRAUD_CODE[MERCHANT_COMPROMISE] - 1)
                np.add.at(episodes, (hit, compromise), 1)
            np.add.at(episodes, (victims, codes - 1), 1)
        if drifting is not None and drifting.day <= d < days - 1:
            victims = add_scams(drifting, pool, pop, state, ledger)
            episodes[victims, FRAUD_CODE[GIFT_CARD_SCAM] - 1] += 1
        balance = balance + ledger.net_since_last() / 100.0

    user_ids = _ids("u", users)
    transactions, patterns = _assemble(ledger, pool, pop, user_ids, start_ts)

    # The outcome follows the latent health at the end of the period plus what no data shows.
    logit = RISK_INTERCEPT + RISK_SLOPE * health + rng.normal(0.0, RISK_NOISE, users)
    probability = sigmoid(logit)
    risky = (rng.random(users) < probability).astype(np.int64)
    users_frame = pd.DataFrame(
        {
            USER_ID: user_ids,
            IS_RISKY: risky,
            # Generator-only ground truth: for diagnostics, never for training.
            "latent_health_start": pop.health0,
            "latent_health_end": health,
            "risk_probability": probability,
            "monthly_income": pop.income,
            "opening_balance": pop.opening_balance,
            "fraud_episodes": episodes.sum(axis=1),
        }
    )
    kinds = list(EPISODE_MIX) + ([] if drifting is None else [GIFT_CARD_SCAM])
    if hard is not None:
        kinds = [*EPISODE_MIX, *(k for k in HARD_EPISODE_MIX if k not in EPISODE_MIX)]
        kinds.append(MERCHANT_COMPROMISE)
    manifest = _manifest(
        transactions, users_frame, episodes, kinds, seed, users, days, start_ts, fraud_episode_rate
    )
    if drifting is not None:
        manifest["scenario"] = {
            "name": scenario,
            "drift_day": drifting.day,
            "drift_start": (start_ts + pd.Timedelta(days=drifting.day)).isoformat(),
            "new_fraud_type": GIFT_CARD_SCAM,
            "scam_episode_rate": SCAM_EPISODE_RATE,
            "shifted_users": int(drifting.shifted.sum()),
            "shifted_categories": list(SHIFTED_CATEGORIES),
            "shift_factor": list(SHIFT_FACTOR),
        }
    if hard is not None:
        manifest["scenario"] = {
            "name": scenario,
            "look_alikes": {
                kind: {
                    "episodes": hard.look_alike_episodes[kind],
                    "transactions": int((patterns == PATTERN_CODE[kind]).sum()),
                    # A few rows of each, to find them: no output column says which they are.
                    "examples": transactions[TRANSACTION_ID][patterns == PATTERN_CODE[kind]]
                    .head(LOOK_ALIKE_EXAMPLES)
                    .tolist(),
                }
                for kind in LOOK_ALIKES
            },
            "episode_mix": dict(HARD_EPISODE_MIX),
            "compromised_merchants": [str(pool.names[m]) for m in hard.compromised_merchants],
        }
    return transactions, users_frame, manifest


def _manifest(
    transactions: pd.DataFrame,
    users_frame: pd.DataFrame,
    episodes: np.ndarray,
    kinds: list[str],
    seed: int,
    users: int,
    days: int,
    start: pd.Timestamp,
    fraud_episode_rate: float,
) -> dict[str, Any]:
    fraud_rows = transactions[FRAUD_TYPE].value_counts()
    n = len(transactions)
    return {
        "generator": "finrisk.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "users": users,
        "days": days,
        "start": start.isoformat(),
        "end": (start + pd.Timedelta(days=days)).isoformat(),
        "fraud_episode_rate": fraud_episode_rate,
        "transactions": n,
        "fraud_transactions": int(transactions[IS_FRAUD].sum()),
        "fraud_rate": round(float(transactions[IS_FRAUD].mean()), 6) if n else 0.0,
        "fraud_transactions_by_type": {t: int(fraud_rows.get(t, 0)) for t in kinds},
        "fraud_episodes_by_type": {t: int(episodes[:, FRAUD_CODE[t] - 1].sum()) for t in kinds},
        "risky_users": int(users_frame[IS_RISKY].sum()),
        "risky_rate": round(float(users_frame[IS_RISKY].mean()), 6),
    }
