"""Online path: the statistics of `finrisk.features.formulas`, kept incrementally per user.

`OnlineFeatures` holds one small state per user (running sums, time-decayed "recent" sums
against a per-user reference time, the velocity windows as deques of (timestamp, cumulative
debit before), per-category counts and the set of seen merchants) and
updates it with each transaction, in O(1) amortised time. The same formulas as the batch path
turn the state into features, so that a stream fed in each user's canonical order
(timestamp, transaction_id) gives the batch path's values; the parity test proves it.

Input: a mapping with the canonical transaction fields. The timestamp is preferably epoch
milliseconds (int); ISO-8601 strings, datetimes and pandas Timestamps are accepted too
(`finrisk.features.timestamps.to_ns`). A transaction arriving with an earlier timestamp than
its user's previous one is processed as it comes: its gap counts as 0 and the windows expire
relative to the newest timestamp seen for that user, so a late message is never lost but its
velocity counts are approximate. The recent (time-decayed) sums stay exact: a late
transaction enters them with its own age's weight.

Evaluation comes apart from the update: `observe(tx)` adds a transaction and returns its raw
statistics (a `TxRow`), `user_row(user)` the user's (a `UserRow`). A streaming consumer collects
rows for a micro-batch and turns them into features with `transaction_matrix` and `user_matrix`:
the formulas evaluated once per batch on numpy arrays, as the batch path does, instead of once
per transaction on floats (`evaluate_transaction`, `evaluate_user`: one row at a time).

State survives restarts through `snapshot(user_id) -> bytes` and `restore(user_id, bytes)`:
JSON (orjson), keyed by user, so the streaming bridge can keep a compacted changelog topic.
"""

from __future__ import annotations

import math
import operator
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from finrisk.errors import FinriskError
from finrisk.features.definitions import (
    CASH_OUT_CATEGORIES,
    COUNTED_CATEGORIES,
    DEBIT_DIRECTION,
    DISCRETIONARY_CATEGORIES,
    DISTRESS_CATEGORIES,
    ESSENTIAL_CATEGORIES,
    LOW_BALANCE_THRESHOLD,
    NS_PER_DAY,
    NS_PER_SECOND,
    RECENT_DECAY_DAYS,
    SALARY,
    SUM_WINDOWS,
    TRANSACTION_FEATURES,
    TRANSFER_IN,
    USER_FEATURES,
    WINDOWS,
)
from finrisk.features.formulas import (
    ARRAY_OPS,
    DECAY_PER_NS,
    SCALAR_OPS,
    TxStats,
    UserStats,
    is_gambling_merchant,
    transaction_formulas,
    user_formulas,
)
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

# 2: per-category counts (replacing the set of seen categories), gambling and distress counts
# and the recent sums. An older snapshot lacks them: rebuild its state by replaying.
SNAPSHOT_VERSION = 2
_NS_PER_SECOND_F = float(NS_PER_SECOND)
_NS_PER_DAY_F = float(NS_PER_DAY)
# Per window: its length, and whether its debit sum is a feature. TxRow lists the sums in
# WINDOWS order, which SUM_WINDOWS follows (a test holds it to that).
_WINDOW_SPECS: tuple[tuple[int, bool], ...] = tuple(
    (length, suffix in SUM_WINDOWS) for suffix, length in WINDOWS
)

# The time-decayed sums of UserStats (recent_*). Online each is kept against a per-user
# reference time (`recent_ref_ts`), a transaction adding x * exp((ts - ref) / tau): no sum
# has to be decayed on every update, and reading one multiplies it by exp((ref - latest) /
# tau). The reference moves forward (rescaling the sums) once a weight would exceed e^30.
_REBASE_NS = round(30 * RECENT_DECAY_DAYS * NS_PER_DAY)
_RECENT: tuple[str, ...] = (
    "recent_weight",
    "recent_debit_weight",
    "recent_income",
    "recent_expense",
    "recent_overdrawn",
    "recent_low_balance",
    "recent_distress",
    "recent_balance",
    "recent_transfer_in",
)

