"""Batch path: the statistics of `finrisk.features.formulas`, vectorised over a DataFrame.

Rows are sorted once into the canonical per-user order (`finrisk.features.ordering`), then
every statistic is an array operation over the sorted columns, with no Python loop over rows:

- prior sums and maxima: group-wise cumsum/cummax, shifted by one row within the user;
- velocity windows: a vectorised binary search, bounded by the user's first row, finds where
  each row's window starts (largest window first, each smaller one searched from there);
  counts are index differences, debit sums differences of the user's cumulative debit sum;
- novelty: first occurrence of the (user, category) and (user, merchant) pairs;
- user statistics: bincount over user ids (which adds in row order, as the online path
  does) and ufunc.reduceat for minima and maxima; the time-decayed "recent" sums weigh each
  row by exp(-age / tau) against its user's latest timestamp (closed form: the weights are
  at most 1, so nothing overflows; the online path's recurrence agrees up to rounding).

The formulas are then evaluated once on whole columns and the rows put back in input order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from finrisk.errors import FinriskError
from finrisk.features.definitions import (
    COUNTED_CATEGORIES,
    DEBIT_DIRECTION,
    LOW_BALANCE_THRESHOLD,
    NS_PER_DAY,
    NS_PER_SECOND,
    SUM_WINDOWS,
    TRANSACTION_FEATURES,
    USER_FEATURES,
    WINDOWS,
)
from finrisk.features.formulas import (
    DECAY_PER_NS,
    Codes,
    TxStats,
    UserStats,
    is_gambling_merchant,
    transaction_formulas,
    user_formulas,
)
from finrisk.features.ordering import canonical_order
from finrisk.features.row_flags import CategoryGroups, row_flags
from finrisk.features.timestamps import series_to_ns
from finrisk.schema import (
    AMOUNT,
    BALANCE_AFTER,
    CATEGORY,
    CHANNEL,
    CREDIT,
    DIRECTION,
    MERCHANT,
    OBSERVED_COLUMNS,
    TIMESTAMP,
    TRANSACTION_ID,
    USER_ID,
)

FEATURE_INPUT_COLUMNS: tuple[str, ...] = OBSERVED_COLUMNS


@dataclass(frozen=True)
class _Sorted:
    """The input columns in canonical order, with the per-user group structure."""

    order: np.ndarray  # sorted position -> input row
    users: pd.Index  # user id of each group, ascending
    group: np.ndarray  # group number of each sorted row
    first: np.ndarray  # bool, the user's first row
    starts: np.ndarray  # sorted position of each group's first row
    ends: np.ndarray  # sorted position of each group's last row
    row_start: np.ndarray  # sorted position of the row's group's first row
    timestamp_ns: np.ndarray
    amount: np.ndarray
    is_debit: np.ndarray  # bool
    balance_after: np.ndarray
    category: Codes
    channel: Codes
    merchant: Codes

    @property
    def n_users(self) -> int:
        return len(self.users)


def transaction_features(df: pd.DataFrame) -> pd.DataFrame:
    """TRANSACTION_FEATURES for every row of `df` (canonical columns), same index and order."""
    return _transaction_frame(df, _prepare(df))


def user_features(df: pd.DataFrame) -> pd.DataFrame:
    """USER_FEATURES of every user in `df`, indexed by user_id (ascending)."""
    return _user_frame(_prepare(df))


def batch_features(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables at once, sorting the input only once."""
    data = _prepare(df)
    return _transaction_frame(df, data), _user_frame(data)


def _transaction_frame(df: pd.DataFrame, data: _Sorted) -> pd.DataFrame:
    values = transaction_formulas(_transaction_stats(data))
    # One contiguous row per feature, gathered back into input order; its transpose is the
    # column-major block pandas keeps, so no copy follows.
    restore = np.empty_like(data.order)
    restore[data.order] = np.arange(len(data.order))
    columns = np.empty((len(TRANSACTION_FEATURES), len(data.order)), dtype=np.float64)
    for j, column in enumerate(values):
        np.take(np.broadcast_to(column, restore.shape), restore, out=columns[j])
    matrix = columns.T
    return pd.DataFrame(matrix, index=df.index, columns=list(TRANSACTION_FEATURES), copy=False)


def _user_frame(data: _Sorted) -> pd.DataFrame:
    values = user_formulas(_user_stats(data))
    matrix = np.column_stack([np.broadcast_to(v, (data.n_users,)) for v in values])
    frame = pd.DataFrame(
        matrix.astype(np.float64, copy=False), index=data.users, columns=list(USER_FEATURES)
    )
    frame.index.name = USER_ID
    return frame


