"""The online path's pass over a micro-batch: its transactions into their users' statistics,
and each transaction's features out.

A micro-batch is applied in rounds: round k applies the k-th transaction of every user in the
batch at once. The users of one round are distinct, so a round is plain array arithmetic on
their columns (`finrisk.features.online_stats.advance`), and rounds run in order, so each
user's transactions are applied in arrival order exactly as one at a time would be.
Micro-batches of a real stream need few rounds (about ten for 2000 transactions of 2000
users); one user's burst costs a round per transaction. The velocity windows are the one
per-transaction loop (`finrisk.features.online_windows`). The batch path's formulas then turn
each transaction's statistics and its user's after it into features, on whole columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from finrisk.features.definitions import (
    COUNTED_CATEGORIES,
    LOW_BALANCE_THRESHOLD,
    NS_PER_SECOND,
    TRANSACTION_FEATURES,
    USER_FEATURES,
)
from finrisk.features.formulas import (
    Codes,
    TxStats,
    is_gambling_merchant,
    transaction_formulas,
    user_formulas,
)
from finrisk.features.online_arrays import Floats, Matrix
from finrisk.features.online_state import (
    ROW,
    SUM_FIELDS,
    TIME_FIELDS,
    OnlineState,
    Sums,
    Times,
)
from finrisk.features.online_stats import BatchInputs, advance, user_stats
from finrisk.features.online_windows import window_stats
from finrisk.features.row_flags import CategoryGroups, row_flags
from finrisk.transactions import TxColumns

_NS_PER_SECOND_F = float(NS_PER_SECOND)
# What a transaction's features need of its user's statistics before it.
_PRIOR_ROWS = np.array(
    [ROW[name] for name in ("n_debits", "debit_log_sum", "debit_log_sumsq", "debit_max")]
)
_DEBIT_CUM_ROW = ROW["debit_cum"]
_LAST_TS_ROW = TIME_FIELDS.index("last_ts")


class _Known(NamedTuple):
    """What the per-transaction pass over a batch found, in arrival order."""

    slot: npt.NDArray[np.intp]
    rank: npt.NDArray[np.intp]  # earlier transactions of the same user in the batch
    category: npt.NDArray[np.intp]
    channel: npt.NDArray[np.intp]
    new_merchant: Floats
    n_merchants: Floats  # the user's distinct merchants after the transaction
    gambling: npt.NDArray[np.bool_]  # at a gambling merchant
    first: npt.NDArray[np.bool_]  # the user's first transaction ever


def observe_columns(state: OnlineState, columns: TxColumns) -> tuple[Matrix, Matrix]:
    """Add transactions, in arrival order, to their users' states.

    Returns two matrices with a row per transaction: its TRANSACTION_FEATURES, and its
    user's USER_FEATURES as of (and including) it. The columns come checked by the transaction
    contract (finrisk.transactions: `transaction_columns`, or the stream parser), which every
    transaction passes once; they are not checked again here.
    """
    n = columns.size
    if n == 0:
        return (
            np.empty((0, len(TRANSACTION_FEATURES))),
            np.empty((0, len(USER_FEATURES))),
        )
    known = _prepare_users(state, columns)
    # Round order: the k-th transaction of each user in round k (stable, so each user's
    # transactions keep their order); every column below is in this order.
    order = np.argsort(known.rank, kind="stable")
    rounds = np.searchsorted(known.rank[order], np.arange(known.rank.max() + 2))
    batch = _batch_columns(state, columns, known, order)

    prior = np.empty((len(_PRIOR_ROWS) + 1, n))  # _PRIOR_ROWS, then the debit total
    last_before = np.empty(n, dtype=np.int64)
    after_sums = np.empty((len(SUM_FIELDS), n))
    after_times = np.empty((len(TIME_FIELDS), n), dtype=np.int64)
    seen_category = np.empty(n)
    spent_in_category = np.empty(n)
    top_spend = np.empty(n)
    counted = np.empty((len(COUNTED_CATEGORIES), n))
    for start, stop in zip(rounds[:-1].tolist(), rounds[1:].tolist(), strict=True):
        if start == stop:
            continue
        part = batch.rows(start, stop)
        slot = part.slot
        sums, times = state.sums[:, slot], state.times[:, slot]
        prior[: len(_PRIOR_ROWS), start:stop] = sums[_PRIOR_ROWS]
        prior[-1, start:stop] = sums[_DEBIT_CUM_ROW]
        last_before[start:stop] = times[_LAST_TS_ROW]
        s, t = Sums(*sums), Times(*times)
        advance(s, t, part)
        state.sums[:, slot] = after_sums[:, start:stop] = np.stack(_fields_of(s, SUM_FIELDS))
        state.times[:, slot] = after_times[:, start:stop] = np.stack(_fields_of(t, TIME_FIELDS))
        cells = (slot, part.category)
        seen = state.category_counts[cells]
        seen_category[start:stop] = seen
        state.category_counts[cells] = seen + 1.0
        spend = state.category_spend[cells]
        spent_in_category[start:stop] = spend
        state.category_spend[cells] = np.where(part.debit, spend + part.amount, spend)
        top_spend[start:stop] = state.category_spend[slot].max(axis=1)
        counted[:, start:stop] = state.category_counts[slot[:, None], state.counted].T

    first = known.first[order]
    clock = np.maximum(batch.ts, last_before)
    merchants_after = known.n_merchants[order]
    new_merchant = known.new_merchant[order]
    window_counts, window_sums, window_new_merchants = window_stats(
        state.windows,
        batch.slot,
        batch.ts,
        clock,
        prior[-1],
        after_sums[_DEBIT_CUM_ROW],
        merchants_after - new_merchant,
        merchants_after,
    )
    tx_stats = TxStats(
        amount=batch.amount,
        is_debit=batch.debit.astype(np.float64),
        balance_after=batch.balance,
        timestamp_ns=batch.ts,
        category=Codes(batch.category, tuple(state.categories)),
        channel=Codes(known.channel[order], tuple(state.channels)),
        prior_debit_count=prior[0],
        prior_debit_log_sum=prior[1],
        prior_debit_log_sumsq=prior[2],
        prior_debit_max=prior[3],
        prior_category_count=seen_category,
        prior_category_spend=spent_in_category,
        window_counts=window_counts,
        window_debit_sums=window_sums,
        has_prev=~first,
        seconds_since_prev=np.where(
            ~first & (batch.ts >= last_before), (batch.ts - last_before) / _NS_PER_SECOND_F, 0.0
        ),
        is_new_category=(seen_category == 0).astype(np.float64),
        is_new_merchant=new_merchant,
        window_new_merchants=window_new_merchants,
    )
    stats_after = user_stats(after_sums, after_times, merchants_after, top_spend, list(counted))
    # Back to arrival order.
    tx_matrix = np.empty((n, len(TRANSACTION_FEATURES)))
    tx_matrix[order] = feature_matrix(transaction_formulas(tx_stats), n)
    user_matrix = np.empty((n, len(USER_FEATURES)))
    user_matrix[order] = feature_matrix(user_formulas(stats_after), n)
    return tx_matrix, user_matrix


def _prepare_users(state: OnlineState, columns: TxColumns) -> _Known:
    """Slots (new users get fresh ones), ranks, category and channel codes, and merchant
    novelty, per transaction in arrival order."""
    slots_of, categories, channels = state.slots, state.categories, state.channels
    merchants, gambling_of = state.merchants, state.gambling
    # Lists, made arrays at the end: storing into a numpy array one element at a time
    # costs several times an append.
    slots: list[int] = []
    ranks: list[int] = []
    category_codes: list[int] = []
    channel_codes: list[int] = []
    new_merchant: list[bool] = []
    n_merchants: list[int] = []
    gambling: list[bool] = []
    fresh_rows: list[int] = []
    in_batch: dict[int, int] = {}
    rows = zip(columns.user_id, columns.category, columns.channel, columns.merchant, strict=True)
    for i, (user, category_name, channel_name, merchant) in enumerate(rows):
        s = slots_of.get(user)
        if s is None:
            s = state.allocate(user)
            fresh_rows.append(i)
        slots.append(s)
        k = in_batch.get(s, 0)
        in_batch[s] = k + 1
        ranks.append(k)
        code = categories.get(category_name)
        if code is None:
            code = categories[category_name] = len(categories)
        category_codes.append(code)
        code = channels.get(channel_name)
        if code is None:
            code = channels[channel_name] = len(channels)
        channel_codes.append(code)
        seen = merchants[s]
        new_merchant.append(merchant not in seen)
        seen.add(merchant)
        n_merchants.append(len(seen))
        at_gambling = gambling_of.get(merchant)
        if at_gambling is None:
            at_gambling = gambling_of[merchant] = is_gambling_merchant(merchant)
        gambling.append(at_gambling)
    slot = np.array(slots, dtype=np.intp)
    first = np.zeros(len(slots), dtype=np.bool_)
    first[fresh_rows] = True
    state.fit_arrays()
    fresh = slot[first]
    state.reset_slots(fresh)
    times = state.times
    stamps = columns.timestamp_ns[first]
    for name in ("last_ts", "first_ts", "recent_ref_ts"):
        times[TIME_FIELDS.index(name), fresh] = stamps
    state.sums[ROW["min_balance"], fresh] = columns.balance_after[first]
    return _Known(
        slot,
        np.array(ranks, dtype=np.intp),
        np.array(category_codes, dtype=np.intp),
        np.array(channel_codes, dtype=np.intp),
        np.array(new_merchant, dtype=np.float64),
        np.array(n_merchants, dtype=np.float64),
        np.array(gambling, dtype=np.bool_),
        first,
    )


def _batch_columns(
    state: OnlineState, columns: TxColumns, known: _Known, order: Any
) -> BatchInputs:
    debit = columns.is_debit[order]
    category = known.category[order]
    groups = state.category_groups
    if len(groups.levels) != len(state.categories):
        groups = state.category_groups = CategoryGroups(tuple(state.categories))
    flags = row_flags(debit, category, known.gambling[order], groups)
    balance = columns.balance_after[order]
    low = balance < LOW_BALANCE_THRESHOLD
    amount = columns.amount[order]
    return BatchInputs(
        slot=known.slot[order],
        ts=columns.timestamp_ns[order],
        amount=amount,
        debit=debit,
        balance=balance,
        category=category,
        log_amount=np.log1p(amount),
        gambling=flags.gambling,
        distress=flags.distress,
        discretionary=flags.discretionary,
        essential=flags.essential,
        cash_out=flags.cash_out,
        transfer_in=flags.transfer_in,
        salary=flags.salary,
        low=low,
        overdrawn=low & (balance < 0),
    )


def feature_matrix(values: Sequence[Any], n: int) -> Matrix:
    """The formulas' values (a column per feature) as a matrix with `n` rows."""
    out = np.empty((n, len(values)), dtype=np.float64)
    for j, value in enumerate(values):
        out[:, j] = value  # a formula of constants only comes back a scalar: broadcast
    return out


def _fields_of(values: Sums | Times, names: tuple[str, ...]) -> list[Any]:
    return [getattr(values, name) for name in names]