# Scalar fields of a user's state, in snapshot order; the containers are handled apart.
_SCALARS: tuple[str, ...] = (
    "n_tx",
    "last_ts",
    "first_ts",
    "n_debits",
    "debit_log_sum",
    "debit_log_sumsq",
    "debit_max",
    "debit_cum",
    "expense_sumsq",
    "total_income",
    "n_low",
    "n_overdrawn",
    "discretionary",
    "essential",
    "cash_out",
    "salary_income",
    "last_salary_ts",
    "salary_k",
    "salary_sum",
    "salary_sumsq",
    "balance_sum",
    "min_balance",
    "last_balance",
    "t_sum",
    "tt_sum",
    "b_sum",
    "tb_sum",
    "n_gambling",
    "n_distress",
    "recent_ref_ts",
    *_RECENT,
)

# One call reads them all: a bridge checkpoint snapshots every user changed since the last one.
_get_scalars = operator.attrgetter(*_SCALARS)

# A transaction's raw statistics, TxStats flattened: these fields, then its WINDOWS counts,
# then its SUM_WINDOWS debit sums.
TxRow = tuple[Any, ...]
_TX_FIELDS = 14
_TIMESTAMP_FIELD, _CATEGORY_FIELD, _CHANNEL_FIELD = 3, 4, 5
_N_WINDOWS = len(WINDOWS)

# A user's raw statistics, UserStats flattened: these state fields, then the span in ns, the
# recent sums' scale to the latest transaction, the distinct merchants, the top category's
# spend, and the counts of COUNTED_CATEGORIES. All numbers: a batch of rows is one matrix.
UserRow = tuple[float, ...]
# The state's scalars in UserStats, in snapshot order (the others serve transaction features
# or bookkeeping).
_USER_STATE_FIELDS: tuple[str, ...] = tuple(
    name
    for name in _SCALARS
    if name
    not in {
        "last_ts",
        "first_ts",
        "debit_log_sum",
        "debit_log_sumsq",
        "last_salary_ts",
        "recent_ref_ts",
    }
)
_get_user_fields = operator.attrgetter(*_USER_STATE_FIELDS)
_N_USER_STATE = len(_USER_STATE_FIELDS)
_NO_COUNTS = (0,) * len(COUNTED_CATEGORIES)


class _UserState:
    """Everything the formulas need about one user's history."""

    __slots__ = (*_SCALARS, "category_counts", "category_spend", "merchants", "windows")

    def __init__(self) -> None:
        self.n_tx = 0
        self.last_ts = 0
        self.first_ts = 0
        self.n_debits = 0
        self.debit_log_sum = 0.0
        self.debit_log_sumsq = 0.0
        self.debit_max = 0.0
        self.debit_cum = 0.0  # total expense so far
        self.expense_sumsq = 0.0
        self.total_income = 0.0
        self.n_low = 0
        self.n_overdrawn = 0
        self.discretionary = 0.0
        self.essential = 0.0
        self.cash_out = 0.0
        self.salary_income = 0.0
        self.last_salary_ts: int | None = None
        self.salary_k = 0
        self.salary_sum = 0.0
        self.salary_sumsq = 0.0
        self.balance_sum = 0.0
        self.min_balance = 0.0
        self.last_balance = 0.0
        self.t_sum = 0.0
        self.tt_sum = 0.0
        self.b_sum = 0.0
        self.tb_sum = 0.0
        self.n_gambling = 0
        self.n_distress = 0
        self.recent_ref_ts = 0
        self.recent_weight = 0.0
        self.recent_debit_weight = 0.0
        self.recent_income = 0.0
        self.recent_expense = 0.0
        self.recent_overdrawn = 0.0
        self.recent_low_balance = 0.0
        self.recent_distress = 0.0
        self.recent_balance = 0.0
        self.recent_transfer_in = 0.0
        # Transactions per category; a category's first one is "new".
        self.category_counts: dict[str, int] = {}
        self.category_spend: dict[str, float] = {}
        self.merchants: set[str] = set()
        # Per window: (timestamp, cumulative debit amount before that transaction).
        self.windows: list[deque[tuple[int, float]]] = [deque() for _ in WINDOWS]


