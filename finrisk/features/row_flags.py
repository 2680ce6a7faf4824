"""What each transaction is, for the user statistics: one definition for the batch and online
paths (gambling, distress, discretionary, essential, cash out, transfer in, salary).

The spending groups are disjoint (checked here, at import): a debit counts as discretionary,
essential or cash out, never as two, so the shares the user features hold add up. A new
category in two groups fails at once instead of making the two paths disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from finrisk.features.definitions import (
    CASH_OUT_CATEGORIES,
    DISCRETIONARY_CATEGORIES,
    DISTRESS_CATEGORIES,
    ESSENTIAL_CATEGORIES,
    SALARY,
    TRANSFER_IN,
)

Flags = npt.NDArray[np.bool_]
SPENDING_GROUPS: dict[str, frozenset[str]] = {
    "discretionary": DISCRETIONARY_CATEGORIES,
    "essential": ESSENTIAL_CATEGORIES,
    "cash_out": CASH_OUT_CATEGORIES,
}


def check_disjoint(groups: dict[str, frozenset[str]]) -> None:
    for (a, first), (b, second) in combinations(groups.items(), 2):
        if first & second:
            raise ValueError(
                f"categories {sorted(first & second)} are both {a} and {b}: a debit must "
                "belong to one spending group at most"
            )


check_disjoint(SPENDING_GROUPS)


class CategoryGroups:
    """Per category code (an index into `levels`), the groups the category belongs to."""

    def __init__(self, levels: Sequence[str]) -> None:
        self.levels = tuple(levels)

        def member(group: frozenset[str]) -> Flags:
            return np.array([name in group for name in self.levels], dtype=np.bool_)

        self.distress = member(DISTRESS_CATEGORIES)
        self.discretionary = member(DISCRETIONARY_CATEGORIES)
        self.essential = member(ESSENTIAL_CATEGORIES)
        self.cash_out = member(CASH_OUT_CATEGORIES)
        self.transfer_in = member(frozenset({TRANSFER_IN}))
        self.salary = member(frozenset({SALARY}))


class RowFlags(NamedTuple):
    gambling: Flags  # a debit at a gambling merchant
    distress: Flags  # a debit at a gambling merchant or in a distress category
    discretionary: Flags  # debits only, as the next two
    essential: Flags
    cash_out: Flags
    transfer_in: Flags  # credits only, as the next one
    salary: Flags


def row_flags(
    debit: Flags, category: npt.NDArray[np.intp], gambling_merchant: Flags, groups: CategoryGroups
) -> RowFlags:
    """The flags of each row, from its direction, its category code and whether its merchant
    is a gambling one."""
    credit = ~debit
    gambling = debit & gambling_merchant
    return RowFlags(
        gambling=gambling,
        distress=debit & (gambling | groups.distress[category]),
        discretionary=debit & groups.discretionary[category],
        essential=debit & groups.essential[category],
        cash_out=debit & groups.cash_out[category],
        transfer_in=credit & groups.transfer_in[category],
        salary=credit & groups.salary[category],
    )
