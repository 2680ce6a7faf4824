"""The batch path's statistics: every one an array operation over the sorted columns
(`finrisk.features.batch_inputs.Sorted`), with no Python loop over rows:

- prior sums and maxima: group-wise cumsum/cummax, shifted by one row within the user;
- velocity windows: a vectorised binary search, bounded by the user's first row, finds where
  each row's window starts (largest window first, each smaller one searched from there);
  counts are index differences, debit sums differences of the user's cumulative debit sum;
- per (user, category): prior counts and debit sums, the running values of the row before
  within the pair;
- novelty: first occurrence of the (user, category) and (user, merchant) pairs, and the first
  visits within each of NEW_MERCHANT_WINDOWS as differences of their running count;
- user statistics: bincount over user ids (which adds in row order, as the online path
  does) and ufunc.reduceat for minima and maxima; the time-decayed "recent" sums weigh each
  row by exp(-age / tau) against its user's latest timestamp (closed form: the weights are
  at most 1, so nothing overflows; the online path's recurrence agrees up to rounding).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from finrisk.features.batch_inputs import Sorted
from finrisk.features.definitions import (
    COUNTED_CATEGORIES,
    LOW_BALANCE_THRESHOLD,
    NEW_MERCHANT_WINDOWS,
    NS_PER_DAY,
    NS_PER_SECOND,
    SUM_WINDOWS,
    WINDOWS,
)
from finrisk.features.formulas import (
    DECAY_PER_NS,
    Codes,
    TxStats,
    UserStats,
    is_gambling_merchant,
)
from finrisk.features.row_flags import CategoryGroups, row_flags


def transaction_stats(data: Sorted) -> TxStats:
    """TxStats of every row, in sorted order."""
    n = len(data.order)
    first = data.first
    debit = data.is_debit
    debit_amount = np.where(debit, data.amount, 0.0)
    log_debit = np.where(debit, np.log1p(data.amount), 0.0)

    cumulative = (
        pd.DataFrame({"log": log_debit, "log2": log_debit * log_debit, "amount": debit_amount})
        .groupby(data.group, sort=False)
        .cumsum()
    )
    log_sum = _shift_in_group(cumulative["log"].to_numpy(), first)
    log_sumsq = _shift_in_group(cumulative["log2"].to_numpy(), first)
    debit_cum = cumulative["amount"].to_numpy()
    debit_cum_before = _shift_in_group(debit_cum, first)
    running_max = pd.Series(debit_amount).groupby(data.group, sort=False).cummax().to_numpy()
    prior_max = _shift_in_group(running_max, first)
    prior_category_count, prior_category_spend = _prior_in_category(data, debit_amount)

    # Integer running counts are exact with one global cumsum minus the user's offset.
    debit_count = np.cumsum(debit, dtype=np.int64)
    prior_debits = debit_count - debit.astype(np.int64)
    prior_debits -= prior_debits[data.row_start]

    index = np.arange(n)
    window_counts: dict[str, np.ndarray] = {}
    window_sums: dict[str, np.ndarray] = {}
    lower = data.row_start
    for suffix, length in sorted(WINDOWS, key=lambda w: -w[1]):
        lower = window_starts(data.timestamp_ns, lower, length)
        window_counts[suffix] = index - lower + 1
        if suffix in SUM_WINDOWS:
            window_sums[suffix] = debit_cum - debit_cum_before[lower]

    # New merchants in their windows: the user's running count of first visits (a global
    # cumsum, exact in integers) at this row minus the count before the window's first row.
    is_new_merchant = _first_seen(data, data.merchant)
    new_merchants = np.cumsum(is_new_merchant, dtype=np.int64)
    new_before = new_merchants - is_new_merchant.astype(np.int64)
    window_new_merchants: dict[str, np.ndarray] = {}
    lower = data.row_start
    for suffix, length in sorted(NEW_MERCHANT_WINDOWS, key=lambda w: -w[1]):
        lower = window_starts(data.timestamp_ns, lower, length)
        window_new_merchants[suffix] = new_merchants - new_before[lower]

    previous = np.empty(n, dtype=np.int64)
    previous[1:] = data.timestamp_ns[:-1]
    previous[first] = data.timestamp_ns[first]
    gap = (data.timestamp_ns - previous) / float(NS_PER_SECOND)

    return TxStats(
        amount=data.amount,
        is_debit=debit.astype(np.float64),
        balance_after=data.balance_after,
        timestamp_ns=data.timestamp_ns,
        category=data.category,
        channel=data.channel,
        prior_debit_count=prior_debits.astype(np.float64),
        prior_debit_log_sum=log_sum,
        prior_debit_log_sumsq=log_sumsq,
        prior_debit_max=prior_max,
        prior_category_count=prior_category_count,
        prior_category_spend=prior_category_spend,
        window_counts=[window_counts[suffix] for suffix, _ in WINDOWS],
        window_debit_sums=[window_sums[suffix] for suffix in SUM_WINDOWS],
        has_prev=~first,
        seconds_since_prev=gap,
        is_new_category=_first_seen(data, data.category).astype(np.float64),
        is_new_merchant=is_new_merchant.astype(np.float64),
        window_new_merchants=[
            window_new_merchants[suffix].astype(np.float64) for suffix, _ in NEW_MERCHANT_WINDOWS
        ],
    )


def user_stats(data: Sorted) -> UserStats:
    """UserStats of every user, in the order of `data.users`."""
    group, n_users = data.group, data.n_users
    debit = data.is_debit
    amount = data.amount
    debit_amount = np.where(debit, amount, 0.0)
    balance = data.balance_after

    def total(weights: np.ndarray) -> np.ndarray:
        # bincount adds in row order, exactly as the online path accumulates.
        return np.bincount(group, weights=weights, minlength=n_users)

    n_levels = len(data.category.levels)
    cell = group * n_levels + data.category.codes  # (user, category)
    cells = n_users * n_levels
    per_category = np.bincount(cell, weights=debit_amount, minlength=cells)
    per_category = per_category.reshape(n_users, n_levels)
    category_counts = np.bincount(cell, minlength=cells).reshape(n_users, n_levels)

    gambling_levels = np.array([is_gambling_merchant(m) for m in data.merchant.levels], dtype=bool)
    flags = row_flags(
        debit,
        data.category.codes,
        gambling_levels[data.merchant.codes],
        CategoryGroups(data.category.levels),
    )

    def spend_in(mask: np.ndarray) -> np.ndarray:
        return total(np.where(mask, debit_amount, 0.0))

    salary_rows = np.flatnonzero(flags.salary)
    follows = group[salary_rows[1:]] == group[salary_rows[:-1]]
    later = salary_rows[1:][follows]
    interval = (data.timestamp_ns[later] - data.timestamp_ns[salary_rows[:-1][follows]]) / float(
        NS_PER_DAY
    )
    interval_group = group[later]

    elapsed = (data.timestamp_ns - data.timestamp_ns[data.row_start]) / float(NS_PER_DAY)

    # Recent sums in closed form against each user's latest timestamp: weights in (0, 1], so
    # nothing overflows, and the online recurrence gives the same sums up to rounding.
    age = data.timestamp_ns[data.ends][group] - data.timestamp_ns
    weight = np.exp(age * -DECAY_PER_NS)
    low = balance < LOW_BALANCE_THRESHOLD
    overdrawn = balance < 0

    def recent(mask: np.ndarray) -> np.ndarray:
        return total(np.where(mask, weight, 0.0))

    return UserStats(
        n_transactions=np.bincount(group, minlength=n_users).astype(np.float64),
        n_debits=total(debit.astype(np.float64)),
        total_income=total(np.where(debit, 0.0, amount)),
        total_expense=total(debit_amount),
        expense_sumsq=total(debit_amount * debit_amount),
        max_expense=np.maximum.reduceat(debit_amount, data.starts),
        n_low_balance=total(low.astype(np.float64)),
        n_overdrawn=total(overdrawn.astype(np.float64)),
        top_category_spend=per_category.max(axis=1),
        discretionary_spend=spend_in(flags.discretionary),
        essential_spend=spend_in(flags.essential),
        cash_out_spend=spend_in(flags.cash_out),
        salary_income=total(np.where(flags.salary, amount, 0.0)),
        salary_intervals=np.bincount(interval_group, minlength=n_users).astype(np.float64),
        salary_interval_sum=np.bincount(interval_group, weights=interval, minlength=n_users),
        salary_interval_sumsq=np.bincount(
            interval_group, weights=interval * interval, minlength=n_users
        ),
        balance_sum=total(balance),
        min_balance=np.minimum.reduceat(balance, data.starts),
        last_balance=balance[data.ends],
        span_days=(data.timestamp_ns[data.ends] - data.timestamp_ns[data.starts])
        / float(NS_PER_DAY),
        trend_t_sum=total(elapsed),
        trend_tt_sum=total(elapsed * elapsed),
        trend_b_sum=total(balance),
        trend_tb_sum=total(elapsed * balance),
        n_merchants=total(_first_seen(data, data.merchant).astype(np.float64)),
        category_counts=[
            category_counts[:, code].astype(np.float64)
            if (code := _level_code(data.category, name)) >= 0
            else np.zeros(n_users)
            for name in COUNTED_CATEGORIES
        ],
        n_gambling=total(flags.gambling.astype(np.float64)),
        n_distress=total(flags.distress.astype(np.float64)),
        recent_weight=total(weight),
        recent_debit_weight=recent(debit),
        recent_income=total(np.where(debit, 0.0, weight * amount)),
        recent_expense=total(weight * debit_amount),
        recent_overdrawn=recent(overdrawn),
        recent_low_balance=recent(low),
        recent_distress=recent(flags.distress),
        recent_balance=total(weight * balance),
        recent_transfer_in=recent(flags.transfer_in),
    )


def _shift_in_group(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The previous row's value within the user; 0 on the user's first row."""
    shifted = np.empty_like(values)
    shifted[1:] = values[:-1]
    shifted[first] = 0
    return shifted


