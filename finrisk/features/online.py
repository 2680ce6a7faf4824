"""Online path: the statistics of `finrisk.features.formulas`, kept incrementally per user.

`OnlineFeatures` keeps every user's running statistics in columns: one row per statistic and a
column ("slot") per user, in a float64 block (sums, counts, maxima, the time-decayed "recent"
sums against a per-user reference time) and an int64 block (timestamps), beside per-category
counts and spend (a column per category), each user's set of merchants and their velocity
windows.

A micro-batch is applied in rounds: round k applies the k-th transaction of every user in the
batch at once. The users of one round are distinct, so a round is plain array arithmetic on
their columns, and rounds run in order, so each user's transactions are applied in arrival
order exactly as one at a time would be. Micro-batches of a real stream need few rounds (about
ten for 2000 transactions of 2000 users); one user's burst costs a round per transaction. The
velocity windows are the one per-transaction loop: each is a list of (timestamp, debit total
before) in arrival order with a start per window. The batch path's formulas then turn each
transaction's statistics and its user's after it into features, on whole columns.

A stream fed in each user's canonical order (timestamp, transaction_id) gives the batch path's
values; the parity test proves it. A transaction arriving with an earlier timestamp than its
user's previous one is processed as it comes: its gap counts as 0 and the windows expire
relative to the newest timestamp seen for that user, so a late message is never lost but its
velocity counts are approximate. The recent (time-decayed) sums stay exact: a late
transaction enters them with its own age's weight.

Every value of a transaction depends on its user's history only, never on which other
transactions share its batch: a test proves the features bit for bit equal whatever the batch
boundaries, which is what makes a restarted consumer score as an uninterrupted one.

State survives restarts through `snapshot(user_id) -> bytes` and `restore(user_id, bytes)`
(a JSON header, then the numbers in binary), keyed by user, so the streaming bridge can keep
a compacted changelog topic.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson

from finrisk.errors import FinriskError
from finrisk.features.definitions import (
    COUNTED_CATEGORIES,
    DEBIT_DIRECTION,
    LOW_BALANCE_THRESHOLD,
    NS_PER_DAY,
    NS_PER_SECOND,
    RECENT_DECAY_DAYS,
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
from finrisk.features.row_flags import CategoryGroups, row_flags
from finrisk.features.timestamps import to_ns
from finrisk.schema import (
    AMOUNT,
    BALANCE_AFTER,
    CATEGORY,
    CHANNEL,
    CREDIT,
    DIRECTION,
    MERCHANT,
    TIMESTAMP,
    USER_ID,
)

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Matrix = npt.NDArray[np.float64]

# 3: the numbers in binary after a JSON header. 2 (JSON only) held the same statistics; 1
# lacked some. A snapshot of another version is refused: rebuild its state by replaying.
SNAPSHOT_VERSION = 3
_NS_PER_SECOND_F = float(NS_PER_SECOND)
_NS_PER_DAY_F = float(NS_PER_DAY)
# The time-decayed sums are kept against a per-user reference time (`recent_ref_ts`): a
# transaction adds x * exp((ts - ref) / tau), so no sum is decayed on every update, and reading
# one multiplies it by exp((ref - latest) / tau). The reference moves forward (rescaling the
# sums) once a weight would exceed e^30.
_REBASE_NS = round(30 * RECENT_DECAY_DAYS * NS_PER_DAY)
# last_salary_ts before a user's first salary.
_NO_SALARY = np.iinfo(np.int64).min
_INITIAL_SLOTS = 1024


@dataclass(slots=True)
class _Sums:
    """A user's float statistics; in a round, each field is an array over the round's users."""

    n_tx: Floats
    n_debits: Floats
    debit_log_sum: Floats
    debit_log_sumsq: Floats
    debit_max: Floats
    debit_cum: Floats  # total expense so far
    expense_sumsq: Floats
    total_income: Floats
    n_low: Floats
    n_overdrawn: Floats
    discretionary: Floats
    essential: Floats
    cash_out: Floats
    salary_income: Floats
    salary_k: Floats
    salary_sum: Floats
    salary_sumsq: Floats
    balance_sum: Floats
    min_balance: Floats
    last_balance: Floats
    t_sum: Floats
    tt_sum: Floats
    b_sum: Floats
    tb_sum: Floats
    n_gambling: Floats
    n_distress: Floats
    recent_weight: Floats
    recent_debit_weight: Floats
    recent_income: Floats
    recent_expense: Floats
    recent_overdrawn: Floats
    recent_low_balance: Floats
    recent_distress: Floats
    recent_balance: Floats
    recent_transfer_in: Floats


@dataclass(slots=True)
class _Times:
    """A user's timestamps (int ns); in a round, arrays over the round's users."""

    last_ts: Ints  # the newest seen (a late transaction does not move it back)
    first_ts: Ints  # the first to arrive
    recent_ref_ts: Ints
    last_salary_ts: Ints  # _NO_SALARY before the first salary


_SUM_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(_Sums))
_TIME_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(_Times))
_ROW = {name: i for i, name in enumerate(_SUM_FIELDS)}
_RECENT: tuple[str, ...] = tuple(name for name in _SUM_FIELDS if name.startswith("recent_"))
# What a transaction's features need of its user's statistics before it.
_PRIOR_ROWS = np.array(
    [_ROW[name] for name in ("n_debits", "debit_log_sum", "debit_log_sumsq", "debit_max")]
)
_DEBIT_CUM_ROW = _ROW["debit_cum"]
_LAST_TS_ROW = _TIME_FIELDS.index("last_ts")

# Per window: its length, and whether its debit sum is a feature (in WINDOWS order, which
# SUM_WINDOWS follows; a test holds it to that).
_WINDOW_LENGTHS: tuple[int, ...] = tuple(length for _, length in WINDOWS)
_SUMMED: tuple[int, ...] = tuple(
    k for k, (suffix, _) in enumerate(WINDOWS) if suffix in SUM_WINDOWS
)
_LONGEST = _WINDOW_LENGTHS.index(max(_WINDOW_LENGTHS))
# A window list drops its expired head once this many entries have expired from every window.
_TRIM_AFTER = 64


class TxColumns(NamedTuple):
    """Transactions as columns, converted (`transaction_columns` makes them from mappings)."""

    user_id: Sequence[Any]
    timestamp_ns: Ints
    amount: Floats
    is_debit: npt.NDArray[np.bool_]
    category: Sequence[str]
    merchant: Sequence[Any]
    channel: Sequence[str]
    balance_after: Floats

    @property
    def size(self) -> int:
        return len(self.user_id)

    def take(self, rows: Sequence[int]) -> TxColumns:
        """The columns of these rows only."""
        index = np.asarray(rows, dtype=np.intp)
        return TxColumns(
            [self.user_id[i] for i in rows],
            self.timestamp_ns[index],
            self.amount[index],
            self.is_debit[index],
            [self.category[i] for i in rows],
            [self.merchant[i] for i in rows],
            [self.channel[i] for i in rows],
            self.balance_after[index],
        )


def transaction_columns(txs: Sequence[Mapping[str, Any]]) -> TxColumns:
    """Columns of canonical transactions (mappings); FinriskError names the first missing or
    mistyped field (the values' bounds are `column_problems`', checked by `observe_columns`).

    The timestamp is preferably epoch milliseconds (int); ISO-8601 strings, datetimes and
    pandas Timestamps are accepted too (`finrisk.features.timestamps.to_ns`).
    """
    n = len(txs)
    users: list[Any] = []
    stamps = np.empty(n, dtype=np.int64)
    amounts = np.empty(n, dtype=np.float64)
    debits = np.empty(n, dtype=np.bool_)
    categories: list[str] = []
    merchants: list[Any] = []
    channels: list[str] = []
    balances = np.empty(n, dtype=np.float64)
    for i, tx in enumerate(txs):
        try:
            users.append(tx[USER_ID])
            stamps[i] = to_ns(tx[TIMESTAMP])
            amounts[i] = float(tx[AMOUNT])
            direction = tx[DIRECTION]
            categories.append(tx[CATEGORY])
            merchants.append(tx[MERCHANT])
            channels.append(tx[CHANNEL])
            balances[i] = float(tx[BALANCE_AFTER])
        except KeyError as exc:
            raise FinriskError(f"transaction has no field {exc.args[0]!r}") from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise FinriskError(f"transaction has a field of the wrong type: {exc}") from None
        if direction == DEBIT_DIRECTION:
            debits[i] = True
        elif direction == CREDIT:
            debits[i] = False
        else:
            raise FinriskError(
                f"transaction field {DIRECTION!r} must be {DEBIT_DIRECTION!r} or {CREDIT!r}, "
                f"not {direction!r}"
            )
    return TxColumns(users, stamps, amounts, debits, categories, merchants, channels, balances)


def column_problems(columns: TxColumns) -> list[tuple[int, str]]:
    """(row, reason) of every transaction the features cannot take (none from a checked
    stream; the bridge dead-letters them instead of failing its batch)."""
    amount, balance = columns.amount, columns.balance_after
    bad_amount = ~((amount > 0) & (amount < math.inf))
    bad_balance = ~np.isfinite(balance)
    problems = []
    for row in np.flatnonzero(bad_amount | bad_balance).tolist():
        if bad_amount[row]:
            problems.append((row, f"transaction field {AMOUNT!r} must be a finite number > 0"))
        else:
            problems.append((row, f"transaction field {BALANCE_AFTER!r} must be finite"))
    return problems


class _Windows:
    """A user's velocity windows: the (timestamp, debit total before) of their recent
    transactions in arrival order, and where each window starts in them. A window drops its
    head while the head expired against the newest timestamp; the newest transaction itself
    never expires, so a start never passes the end."""

    __slots__ = ("cums", "stamps", "starts")

    def __init__(self) -> None:
        self.stamps: list[int] = []
        self.cums: list[float] = []
        self.starts = [0] * len(_WINDOW_LENGTHS)


class _Batch(NamedTuple):
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

    def rows(self, start: int, stop: int) -> _Batch:
        return _Batch._make(column[start:stop] for column in self)


class OnlineFeatures:
    """Incremental per-user feature state for a streaming consumer (one process, one thread)."""

    def __init__(self) -> None:
        self._slots: dict[Any, int] = {}
        self._free: list[int] = []
        self._next_slot = 0
        self._sums = np.zeros((len(_SUM_FIELDS), _INITIAL_SLOTS), dtype=np.float64)
        self._times = np.zeros((len(_TIME_FIELDS), _INITIAL_SLOTS), dtype=np.int64)
        # Per category (a column each, in order of first appearance; COUNTED_CATEGORIES first).
        self._categories: dict[str, int] = {name: j for j, name in enumerate(COUNTED_CATEGORIES)}
        self._counted = np.arange(len(COUNTED_CATEGORIES))
        self._category_counts = np.zeros((_INITIAL_SLOTS, len(self._categories)))
        self._category_spend = np.zeros((_INITIAL_SLOTS, len(self._categories)))
        self._category_groups = CategoryGroups(tuple(self._categories))
        self._channels: dict[str, int] = {}
        self._gambling: dict[Any, bool] = {}  # per merchant name (no more of them than in sets)
        self._merchants: list[set[Any]] = []
        self._windows: list[_Windows] = []

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._slots

    def users(self) -> Iterator[Any]:
        """The ids of the users with state."""
        return iter(self._slots)

    def update(self, tx: Mapping[str, Any]) -> dict[str, float]:
        """Add one transaction to its user's state; return its TRANSACTION_FEATURES."""
        tx_matrix, _ = self.observe([tx])
        return dict(zip(TRANSACTION_FEATURES, tx_matrix[0].tolist(), strict=True))

    def observe(self, txs: Sequence[Mapping[str, Any]]) -> tuple[Matrix, Matrix]:
        """Add transactions (canonical mappings, in arrival order) to their users' states; see
        `observe_columns`."""
        return self.observe_columns(transaction_columns(txs))

    def observe_columns(self, columns: TxColumns) -> tuple[Matrix, Matrix]:
        """Add transactions, in arrival order, to their users' states.

        Returns two matrices with a row per transaction: its TRANSACTION_FEATURES, and its
        user's USER_FEATURES as of (and including) it. FinriskError, before any state changes,
        if a transaction cannot be taken (`column_problems`).
        """
        problems = column_problems(columns)
        if problems:
            row, reason = problems[0]
            raise FinriskError(f"transaction {row}: {reason}")
        n = columns.size
        if n == 0:
            return (
                np.empty((0, len(TRANSACTION_FEATURES))),
                np.empty((0, len(USER_FEATURES))),
            )
        known = self._prepare_users(columns)
        # Round order: the k-th transaction of each user in round k (stable, so each user's
        # transactions keep their order); every column below is in this order.
        order = np.argsort(known.rank, kind="stable")
        rounds = np.searchsorted(known.rank[order], np.arange(known.rank.max() + 2))
        batch = self._batch_columns(columns, known, order)

        prior = np.empty((len(_PRIOR_ROWS) + 1, n))  # _PRIOR_ROWS, then the debit total
        last_before = np.empty(n, dtype=np.int64)
        after_sums = np.empty((len(_SUM_FIELDS), n))
        after_times = np.empty((len(_TIME_FIELDS), n), dtype=np.int64)
        seen_category = np.empty(n)
        top_spend = np.empty(n)
        counted = np.empty((len(COUNTED_CATEGORIES), n))
        for start, stop in zip(rounds[:-1].tolist(), rounds[1:].tolist(), strict=True):
            if start == stop:
                continue
            part = batch.rows(start, stop)
            slot = part.slot
            sums, times = self._sums[:, slot], self._times[:, slot]
            prior[: len(_PRIOR_ROWS), start:stop] = sums[_PRIOR_ROWS]
            prior[-1, start:stop] = sums[_DEBIT_CUM_ROW]
            last_before[start:stop] = times[_LAST_TS_ROW]
            s, t = _Sums(*sums), _Times(*times)
            _advance(s, t, part)
            self._sums[:, slot] = after_sums[:, start:stop] = np.stack(_fields_of(s, _SUM_FIELDS))
            self._times[:, slot] = after_times[:, start:stop] = np.stack(
                _fields_of(t, _TIME_FIELDS)
            )
            cells = (slot, part.category)
            seen = self._category_counts[cells]
            seen_category[start:stop] = seen
            self._category_counts[cells] = seen + 1.0
            spend = self._category_spend[cells]
            self._category_spend[cells] = np.where(part.debit, spend + part.amount, spend)
            top_spend[start:stop] = self._category_spend[slot].max(axis=1)
            counted[:, start:stop] = self._category_counts[slot[:, None], self._counted].T

        first = known.first[order]
        clock = np.maximum(batch.ts, last_before)
        window_counts, window_sums = self._window_stats(
            batch.slot, batch.ts, clock, prior[-1], after_sums[_DEBIT_CUM_ROW]
        )
        tx_stats = TxStats(
            amount=batch.amount,
            is_debit=batch.debit.astype(np.float64),
            balance_after=batch.balance,
            timestamp_ns=batch.ts,
            category=Codes(batch.category, tuple(self._categories)),
            channel=Codes(known.channel[order], tuple(self._channels)),
            prior_debit_count=prior[0],
            prior_debit_log_sum=prior[1],
            prior_debit_log_sumsq=prior[2],
            prior_debit_max=prior[3],
            window_counts=window_counts,
            window_debit_sums=window_sums,
            has_prev=~first,
            seconds_since_prev=np.where(
                ~first & (batch.ts >= last_before), (batch.ts - last_before) / _NS_PER_SECOND_F, 0.0
            ),
            is_new_category=(seen_category == 0).astype(np.float64),
            is_new_merchant=known.new_merchant[order],
        )
        user_stats = _user_stats(
            after_sums, after_times, known.n_merchants[order], top_spend, list(counted)
        )
        # Back to arrival order.
        tx_matrix = np.empty((n, len(TRANSACTION_FEATURES)))
        tx_matrix[order] = _matrix(transaction_formulas(tx_stats), n)
        user_matrix = np.empty((n, len(USER_FEATURES)))
        user_matrix[order] = _matrix(user_formulas(user_stats), n)
        return tx_matrix, user_matrix

    def _prepare_users(self, columns: TxColumns) -> _Known:
        """Slots (new users get fresh ones), ranks, category and channel codes, and merchant
        novelty, per transaction in arrival order."""
        slots_of, categories, channels = self._slots, self._categories, self._channels
        merchants, gambling_of = self._merchants, self._gambling
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
        rows = zip(
            columns.user_id, columns.category, columns.channel, columns.merchant, strict=True
        )
        for i, (user, category_name, channel_name, merchant) in enumerate(rows):
            s = slots_of.get(user)
            if s is None:
                s = self._allocate(user)
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
        self._fit_arrays()
        fresh = slot[first]
        self._reset_slots(fresh)
        times = self._times
        stamps = columns.timestamp_ns[first]
        for name in ("last_ts", "first_ts", "recent_ref_ts"):
            times[_TIME_FIELDS.index(name), fresh] = stamps
        self._sums[_ROW["min_balance"], fresh] = columns.balance_after[first]
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

    def _batch_columns(self, columns: TxColumns, known: _Known, order: Any) -> _Batch:
        debit = columns.is_debit[order]
        category = known.category[order]
        groups = self._category_groups
        if len(groups.levels) != len(self._categories):
            groups = self._category_groups = CategoryGroups(tuple(self._categories))
        flags = row_flags(debit, category, known.gambling[order], groups)
        balance = columns.balance_after[order]
        low = balance < LOW_BALANCE_THRESHOLD
        amount = columns.amount[order]
        return _Batch(
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

    def _window_stats(
        self, slots: Any, stamps: Ints, clocks: Ints, cum_before: Floats, cum_after: Floats
    ) -> tuple[list[Floats], list[Floats]]:
        """Counts in each window and debit sums in the summed ones, per transaction (round
        order keeps each user's transactions in arrival order)."""
        counts: list[list[int]] = [[] for _ in _WINDOW_LENGTHS]
        sums: list[list[float]] = [[] for _ in _SUMMED]
        # Each column's append bound once: this loop runs per transaction.
        count_into = [
            (k, length, column.append)
            for k, (length, column) in enumerate(zip(_WINDOW_LENGTHS, counts, strict=True))
        ]
        sum_into = [(k, column.append) for k, column in zip(_SUMMED, sums, strict=True)]
        windows = self._windows
        rows = zip(
            slots.tolist(),
            stamps.tolist(),
            clocks.tolist(),
            cum_before.tolist(),
            cum_after.tolist(),
            strict=True,
        )
        for slot, ts, clock, before, after in rows:
            window = windows[slot]
            entries, cums, starts = window.stamps, window.cums, window.starts
            entries.append(ts)
            cums.append(before)
            end = len(entries)
            for k, length, count in count_into:
                cutoff = clock - length
                j = starts[k]
                if entries[j] <= cutoff:
                    # Not bisect: a late transaction leaves the entries out of time order.
                    j += 1
                    while entries[j] <= cutoff:
                        j += 1
                    starts[k] = j
                count(end - j)
            for k, total in sum_into:
                total(after - cums[starts[k]])
            expired = starts[_LONGEST]
            if expired > _TRIM_AFTER:
                del entries[:expired], cums[:expired]
                window.starts = [start - expired for start in starts]
        return (
            [np.array(column, dtype=np.float64) for column in counts],
            [np.array(column, dtype=np.float64) for column in sums],
        )

    def _allocate(self, user_id: Any) -> int:
        if self._free:
            slot = self._free.pop()
            self._merchants[slot] = set()
            self._windows[slot] = _Windows()
        else:
            slot = self._next_slot
            self._next_slot += 1
            self._merchants.append(set())
            self._windows.append(_Windows())
        self._slots[user_id] = slot
        return slot

    def _fit_arrays(self) -> None:
        """Room for every slot handed out and every category seen."""
        capacity = self._sums.shape[1]
        if self._next_slot > capacity:
            grown = max(self._next_slot, 2 * capacity)
            self._sums = _widen(self._sums, (len(_SUM_FIELDS), grown))
            self._times = _widen(self._times, (len(_TIME_FIELDS), grown))
        shape = (self._sums.shape[1], len(self._categories))
        if shape != self._category_counts.shape:
            self._category_counts = _widen(self._category_counts, shape)
            self._category_spend = _widen(self._category_spend, shape)

    def _reset_slots(self, slots: Any) -> None:
        self._sums[:, slots] = 0.0
        self._times[:, slots] = 0
        self._times[_TIME_FIELDS.index("last_salary_ts"), slots] = _NO_SALARY
        self._category_counts[slots] = 0.0
        self._category_spend[slots] = 0.0

    def user_features(self, user_id: Any) -> dict[str, float]:
        """USER_FEATURES of everything seen so far for `user_id`."""
        return dict(zip(USER_FEATURES, self.user_values(user_id), strict=True))

    def user_values(self, user_id: Any) -> tuple[float, ...]:
        """As `user_features`, but the values in USER_FEATURES order, without names."""
        slot = self._slot(user_id)
        index = np.array([slot])
        stats = _user_stats(
            self._sums[:, index],
            self._times[:, index],
            np.array([float(len(self._merchants[slot]))]),
            self._category_spend[index].max(axis=1),
            list(self._category_counts[index][:, self._counted].T),
        )
        return tuple(_matrix(user_formulas(stats), 1)[0].tolist())

    def snapshot(self, user_id: Any) -> bytes:
        """The user's whole state as bytes, for a changelog keyed by user (see `snapshots`)."""
        return self.snapshots([user_id])[0]

    def snapshots(self, user_ids: Sequence[Any]) -> list[bytes]:
        """`snapshot` of each user, the numbers of all of them read at once.

        A snapshot is a JSON header (version, category names, merchants, window starts and
        length), a newline, then the numbers as little-endian float64/int64: the statistics,
        the timestamps, the per-category counts and spend, the window timestamps and debit
        totals. Written as JSON text the numbers cost ~5x as much, and a checkpoint
        snapshots every user changed in the interval.
        """
        slots = [self._slot(user) for user in user_ids]
        categories = list(self._categories)
        n = len(slots)
        if n == 0:
            return []
        numbers = np.concatenate(
            [
                self._sums[:, slots].T.astype("<f8").view(np.uint8).reshape(n, -1),
                self._times[:, slots].T.astype("<i8").view(np.uint8).reshape(n, -1),
                self._category_counts[slots].astype("<f8").view(np.uint8).reshape(n, -1),
                self._category_spend[slots].astype("<f8").view(np.uint8).reshape(n, -1),
            ],
            axis=1,
        ).tobytes()
        width = len(numbers) // n
        documents = []
        for i, slot in enumerate(slots):
            window = self._windows[slot]
            first = window.starts[_LONGEST]
            stamps = array("q", window.stamps[first:])
            cums = array("d", window.cums[first:])
            header = {
                "version": SNAPSHOT_VERSION,
                "categories": categories,
                "merchants": list(self._merchants[slot]),
                "window_starts": [start - first for start in window.starts],
                "window_entries": len(stamps),
            }
            if sys.byteorder != "little":
                stamps.byteswap()
                cums.byteswap()
            documents.append(
                b"".join(
                    (
                        orjson.dumps(header),
                        b"\n",
                        numbers[i * width : (i + 1) * width],
                        stamps.tobytes(),
                        cums.tobytes(),
                    )
                )
            )
        return documents

    def restore(self, user_id: Any, data: bytes) -> None:
        """Replace the user's state with one written by `snapshot`."""
        try:
            state = _read_snapshot(data)
        except FinriskError as exc:
            raise FinriskError(f"feature state of user {user_id!r} {exc}") from None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FinriskError(f"feature state of user {user_id!r} is unreadable: {exc}") from None
        slot = self._slots.get(user_id)
        if slot is None:
            slot = self._allocate(user_id)
        for name in state.categories:
            self._categories.setdefault(name, len(self._categories))
        self._fit_arrays()
        self._reset_slots([slot])
        self._sums[:, slot] = state.sums
        self._times[:, slot] = state.times
        columns = [self._categories[name] for name in state.categories]
        self._category_counts[slot, columns] = state.category_counts
        self._category_spend[slot, columns] = state.category_spend
        self._merchants[slot] = state.merchants
        self._windows[slot] = state.windows

    def forget(self, user_id: Any) -> None:
        """Drop the user's state (e.g. when a changelog tombstone arrives)."""
        slot = self._slots.pop(user_id, None)
        if slot is not None:
            self._free.append(slot)

    def _slot(self, user_id: Any) -> int:
        slot = self._slots.get(user_id)
        if slot is None:
            raise FinriskError(f"no transactions seen for user {user_id!r}")
        return slot


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


def _advance(s: _Sums, t: _Times, x: _Batch) -> None:
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
    had_salary = t.last_salary_ts != _NO_SALARY
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


def _user_stats(
    sums: Matrix,
    times: Ints,
    n_merchants: Floats,
    top_category_spend: Floats,
    category_counts: list[Floats],
) -> UserStats:
    """UserStats of users' statistics (a column per user, or per transaction's user after it)."""
    s, t = _Sums(*sums), _Times(*times)
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


class _Snapshot(NamedTuple):
    sums: Floats
    times: Ints
    categories: list[str]
    category_counts: Floats
    category_spend: Floats
    merchants: set[Any]
    windows: _Windows


def _read_snapshot(data: bytes) -> _Snapshot:
    """A snapshot's parts; FinriskError (or a decoding error) says what is wrong."""
    end = data.find(b"\n")
    header = orjson.loads(data[:end] if end >= 0 else data)
    version = header.get("version")
    if version != SNAPSHOT_VERSION:
        raise FinriskError(
            f"has snapshot version {version!r}; this finrisk reads version {SNAPSHOT_VERSION} "
            "only (a state of another version lacks statistics the features need or is laid "
            "out otherwise: drop it and replay the user's transactions)"
        )
    categories = [str(name) for name in header["categories"]]
    entries = int(header["window_entries"])
    starts = [int(start) for start in header["window_starts"]]
    sizes = (len(_SUM_FIELDS), len(_TIME_FIELDS), len(categories), len(categories), entries)
    body = memoryview(data)[end + 1 :]
    if end < 0 or len(body) != 8 * (sum(sizes) + entries):
        raise FinriskError("is unreadable: its numbers are cut short or too long")
    if len(starts) != len(_WINDOW_LENGTHS) or not all(0 <= s <= entries for s in starts):
        raise FinriskError("has the wrong windows")
    offsets = np.cumsum([0, *sizes, entries]) * 8
    blocks = [body[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
    window = _Windows()
    window.stamps = np.frombuffer(blocks[4], dtype="<i8").tolist()
    window.cums = np.frombuffer(blocks[5], dtype="<f8").tolist()
    window.starts = starts
    return _Snapshot(
        sums=np.frombuffer(blocks[0], dtype="<f8"),
        times=np.frombuffer(blocks[1], dtype="<i8"),
        categories=categories,
        category_counts=np.frombuffer(blocks[2], dtype="<f8"),
        category_spend=np.frombuffer(blocks[3], dtype="<f8"),
        merchants=set(header["merchants"]),
        windows=window,
    )


def _matrix(values: Sequence[Any], n: int) -> Matrix:
    out = np.empty((n, len(values)), dtype=np.float64)
    for j, value in enumerate(values):
        out[:, j] = value  # a formula of constants only comes back a scalar: broadcast
    return out


def _widen(block: Any, shape: tuple[int, int]) -> Any:
    """`block` grown to `shape` with zeros."""
    grown = np.zeros(shape, dtype=block.dtype)
    grown[: block.shape[0], : block.shape[1]] = block
    return grown


def _fields_of(values: _Sums | _Times, names: tuple[str, ...]) -> list[Any]:
    return [getattr(values, name) for name in names]
