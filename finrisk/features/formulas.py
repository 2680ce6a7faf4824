"""Every feature's formula, written once, over per-user running statistics.

How "one definition" works: a feature is a pure function of a few primitive statistics about
the user's history (`TxStats` for a transaction, `UserStats` for a user): prior debit count,
sums of prior log amounts, counts and debit sums in the velocity windows, the gap since the
previous transaction, whether the category/merchant is new, and so on. The formulas below are
evaluated on numpy arrays, one element per transaction or user, by both paths:

- the batch path (`finrisk.features.batch`) computes the statistics vectorised over a whole
  table (group cumsums, binary search for window starts, bincount);
- the online path (`finrisk.features.online`) keeps them incrementally per user and hands
  over a micro-batch's worth at a time.

Formulas never divide by zero or take the log of a non-positive number whatever branch a
`where` picks, because both branches are evaluated eagerly. Only the statistics differ between
the two paths; their definitions are in the docstrings of `TxStats` and `UserStats`, and the
parity test checks that both paths compute them alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from finrisk.features.definitions import (
    BALANCE_FLOOR,
    BALANCE_RATIO_CAP,
    DAYS_PER_MONTH,
    GAMBLING_MERCHANT_PREFIXES,
    GAP_CAP_SECONDS,
    INDICATOR_CHANNELS,
    IRREGULAR_INCOME_CV,
    LOG_AMOUNT_VARIANCE_FLOOR,
    MERCHANT_RATE_PRIOR_TRANSACTIONS,
    MIN_EXPENSE_HISTORY,
    MIN_MONTHS,
    MIN_SALARY_INTERVALS,
    MIN_ZSCORE_HISTORY,
    NO_CATEGORY_HISTORY_RATIO,
    NS_PER_DAY,
    NS_PER_SECOND,
    RECENT_DECAY_DAYS,
    RISKY_CATEGORIES,
    SECONDS_PER_DAY,
)

# Denominator floor for money ratios (income, expense): below one currency unit the ratio
# would only measure noise.
MONEY_FLOOR = 1.0
_TINY = 1e-12
_TWO_PI = 2.0 * math.pi
_DAYS_PER_WEEK = 7
# 1970-01-01 was a Thursday; with Monday = 0 that is day 3.
_EPOCH_WEEKDAY = 3

Value = Any  # a float64 array, one element per transaction or user (or a constant)


@dataclass(frozen=True)
class Codes:
    """A categorical column in the batch path: integer codes into `levels` (fast equality)."""

    codes: np.ndarray
    levels: tuple[str, ...]


def _as_float(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _one_hot(value: Any, levels: tuple[str, ...]) -> list[np.ndarray]:
    """One indicator per level (1.0 where the value equals it), for a categorical column."""
    if isinstance(value, Codes):
        return [
            (value.codes == value.levels.index(level)).astype(np.float64)
            if level in value.levels
            else np.zeros(len(value.codes))
            for level in levels
        ]
    array = np.asarray(value)
    return [(array == level).astype(np.float64) for level in levels]


class TxStats(NamedTuple):
    """Primitive statistics of one transaction and its user's history up to and including it.

    "Prior" means the user's transactions strictly before this one in the per-user order
    (timestamp, transaction_id); window statistics include the transaction itself.
    """

    amount: Value  # > 0
    is_debit: Value  # 1.0 debit, 0.0 credit
    balance_after: Value
    timestamp_ns: Value  # int nanoseconds since the epoch, UTC
    category: Value  # Codes (or an array of str)
    channel: Value
    prior_debit_count: Value
    prior_debit_log_sum: Value  # sum of log1p(amount) over prior debits
    prior_debit_log_sumsq: Value  # sum of log1p(amount)**2 over prior debits
    prior_debit_max: Value  # largest prior debit amount, 0.0 when none
    prior_category_count: Value  # prior transactions in this transaction's category
    prior_category_spend: Value  # sum of their debit amounts
    window_counts: Sequence[Value]  # transactions in each of WINDOWS, itself included
    window_debit_sums: Sequence[Value]  # debit amounts in each of SUM_WINDOWS, itself included
    has_prev: Value  # 1.0 unless this is the user's first transaction
    seconds_since_prev: Value  # 0.0 for the first transaction
    is_new_category: Value  # 1.0 the first time the user has this category
    is_new_merchant: Value
    # Transactions at merchants new to the user in each of NEW_MERCHANT_WINDOWS, itself included.
    window_new_merchants: Sequence[Value]


def transaction_formulas(s: TxStats) -> tuple[Value, ...]:
    """The values of TRANSACTION_FEATURES, in order."""
    log_amount = np.log1p(s.amount)
    debit = s.is_debit
    n_prior = s.prior_debit_count

    n_safe = np.maximum(n_prior, 1.0)
    prior_mean = s.prior_debit_log_sum / n_safe
    prior_var = np.maximum(s.prior_debit_log_sumsq / n_safe - prior_mean * prior_mean, 0.0)
    has_history = _as_float(n_prior >= MIN_ZSCORE_HISTORY)
    zscore = (
        debit
        * has_history
        * (log_amount - prior_mean)
        / np.sqrt(prior_var + LOG_AMOUNT_VARIANCE_FLOOR)
    )
    # With no prior debit the amount is compared with itself (ratio 1, log 0).
    prior_max = np.where(n_prior > 0, s.prior_debit_max, s.amount)
    to_prior_max = debit * np.log(s.amount / prior_max)
    has_category_spend = s.prior_category_spend > 0
    category_mean = np.where(
        has_category_spend,
        s.prior_category_spend / np.maximum(s.prior_category_count, 1.0),
        s.amount,
    )
    to_category_mean = debit * np.where(
        has_category_spend, np.log(s.amount / category_mean), NO_CATEGORY_HISTORY_RATIO
    )

    gap = np.where(s.has_prev, np.minimum(s.seconds_since_prev, GAP_CAP_SECONDS), GAP_CAP_SECONDS)

    seconds = s.timestamp_ns // NS_PER_SECOND
    hour_angle = (seconds % SECONDS_PER_DAY) * (_TWO_PI / SECONDS_PER_DAY)
    weekday = (seconds // SECONDS_PER_DAY + _EPOCH_WEEKDAY) % _DAYS_PER_WEEK
    dow_angle = weekday * (_TWO_PI / _DAYS_PER_WEEK)

    balance_before = s.balance_after + s.amount  # for a debit; credits score 0 below
    to_balance = debit * np.minimum(
        s.amount / np.maximum(balance_before, BALANCE_FLOOR), BALANCE_RATIO_CAP
    )
    balance = s.balance_after
    signed_log_balance = np.where(balance < 0, -1.0, 1.0) * np.log1p(np.abs(balance))

    return (
        log_amount,
        debit,
        zscore,
        to_prior_max,
        to_category_mean,
        np.log1p(n_prior),
        *[_as_float(count) for count in s.window_counts],
        *[np.log1p(np.maximum(total, 0.0)) for total in s.window_debit_sums],
        np.log1p(gap),
        np.sin(hour_angle),
        np.cos(hour_angle),
        np.sin(dow_angle),
        np.cos(dow_angle),
        s.is_new_category,
        s.is_new_merchant,
        *[_as_float(count) for count in s.window_new_merchants],
        to_balance,
        _as_float(balance < 0),
        signed_log_balance,
        *_one_hot(s.channel, INDICATOR_CHANNELS),
        *_one_hot(s.category, RISKY_CATEGORIES),
    )


# One decay step: ns of age times this, negated and exponentiated, is a transaction's weight.
DECAY_PER_NS = 1.0 / (RECENT_DECAY_DAYS * NS_PER_DAY)


def is_gambling_merchant(merchant: object) -> bool:
    """Whether a merchant name marks gambling (GAMBLING_MERCHANT_PREFIXES, any case)."""
    return str(merchant).lower().startswith(GAMBLING_MERCHANT_PREFIXES)


class UserStats(NamedTuple):
    """Primitive statistics of all of a user's transactions seen so far."""

    n_transactions: Value
    n_debits: Value
    total_income: Value  # sum of credit amounts
    total_expense: Value  # sum of debit amounts
    expense_sumsq: Value  # sum of debit amounts squared
    max_expense: Value  # 0.0 when no debit
    n_low_balance: Value  # balance_after < LOW_BALANCE_THRESHOLD
    n_overdrawn: Value  # balance_after < 0
    top_category_spend: Value  # largest per-category sum of debit amounts
    discretionary_spend: Value
    essential_spend: Value
    cash_out_spend: Value
    salary_income: Value
    salary_intervals: Value  # number of gaps between consecutive salary credits
    salary_interval_sum: Value  # in days
    salary_interval_sumsq: Value
    balance_sum: Value
    min_balance: Value
    last_balance: Value
    span_days: Value  # last timestamp - first timestamp
    trend_t_sum: Value  # t = days since the user's first transaction
    trend_tt_sum: Value
    trend_b_sum: Value  # b = balance_after
    trend_tb_sum: Value
    n_merchants: Value  # distinct merchants
    category_counts: Sequence[Value]  # transactions in each of COUNTED_CATEGORIES
    n_gambling: Value  # debits at gambling merchants
    n_distress: Value  # debits in DISTRESS_CATEGORIES or at a gambling merchant
    # Sums weighted by exp(-age * DECAY_PER_NS), age = the user's latest timestamp minus the
    # transaction's (the latest transaction weighs 1):
    recent_weight: Value  # of 1
    recent_debit_weight: Value  # of 1 over debits
    recent_income: Value  # of credit amounts
    recent_expense: Value  # of debit amounts
    recent_overdrawn: Value  # of balance_after < 0
    recent_low_balance: Value  # of balance_after < LOW_BALANCE_THRESHOLD
    recent_distress: Value  # of distress debits
    recent_balance: Value  # of balance_after
    recent_transfer_in: Value  # of transfer_in credits


