"""The online path's arithmetic on its statistics: a round's update, and the reading.

`advance` adds each user's next transaction of a round to their statistics (`Sums`, `Times`
of `finrisk.features.online_state`); `user_stats` reads statistics as the formulas'
`UserStats`. The recent (time-decayed) sums are exact whatever the arrival order: a late
transaction enters them with its own age's weight.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from finrisk.features.definitions import NS_PER_DAY, RECENT_DECAY_DAYS
from finrisk.features.formulas import DECAY_PER_NS, UserStats
from finrisk.features.online_arrays import Floats, Ints, Matrix
from finrisk.features.online_state import NO_SALARY, SUM_FIELDS, Sums, Times

_NS_PER_DAY_F = float(NS_PER_DAY)
# The time-decayed sums are kept against a per-user reference time (`recent_ref_ts`): a
# transaction adds x * exp((ts - ref) / tau), so no sum is decayed on every update, and reading
# one multiplies it by exp((ref - latest) / tau). The reference moves forward (rescaling the
# sums) once a weight would exceed e^30.
_REBASE_NS = round(30 * RECENT_DECAY_DAYS * NS_PER_DAY)
_RECENT: tuple[str, ...] = tuple(name for name in SUM_FIELDS if name.startswith("recent_"))


class BatchInputs(NamedTuple):
    """Per-transaction inputs of a batch in round order, each column sliced per round."""

    slot: npt.NDArray[np.intp]
    ts: Ints
    amount: Floats
    debit: npt.NDArray[np.bool_]
    balance: Floats
    category: npt.NDArray[np.intp]
    log_amount: Floats
    gambling: npt.NDArray[np.bool_]
    distress: npt.NDArray[np.bool_]
    discretionary: npt.NDArray[np.bool_]
    essential: npt.NDArray[np.bool_]
    cash_out: npt.NDArray[np.bool_]
    transfer_in: npt.NDArray[np.bool_]
    salary: npt.NDArray[np.bool_]
    low: npt.NDArray[np.bool_]
    overdrawn: npt.NDArray[np.bool_]

    def rows(self, start: int, stop: int) -> BatchInputs:
        return BatchInputs._make(column[start:stop] for column in self)


def advance(s: Sums, t: Times, x: BatchInputs) -> None:
    """One round: each user's next transaction added to their statistics (in place)."""
    debit, amount, balance, ts = x.debit, x.amount, x.balance, x.ts
    s.n_tx = s.n_tx + 1.0
    s.n_debits = np.where(debit, s.n_debits + 1.0, s.n_debits)
    s.debit_log_sum = np.where(debit, s.debit_log_sum + x.log_amount, s.debit_log_sum)
    s.debit_log_sumsq = np.where(
        debit, s.debit_log_sumsq + x.log_amount * x.log_amount, s.debit_log_sumsq
    )
    s.debit_max = np.where(debit & (amount > s.debit_max), amount, s.debit_max)
    s.debit_cum = np.where(debit, s.debit_cum + amount, s.debit_cum)
    s.expense_sumsq = np.where(debit, s.expense_sumsq + amount * amount, s.expense_sumsq)
    t.last_ts = np.maximum(t.last_ts, ts)

    offset = ts - t.recent_ref_ts
    rebase = offset > _REBASE_NS
    if rebase.any():
        scale = np.exp((t.recent_ref_ts - ts) * DECAY_PER_NS)
        for name in _RECENT:
            value = getattr(s, name)
            setattr(s, name, np.where(rebase, value * scale, value))
        t.recent_ref_ts = np.where(rebase, ts, t.recent_ref_ts)
        offset = np.where(rebase, 0, offset)
    weight = np.exp(offset * DECAY_PER_NS)
    s.recent_weight = s.recent_weight + weight
    s.recent_balance = s.recent_balance + weight * balance
    s.recent_debit_weight = np.where(debit, s.recent_debit_weight + weight, s.recent_debit_weight)
    s.recent_expense = np.where(debit, s.recent_expense + weight * amount, s.recent_expense)
    s.n_gambling = np.where(x.gambling, s.n_gambling + 1.0, s.n_gambling)
    s.n_distress = np.where(x.distress, s.n_distress + 1.0, s.n_distress)
    s.recent_distress = np.where(x.distress, s.recent_distress + weight, s.recent_distress)
    s.discretionary = np.where(x.discretionary, s.discretionary + amount, s.discretionary)
    s.essential = np.where(x.essential, s.essential + amount, s.essential)
    s.cash_out = np.where(x.cash_out, s.cash_out + amount, s.cash_out)

    s.recent_income = np.where(debit, s.recent_income, s.recent_income + weight * amount)
    s.recent_transfer_in = np.where(
        x.transfer_in, s.recent_transfer_in + weight, s.recent_transfer_in
    )
    s.total_income = np.where(debit, s.total_income, s.total_income + amount)
    salary = x.salary
    s.salary_income = np.where(salary, s.salary_income + amount, s.salary_income)
    had_salary = t.last_salary_ts != NO_SALARY
    interval = (ts - np.where(had_salary, t.last_salary_ts, ts)) / _NS_PER_DAY_F
    follows = salary & had_salary
    s.salary_k = np.where(follows, s.salary_k + 1.0, s.salary_k)
    s.salary_sum = np.where(follows, s.salary_sum + interval, s.salary_sum)
    s.salary_sumsq = np.where(follows, s.salary_sumsq + interval * interval, s.salary_sumsq)
    t.last_salary_ts = np.where(salary, ts, t.last_salary_ts)

    s.n_low = np.where(x.low, s.n_low + 1.0, s.n_low)
    s.recent_low_balance = np.where(x.low, s.recent_low_balance + weight, s.recent_low_balance)
    s.n_overdrawn = np.where(x.overdrawn, s.n_overdrawn + 1.0, s.n_overdrawn)
    s.recent_overdrawn = np.where(x.overdrawn, s.recent_overdrawn + weight, s.recent_overdrawn)
    s.balance_sum = s.balance_sum + balance
    s.min_balance = np.where(balance < s.min_balance, balance, s.min_balance)
    s.last_balance = balance
    elapsed = (ts - t.first_ts) / _NS_PER_DAY_F
    s.t_sum = s.t_sum + elapsed
    s.tt_sum = s.tt_sum + elapsed * elapsed
    s.b_sum = s.b_sum + balance
    s.tb_sum = s.tb_sum + elapsed * balance


