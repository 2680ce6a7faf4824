"""The batch path's input checks, and its rows sorted into the canonical per-user order.

Every column the features read is checked once here (FinriskError names the column and a bad
row), then the rows are sorted by (user, timestamp, transaction_id)
(`finrisk.features.ordering`) with the per-user group structure the statistics need.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from finrisk.errors import FinriskError
from finrisk.features.definitions import DEBIT_DIRECTION
from finrisk.features.formulas import Codes
from finrisk.features.ordering import canonical_order
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
from finrisk.timestamps import series_to_ns

FEATURE_INPUT_COLUMNS: tuple[str, ...] = OBSERVED_COLUMNS


@dataclass(frozen=True)
class Sorted:
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


def prepare(df: pd.DataFrame) -> Sorted:
    """The columns of `df` checked and in canonical order; FinriskError says what is wrong."""
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
    return Sorted(
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