def user_formulas(s: UserStats) -> tuple[Value, ...]:
    """The values of USER_FEATURES, in order."""
    n = s.n_transactions
    n_safe = np.maximum(n, 1.0)
    n_debits_safe = np.maximum(s.n_debits, 1.0)
    income_safe = np.maximum(s.total_income, MONEY_FLOOR)
    expense_safe = np.maximum(s.total_expense, MONEY_FLOOR)
    months = np.maximum(s.span_days / DAYS_PER_MONTH, MIN_MONTHS)

    avg_expense = s.total_expense / n_debits_safe
    expense_var = np.maximum(s.expense_sumsq / n_debits_safe - avg_expense * avg_expense, 0.0)
    expense_cv = np.where(
        s.n_debits >= MIN_EXPENSE_HISTORY,
        np.sqrt(expense_var) / np.maximum(avg_expense, _TINY),
        0.0,
    )

    k_safe = np.maximum(s.salary_intervals, 1.0)
    interval_mean = s.salary_interval_sum / k_safe
    interval_var = np.maximum(s.salary_interval_sumsq / k_safe - interval_mean * interval_mean, 0.0)
    income_irregularity = np.where(
        s.salary_intervals >= MIN_SALARY_INTERVALS,
        np.sqrt(interval_var) / np.maximum(interval_mean, _TINY),
        IRREGULAR_INCOME_CV,
    )

    # Least-squares slope of balance against time, per month; 0 without spread in time.
    trend_den = n * s.trend_tt_sum - s.trend_t_sum * s.trend_t_sum
    trend_ok = trend_den > _TINY * np.maximum(n * s.trend_tt_sum, 1.0)
    trend_num = n * s.trend_tb_sum - s.trend_t_sum * s.trend_b_sum
    trend = np.where(trend_ok, trend_num / np.where(trend_ok, trend_den, 1.0), 0.0)
    # The latest transaction weighs 1, so this floor only guards a state with no transaction.
    recent_weight = np.maximum(s.recent_weight, 1.0)

    return (
        s.total_income,
        s.total_expense,
        _as_float(n),
        avg_expense,
        s.max_expense,
        s.n_low_balance / n_safe,
        s.total_expense / income_safe,
        s.top_category_spend,
        s.span_days,
        n / np.maximum(s.span_days, 1.0),
        s.total_income / months,
        s.total_expense / months,
        (s.total_income - s.total_expense) / months,
        s.salary_income / income_safe,
        income_irregularity,
        expense_cv,
        s.min_balance,
        s.balance_sum / n_safe,
        s.last_balance,
        s.n_overdrawn / n_safe,
        trend * DAYS_PER_MONTH,
        s.discretionary_spend / expense_safe,
        s.essential_spend / expense_safe,
        s.cash_out_spend / expense_safe,
        s.n_merchants / n_safe,
        *[count / months for count in s.category_counts],
        s.n_gambling / months,
        s.n_distress / n_debits_safe,
        s.recent_expense / np.maximum(s.recent_income, MONEY_FLOOR),
        s.recent_overdrawn / recent_weight,
        s.recent_low_balance / recent_weight,
        # Without recent debits (all weight underflowed) the share is 0, not 0/0.
        s.recent_distress / np.maximum(s.recent_debit_weight, _TINY),
        s.recent_balance / recent_weight,
        # A decayed count of a steady rate r a day tends to r * RECENT_DECAY_DAYS.
        s.recent_transfer_in * (DAYS_PER_MONTH / RECENT_DECAY_DAYS),
    )


def merchant_formulas(known_frauds: Value, window_transactions: Value) -> tuple[Value, ...]:
    """The values of MERCHANT_FEATURES, in order, from a transaction's merchant statistics.

    `known_frauds`: confirmed frauds at the merchant in the window whose label was known at
    the transaction's time; `window_transactions`: the merchant's transactions in the window,
    itself included (definitions: MERCHANT_RISK_WINDOW_DAYS). No history gives 0 and 0.
    """
    frauds = _as_float(known_frauds)
    return (
        np.log1p(frauds),
        frauds / (_as_float(window_transactions) + MERCHANT_RATE_PRIOR_TRANSACTIONS),
    )