def _transaction_stats(data: _Sorted) -> TxStats:
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

    # Integer running counts are exact with one global cumsum minus the user's offset.
    debit_count = np.cumsum(debit, dtype=np.int64)
    prior_debits = debit_count - debit.astype(np.int64)
    prior_debits -= prior_debits[data.row_start]

    index = np.arange(n)
    window_counts: dict[str, np.ndarray] = {}
    window_sums: dict[str, np.ndarray] = {}
    lower = data.row_start
    for suffix, length in sorted(WINDOWS, key=lambda w: -w[1]):
        lower = _window_starts(data.timestamp_ns, lower, length)
        window_counts[suffix] = index - lower + 1
        if suffix in SUM_WINDOWS:
            window_sums[suffix] = debit_cum - debit_cum_before[lower]

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
        window_counts=[window_counts[suffix] for suffix, _ in WINDOWS],
        window_debit_sums=[window_sums[suffix] for suffix in SUM_WINDOWS],
        has_prev=~first,
        seconds_since_prev=gap,
        is_new_category=_first_seen(data, data.category).astype(np.float64),
        is_new_merchant=_first_seen(data, data.merchant).astype(np.float64),
    )


def _user_stats(data: _Sorted) -> UserStats:
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


def _window_starts(stamps: np.ndarray, lower: np.ndarray, length: int) -> np.ndarray:
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


def _first_seen(data: _Sorted, values: Codes) -> np.ndarray:
    """True where the row is the user's first with this value (in canonical order)."""
    key = data.group.astype(np.int64) * (len(values.levels) + 1) + values.codes
    return ~pd.Series(key).duplicated().to_numpy()


def _level_code(values: Codes, level: str) -> int:
    return values.levels.index(level) if level in values.levels else -1


# --- input checks and sorting ---------------------------------------------------------------


def _prepare(df: pd.DataFrame) -> _Sorted:
    missing = [c for c in FEATURE_INPUT_COLUMNS if c not in df.columns]
    if missing:
        raise FinriskError(f"features need the column(s) {missing}; got {list(df.columns)}")
    if len(df) == 0:
        raise FinriskError("features need at least one transaction; the table is empty")

    user_codes, user_levels = _factorize(df, USER_ID, sort=True)
    stamps = series_to_ns(df[TIMESTAMP], TIMESTAMP)
    amount = _numbers(df, AMOUNT)
    bad = amount <= 0
    if bad.any():
        raise FinriskError(
            f"column {AMOUNT!r} must be > 0 (absolute amounts); row {_row(df, bad)!r} has "
            f"{amount[bad][0]!r}"
        )
    balance = _numbers(df, BALANCE_AFTER)
    direction = _codes(df, DIRECTION)
    unexpected = sorted(set(direction.levels) - {DEBIT_DIRECTION, CREDIT})
    if unexpected:
        raise FinriskError(
            f"column {DIRECTION!r} must be {DEBIT_DIRECTION!r} or {CREDIT!r}; found {unexpected}"
        )
    category, channel, merchant = _codes(df, CATEGORY), _codes(df, CHANNEL), _codes(df, MERCHANT)

    order = canonical_order(user_codes, stamps, df[TRANSACTION_ID].to_numpy())
    group = user_codes[order]
    first = np.empty(len(order), dtype=bool)
    first[0] = True
    np.not_equal(group[1:], group[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:] - 1, len(order) - 1)
    return _Sorted(
        order=order,
        users=user_levels.rename(USER_ID),
        group=group,
        first=first,
        starts=starts,
        ends=ends,
        row_start=starts[np.cumsum(first) - 1],
        timestamp_ns=stamps[order],
        amount=amount[order],
        is_debit=direction.codes[order] == direction.levels.index(DEBIT_DIRECTION)
        if DEBIT_DIRECTION in direction.levels
        else np.zeros(len(order), dtype=bool),
        balance_after=balance[order],
        category=Codes(category.codes[order], category.levels),
        channel=Codes(channel.codes[order], channel.levels),
        merchant=Codes(merchant.codes[order], merchant.levels),
    )


def _row(df: pd.DataFrame, mask: np.ndarray) -> object:
    return df.index[np.flatnonzero(mask)[0]]


def _numbers(df: pd.DataFrame, column: str) -> np.ndarray:
    try:
        values = pd.to_numeric(df[column]).to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise FinriskError(f"column {column!r} must be numeric: {exc}") from None
    bad = ~np.isfinite(values)
    if bad.any():
        raise FinriskError(f"column {column!r} is empty or not finite in row {_row(df, bad)!r}")
    return values


def _factorize(df: pd.DataFrame, column: str, sort: bool = False) -> tuple[np.ndarray, pd.Index]:
    values = df[column]
    if isinstance(values.dtype, pd.CategoricalDtype):
        # Factorizing a categorical sorts by category order; the output wants plain ids.
        values = values.astype(object)
    codes, levels = pd.factorize(values, sort=sort)
    if (codes < 0).any():
        raise FinriskError(f"column {column!r} is empty in row {_row(df, codes < 0)!r}")
    return codes.astype(np.int64, copy=False), pd.Index(levels)


def _codes(df: pd.DataFrame, column: str) -> Codes:
    codes, levels = _factorize(df, column)
    return Codes(codes, tuple(str(level) for level in levels))
