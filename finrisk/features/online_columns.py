"""Transactions as columns, the online path's input (`OnlineFeatures.observe_columns`).

The streaming bridge builds these columns straight from its decoded messages; `transaction_columns`
makes them from canonical mappings. `column_problems` names the rows the features cannot take, so
the bridge can dead-letter them before the state changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from finrisk.errors import FinriskError
from finrisk.features.definitions import DEBIT_DIRECTION
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

# The array types of the online path's modules.
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Matrix = npt.NDArray[np.float64]  # two-dimensional


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