class OnlineFeatures:
    """Incremental per-user feature state for a streaming consumer (one process, one thread)."""

    def __init__(self) -> None:
        self._users: dict[Any, _UserState] = {}

    def __len__(self) -> int:
        return len(self._users)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._users

    def users(self) -> Iterator[Any]:
        """The ids of the users with state."""
        return iter(self._users)

    def update(self, tx: Mapping[str, Any]) -> dict[str, float]:
        """Add one transaction to its user's state; return its TRANSACTION_FEATURES."""
        return dict(zip(TRANSACTION_FEATURES, self.values(tx), strict=True))

    def values(self, tx: Mapping[str, Any]) -> tuple[float, ...]:
        """As `update`, but the feature values in TRANSACTION_FEATURES order, without names."""
        return evaluate_transaction(self.observe(tx))

    def observe(self, tx: Mapping[str, Any]) -> TxRow:
        """Add one transaction to its user's state; its raw statistics, for `transaction_matrix`."""
        try:
            user = tx[USER_ID]
            ts = to_ns(tx[TIMESTAMP])
            amount = float(tx[AMOUNT])
            direction = tx[DIRECTION]
            category = tx[CATEGORY]
            merchant = tx[MERCHANT]
            channel = tx[CHANNEL]
            balance = float(tx[BALANCE_AFTER])
        except KeyError as exc:
            raise FinriskError(f"transaction has no field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise FinriskError(f"transaction has a field of the wrong type: {exc}") from None
        if not amount > 0 or amount == math.inf:
            raise FinriskError(f"transaction field {AMOUNT!r} must be a finite number > 0")
        if not math.isfinite(balance):
            raise FinriskError(f"transaction field {BALANCE_AFTER!r} must be finite")
        if direction == DEBIT_DIRECTION:
            debit = True
        elif direction == CREDIT:
            debit = False
        else:
            raise FinriskError(
                f"transaction field {DIRECTION!r} must be {DEBIT_DIRECTION!r} or {CREDIT!r}, "
                f"not {direction!r}"
            )

        state = self._users.get(user)
        if state is None:
            state = self._users[user] = _UserState()
            state.first_ts = state.last_ts = state.recent_ref_ts = ts
            state.min_balance = balance
            has_prev = False
            gap = 0.0
            clock = ts
        else:
            has_prev = True
            last = state.last_ts
            if ts >= last:
                gap = (ts - last) / _NS_PER_SECOND_F
                clock = ts
            else:  # late: the windows' clock must not go backwards
                gap = 0.0
                clock = last

        category_counts = state.category_counts
        seen = category_counts.get(category, 0)
        category_counts[category] = seen + 1
        new_category = seen == 0
        new_merchant = merchant not in state.merchants
        if new_merchant:
            state.merchants.add(merchant)

        prior_debits = state.n_debits
        prior_log_sum = state.debit_log_sum
        prior_log_sumsq = state.debit_log_sumsq
        prior_max = state.debit_max
        cum_before = state.debit_cum
        if debit:
            log_amount = math.log1p(amount)
            state.n_debits = prior_debits + 1
            state.debit_log_sum = prior_log_sum + log_amount
            state.debit_log_sumsq = prior_log_sumsq + log_amount * log_amount
            if amount > prior_max:
                state.debit_max = amount
            state.debit_cum = cum_before + amount

        counts = []
        debit_cum = state.debit_cum
        sums = []
        for window, (length, summed) in zip(state.windows, _WINDOW_SPECS, strict=True):
            window.append((ts, cum_before))
            cutoff = clock - length
            while window[0][0] <= cutoff:
                window.popleft()
            counts.append(len(window))
            if summed:
                sums.append(debit_cum - window[0][1])

        self._add_to_user(state, ts, amount, debit, category, merchant, balance)
        return (
            amount,
            1.0 if debit else 0.0,
            balance,
            ts,
            category,
            channel,
            prior_debits,
            prior_log_sum,
            prior_log_sumsq,
            prior_max,
            1.0 if has_prev else 0.0,
            gap,
            1.0 if new_category else 0.0,
            1.0 if new_merchant else 0.0,
            *counts,
            *sums,
        )

    @staticmethod
    def _add_to_user(
        state: _UserState,
        ts: int,
        amount: float,
        debit: bool,
        category: str,
        merchant: Any,
        balance: float,
    ) -> None:
        state.n_tx += 1
        if ts > state.last_ts:
            state.last_ts = ts
        offset = ts - state.recent_ref_ts
        if offset > _REBASE_NS:
            _rebase_recent_sums(state, ts)
            offset = 0
        weight = math.exp(offset * DECAY_PER_NS)
        state.recent_weight += weight
        state.recent_balance += weight * balance
        if debit:
            state.recent_debit_weight += weight
            state.recent_expense += weight * amount
            gambling = is_gambling_merchant(merchant)
            if gambling:
                state.n_gambling += 1
            if gambling or category in DISTRESS_CATEGORIES:
                state.n_distress += 1
                state.recent_distress += weight
            state.expense_sumsq += amount * amount
            spend = state.category_spend
            spend[category] = spend.get(category, 0.0) + amount
            if category in DISCRETIONARY_CATEGORIES:
                state.discretionary += amount
            elif category in ESSENTIAL_CATEGORIES:
                state.essential += amount
            elif category in CASH_OUT_CATEGORIES:
                state.cash_out += amount
        else:
            state.recent_income += weight * amount
            if category == TRANSFER_IN:
                state.recent_transfer_in += weight
            state.total_income += amount
            if category == SALARY:
                state.salary_income += amount
                if state.last_salary_ts is not None:
                    interval = (ts - state.last_salary_ts) / _NS_PER_DAY_F
                    state.salary_k += 1
                    state.salary_sum += interval
                    state.salary_sumsq += interval * interval
                state.last_salary_ts = ts
        if balance < LOW_BALANCE_THRESHOLD:
            state.n_low += 1
            state.recent_low_balance += weight
            if balance < 0:
                state.n_overdrawn += 1
                state.recent_overdrawn += weight
        state.balance_sum += balance
        if balance < state.min_balance:
            state.min_balance = balance
        state.last_balance = balance
        elapsed = (ts - state.first_ts) / _NS_PER_DAY_F
        state.t_sum += elapsed
        state.tt_sum += elapsed * elapsed
        state.b_sum += balance
        state.tb_sum += elapsed * balance

    def user_features(self, user_id: Any) -> dict[str, float]:
        """USER_FEATURES of everything seen so far for `user_id`."""
        return {
            name: float(value)
            for name, value in zip(USER_FEATURES, self.user_values(user_id), strict=True)
        }

    def user_values(self, user_id: Any) -> tuple[float, ...]:
        """As `user_features`, but the values in USER_FEATURES order, without names."""
        return evaluate_user(self.user_row(user_id))

    def user_row(self, user_id: Any) -> UserRow:
        """The raw statistics of everything seen so far for `user_id`, for `user_matrix`."""
        state = self._users.get(user_id)
        if state is None:
            raise FinriskError(f"no transactions seen for user {user_id!r}")
        counts = state.category_counts
        return (
            *_get_user_fields(state),
            float(state.last_ts - state.first_ts),
            # From the reference time to the latest transaction, as the formulas define the sums.
            math.exp((state.recent_ref_ts - state.last_ts) * DECAY_PER_NS),
            len(state.merchants),
            max(state.category_spend.values(), default=0.0),
            *map(counts.get, COUNTED_CATEGORIES, _NO_COUNTS),
        )

    def snapshot(self, user_id: Any) -> bytes:
        """The user's whole state as bytes (JSON), for a changelog keyed by user."""
        state = self._users.get(user_id)
        if state is None:
            raise FinriskError(f"no state for user {user_id!r}")
        document: dict[str, Any] = {"version": SNAPSHOT_VERSION}
        document.update(zip(_SCALARS, _get_scalars(state), strict=True))
        document["category_counts"] = state.category_counts
        document["category_spend"] = state.category_spend
        document["merchants"] = list(state.merchants)
        document["windows"] = [list(window) for window in state.windows]
        return orjson.dumps(document)

    def restore(self, user_id: Any, data: bytes) -> None:
        """Replace the user's state with one written by `snapshot`."""
        try:
            document = orjson.loads(data)
            version = document.get("version")
            if version != SNAPSHOT_VERSION:
                raise FinriskError(
                    f"feature state of user {user_id!r} has snapshot version {version!r}; this "
                    f"finrisk reads version {SNAPSHOT_VERSION} only (a state of another version "
                    "lacks statistics the features need: drop it and replay the user's "
                    "transactions)"
                )
            state = _UserState()
            for name in _SCALARS:
                setattr(state, name, document[name])
            state.category_counts = {str(k): int(v) for k, v in document["category_counts"].items()}
            state.category_spend = {str(k): float(v) for k, v in document["category_spend"].items()}
            state.merchants = set(document["merchants"])
            windows = document["windows"]
            if len(windows) != len(WINDOWS):
                raise FinriskError(f"feature state of user {user_id!r} has the wrong windows")
            state.windows = [
                deque((int(ts), float(cum)) for ts, cum in window) for window in windows
            ]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FinriskError(f"feature state of user {user_id!r} is unreadable: {exc}") from None
        self._users[user_id] = state

    def forget(self, user_id: Any) -> None:
        """Drop the user's state (e.g. when a changelog tombstone arrives)."""
        self._users.pop(user_id, None)


def evaluate_transaction(row: TxRow) -> tuple[float, ...]:
    """TRANSACTION_FEATURES of one `observe` row, evaluated on floats."""
    return transaction_formulas(SCALAR_OPS, _tx_stats(row))


def evaluate_user(row: UserRow) -> tuple[float, ...]:
    """USER_FEATURES of one `user_row` row, evaluated on floats."""
    return user_formulas(SCALAR_OPS, _user_stats(row))


def transaction_matrix(rows: Sequence[TxRow]) -> npt.NDArray[np.float64]:
    """TRANSACTION_FEATURES of `observe` rows, one row each, the formulas evaluated on arrays."""
    if not rows:
        return np.empty((0, len(TRANSACTION_FEATURES)), dtype=np.float64)
    columns: list[Any] = list(zip(*rows, strict=True))
    n = len(rows)
    for i, column in enumerate(columns):
        if i == _TIMESTAMP_FIELD:
            columns[i] = np.fromiter(column, dtype=np.int64, count=n)
        elif i not in (_CATEGORY_FIELD, _CHANNEL_FIELD):
            columns[i] = np.fromiter(column, dtype=np.float64, count=n)
    return _matrix(transaction_formulas(ARRAY_OPS, _tx_stats(columns)), len(rows))


def user_matrix(rows: Sequence[UserRow]) -> npt.NDArray[np.float64]:
    """USER_FEATURES of `user_row` rows, one row each, the formulas evaluated on arrays."""
    if not rows:
        return np.empty((0, len(USER_FEATURES)), dtype=np.float64)
    # One flat pass over the numbers: numpy's conversion of a list of tuples inspects each
    # tuple's shape and each value's type first, which costs more than the conversion.
    width = len(rows[0])
    flat = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=len(rows) * width)
    columns = flat.reshape(len(rows), width).T
    return _matrix(user_formulas(ARRAY_OPS, _user_stats(list(columns))), len(rows))


