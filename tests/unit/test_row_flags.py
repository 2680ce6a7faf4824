"""Row flags, one definition for both feature paths: the spending groups must be disjoint."""

from __future__ import annotations

import numpy as np
import pytest

from finrisk.features.row_flags import (
    SPENDING_GROUPS,
    CategoryGroups,
    check_disjoint,
    row_flags,
)


def test_the_spending_groups_are_disjoint_and_an_overlap_is_named() -> None:
    check_disjoint(SPENDING_GROUPS)
    with pytest.raises(ValueError, match=r"\['dining'\] are both discretionary and cash_out"):
        check_disjoint({**SPENDING_GROUPS, "cash_out": frozenset({"dining", "transfer_out"})})


def test_flags_follow_direction_category_and_merchant() -> None:
    groups = CategoryGroups(("dining", "rent", "cash_withdrawal", "salary", "transfer_in"))
    debit = np.array([True, True, True, False, False, True])
    category = np.array([0, 1, 2, 3, 4, 3])
    gambling = np.array([True, False, False, True, False, False])
    flags = row_flags(debit, category, gambling, groups)
    assert flags.gambling.tolist() == [True, False, False, False, False, False]
    assert flags.distress.tolist() == [True, False, True, False, False, False]
    assert flags.discretionary.tolist() == [True, False, False, False, False, False]
    assert flags.essential.tolist() == [False, True, False, False, False, False]
    assert flags.cash_out.tolist() == [False, False, True, False, False, False]
    # Credits only: a salary-category debit is not salary.
    assert flags.salary.tolist() == [False, False, False, True, False, False]
    assert flags.transfer_in.tolist() == [False, False, False, False, True, False]
    spending = flags.discretionary.astype(int) + flags.essential + flags.cash_out
    assert spending.max() <= 1
