"""The online path's state: every user's running statistics, kept in columns.

One row per statistic and a column ("slot") per user, in a float64 block (sums, counts, maxima,
the time-decayed "recent" sums against a per-user reference time) and an int64 block
(timestamps), beside per-category counts and spend (a column per category), each user's set of
merchants and their velocity windows. Columns let a round of a micro-batch
(`finrisk.features.online_pass`) update all of its users with plain array arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from finrisk.errors import FinriskError
from finrisk.features.definitions import COUNTED_CATEGORIES
from finrisk.features.online_arrays import Floats, Ints
from finrisk.features.online_windows import VelocityWindows
from finrisk.features.row_flags import CategoryGroups

# last_salary_ts before a user's first salary.
NO_SALARY = np.iinfo(np.int64).min
_INITIAL_SLOTS = 1024


@dataclass(slots=True)
class Sums:
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
class Times:
    """A user's timestamps (int ns); in a round, arrays over the round's users."""

    last_ts: Ints  # the newest seen (a late transaction does not move it back)
    first_ts: Ints  # the first to arrive
    recent_ref_ts: Ints
    last_salary_ts: Ints  # NO_SALARY before the first salary


SUM_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Sums))
TIME_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Times))
ROW = {name: i for i, name in enumerate(SUM_FIELDS)}


class OnlineState:
    """The columns of every user's statistics, and which slot (column) each user has."""

    def __init__(self) -> None:
        self.slots: dict[Any, int] = {}
        self.free: list[int] = []
        self.next_slot = 0
        self.sums = np.zeros((len(SUM_FIELDS), _INITIAL_SLOTS), dtype=np.float64)
        self.times = np.zeros((len(TIME_FIELDS), _INITIAL_SLOTS), dtype=np.int64)
        # Per category (a column each, in order of first appearance; COUNTED_CATEGORIES first).
        self.categories: dict[str, int] = {name: j for j, name in enumerate(COUNTED_CATEGORIES)}
        self.counted = np.arange(len(COUNTED_CATEGORIES))
        self.category_counts = np.zeros((_INITIAL_SLOTS, len(self.categories)))
        self.category_spend = np.zeros((_INITIAL_SLOTS, len(self.categories)))
        self.category_groups = CategoryGroups(tuple(self.categories))
        self.channels: dict[str, int] = {}
        self.gambling: dict[Any, bool] = {}  # per merchant name (no more of them than in sets)
        self.merchants: list[set[Any]] = []
        self.windows: list[VelocityWindows] = []

    def allocate(self, user_id: Any) -> int:
        """A slot for a new user (one freed by `forget` first), with no merchants or windows;
        its statistics are set by `reset_slots` once `fit_arrays` has made room."""
        if self.free:
            slot = self.free.pop()
            self.merchants[slot] = set()
            self.windows[slot] = VelocityWindows()
        else:
            slot = self.next_slot
            self.next_slot += 1
            self.merchants.append(set())
            self.windows.append(VelocityWindows())
        self.slots[user_id] = slot
        return slot

    def fit_arrays(self) -> None:
        """Room for every slot handed out and every category seen."""
        capacity = self.sums.shape[1]
        if self.next_slot > capacity:
            grown = max(self.next_slot, 2 * capacity)
            self.sums = _widen(self.sums, (len(SUM_FIELDS), grown))
            self.times = _widen(self.times, (len(TIME_FIELDS), grown))
        shape = (self.sums.shape[1], len(self.categories))
        if shape != self.category_counts.shape:
            self.category_counts = _widen(self.category_counts, shape)
            self.category_spend = _widen(self.category_spend, shape)

    def reset_slots(self, slots: Any) -> None:
        self.sums[:, slots] = 0.0
        self.times[:, slots] = 0
        self.times[TIME_FIELDS.index("last_salary_ts"), slots] = NO_SALARY
        self.category_counts[slots] = 0.0
        self.category_spend[slots] = 0.0

    def forget(self, user_id: Any) -> None:
        """Drop the user's state; their slot goes to the next new user."""
        slot = self.slots.pop(user_id, None)
        if slot is not None:
            self.free.append(slot)

    def slot(self, user_id: Any) -> int:
        """The user's slot; FinriskError if the user has no state."""
        slot = self.slots.get(user_id)
        if slot is None:
            raise FinriskError(f"no transactions seen for user {user_id!r}")
        return slot


def _widen(block: Any, shape: tuple[int, int]) -> Any:
    """`block` grown to `shape` with zeros."""
    grown = np.zeros(shape, dtype=block.dtype)
    grown[: block.shape[0], : block.shape[1]] = block
    return grown