def _matrix(values: Sequence[Any], n: int) -> npt.NDArray[np.float64]:
    out = np.empty((n, len(values)), dtype=np.float64)
    for j, value in enumerate(values):
        out[:, j] = value  # a formula of constants only comes back a scalar: broadcast
    return out


def _tx_stats(f: Sequence[Any]) -> TxStats:
    """TxStats of a TxRow, or of its columns (one array per field)."""
    windows_end = _TX_FIELDS + _N_WINDOWS
    return TxStats(
        amount=f[0],
        is_debit=f[1],
        balance_after=f[2],
        timestamp_ns=f[_TIMESTAMP_FIELD],
        category=f[_CATEGORY_FIELD],
        channel=f[_CHANNEL_FIELD],
        prior_debit_count=f[6],
        prior_debit_log_sum=f[7],
        prior_debit_log_sumsq=f[8],
        prior_debit_max=f[9],
        has_prev=f[10],
        seconds_since_prev=f[11],
        is_new_category=f[12],
        is_new_merchant=f[13],
        window_counts=f[_TX_FIELDS:windows_end],
        window_debit_sums=f[windows_end:],
    )


def _user_stats(f: Sequence[Any]) -> UserStats:
    """UserStats of a UserRow, or of its columns (one array per field)."""
    (
        n_tx,
        n_debits,
        max_expense,
        total_expense,
        expense_sumsq,
        total_income,
        n_low,
        n_overdrawn,
        discretionary,
        essential,
        cash_out,
        salary_income,
        salary_k,
        salary_sum,
        salary_sumsq,
        balance_sum,
        min_balance,
        last_balance,
        t_sum,
        tt_sum,
        b_sum,
        tb_sum,
        n_gambling,
        n_distress,
        *recent,
    ) = f[:_N_USER_STATE]
    span_ns, scale, n_merchants, top_category_spend = f[_N_USER_STATE : _N_USER_STATE + 4]
    (
        recent_weight,
        recent_debit_weight,
        recent_income,
        recent_expense,
        recent_overdrawn,
        recent_low_balance,
        recent_distress,
        recent_balance,
        recent_transfer_in,
    ) = (value * scale for value in recent)
    return UserStats(
        n_transactions=n_tx,
        n_debits=n_debits,
        total_income=total_income,
        total_expense=total_expense,
        expense_sumsq=expense_sumsq,
        max_expense=max_expense,
        n_low_balance=n_low,
        n_overdrawn=n_overdrawn,
        top_category_spend=top_category_spend,
        discretionary_spend=discretionary,
        essential_spend=essential,
        cash_out_spend=cash_out,
        salary_income=salary_income,
        salary_intervals=salary_k,
        salary_interval_sum=salary_sum,
        salary_interval_sumsq=salary_sumsq,
        balance_sum=balance_sum,
        min_balance=min_balance,
        last_balance=last_balance,
        span_days=span_ns / _NS_PER_DAY_F,
        trend_t_sum=t_sum,
        trend_tt_sum=tt_sum,
        trend_b_sum=b_sum,
        trend_tb_sum=tb_sum,
        n_merchants=n_merchants,
        category_counts=f[_N_USER_STATE + 4 :],
        n_gambling=n_gambling,
        n_distress=n_distress,
        recent_weight=recent_weight,
        recent_debit_weight=recent_debit_weight,
        recent_income=recent_income,
        recent_expense=recent_expense,
        recent_overdrawn=recent_overdrawn,
        recent_low_balance=recent_low_balance,
        recent_distress=recent_distress,
        recent_balance=recent_balance,
        recent_transfer_in=recent_transfer_in,
    )


def _rebase_recent_sums(state: _UserState, ts: int) -> None:
    """Move the recent sums' reference time to `ts`, before their weights grow too large."""
    scale = math.exp((state.recent_ref_ts - ts) * DECAY_PER_NS)
    for name in _RECENT:
        setattr(state, name, getattr(state, name) * scale)
    state.recent_ref_ts = ts