def _prior_in_category(data: Sorted, debit_amount: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the user's prior transactions in its category and their debit amounts' sum.

    The sum is the previous row's running sum within the (user, category) pair, not the
    running sum less the row's own amount: it then adds the same amounts in the same order
    as the online path's per-category spend, to the last bit.
    """
    pair = data.group.astype(np.int64) * (len(data.category.levels) + 1) + data.category.codes
    by_pair = pd.Series(debit_amount).groupby(pair, sort=False)
    count = by_pair.cumcount().to_numpy(dtype=np.float64)
    running = by_pair.cumsum()
    spend = running.groupby(pair, sort=False).shift(1, fill_value=0.0).to_numpy()
    return count, spend


def window_starts(stamps: np.ndarray, lower: np.ndarray, length: int) -> np.ndarray:
    """For each row i, the first row j in [lower[i], i] with stamps[j] > stamps[i] - length.

    A binary search run on all rows at once; rows leave the search when their interval closes.
    `lower` must not exceed the answer (the user's first row, or a longer window's start).
    """
    n = len(stamps)
    lo = lower.astype(np.int64, copy=True)
    hi = np.arange(n, dtype=np.int64)  # the row itself is always inside its window
    cutoff = stamps - length
    active = np.flatnonzero(lo < hi)
    while active.size:
        a_lo, a_hi = lo[active], hi[active]
        mid = (a_lo + a_hi) >> 1
        expired = stamps[mid] <= cutoff[active]
        a_lo = np.where(expired, mid + 1, a_lo)
        a_hi = np.where(expired, a_hi, mid)
        lo[active] = a_lo
        hi[active] = a_hi
        active = active[a_lo < a_hi]
    return lo


def _first_seen(data: Sorted, values: Codes) -> np.ndarray:
    """True where the row is the user's first with this value (in canonical order)."""
    key = data.group.astype(np.int64) * (len(values.levels) + 1) + values.codes
    return ~pd.Series(key).duplicated().to_numpy()


def _level_code(values: Codes, level: str) -> int:
    return values.levels.index(level) if level in values.levels else -1