def user_stats(
    sums: Matrix,
    times: Ints,
    n_merchants: Floats,
    top_category_spend: Floats,
    category_counts: list[Floats],
) -> UserStats:
    """UserStats of users' statistics (a column per user, or per transaction's user after it)."""
    s, t = Sums(*sums), Times(*times)
    # The recent sums from their reference time to the latest transaction, as UserStats has them.
    scale = np.exp((t.recent_ref_ts - t.last_ts) * DECAY_PER_NS)
    return UserStats(
        n_transactions=s.n_tx,
        n_debits=s.n_debits,
        total_income=s.total_income,
        total_expense=s.debit_cum,
        expense_sumsq=s.expense_sumsq,
        max_expense=s.debit_max,
        n_low_balance=s.n_low,
        n_overdrawn=s.n_overdrawn,
        top_category_spend=top_category_spend,
        discretionary_spend=s.discretionary,
        essential_spend=s.essential,
        cash_out_spend=s.cash_out,
        salary_income=s.salary_income,
        salary_intervals=s.salary_k,
        salary_interval_sum=s.salary_sum,
        salary_interval_sumsq=s.salary_sumsq,
        balance_sum=s.balance_sum,
        min_balance=s.min_balance,
        last_balance=s.last_balance,
        span_days=(t.last_ts - t.first_ts) / _NS_PER_DAY_F,
        trend_t_sum=s.t_sum,
        trend_tt_sum=s.tt_sum,
        trend_b_sum=s.b_sum,
        trend_tb_sum=s.tb_sum,
        n_merchants=n_merchants,
        category_counts=category_counts,
        n_gambling=s.n_gambling,
        n_distress=s.n_distress,
        recent_weight=s.recent_weight * scale,
        recent_debit_weight=s.recent_debit_weight * scale,
        recent_income=s.recent_income * scale,
        recent_expense=s.recent_expense * scale,
        recent_overdrawn=s.recent_overdrawn * scale,
        recent_low_balance=s.recent_low_balance * scale,
        recent_distress=s.recent_distress * scale,
        recent_balance=s.recent_balance * scale,
        recent_transfer_in=s.recent_transfer_in * scale,
    )
