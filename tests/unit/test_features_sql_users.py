"""The BigQuery user-statistics SQL is generated from the definitions, and refuses what it
cannot quote or read."""

from __future__ import annotations

import pandas as pd
import pytest

from finrisk.errors import FinriskError
from finrisk.features import sql, sql_users
from finrisk.features.definitions import COUNTED_CATEGORIES, LOW_BALANCE_THRESHOLD
from finrisk.features.formulas import DECAY_PER_NS, UserStats
from finrisk.features.snapshots import HISTORY_CUTOFF_DAYS


def test_the_constants_come_from_the_definitions(monkeypatch: pytest.MonkeyPatch) -> None:
    text = sql_users.user_stats_sql("p.d.t")
    assert f"< {LOW_BALANCE_THRESHOLD!r})" in text
    assert f"{-DECAY_PER_NS!r}" in text
    assert f"UNNEST([0, {', '.join(map(str, HISTORY_CUTOFF_DAYS))}])" in text
    for category in COUNTED_CATEGORIES:
        assert f"AS {sql_users.category_count_column(category)}" in text
    # A changed definition changes the query: nothing is retyped in SQL.
    monkeypatch.setattr(sql_users, "LOW_BALANCE_THRESHOLD", 250.0)
    monkeypatch.setattr(sql_users, "GAMBLING_MERCHANT_PREFIXES", ("casinoroyale",))
    monkeypatch.setattr(sql_users, "DISTRESS_CATEGORIES", frozenset({"pawn_shop"}))
    changed = sql_users.user_stats_sql("p.d.t", cutoff_days=(3,))
    assert "< 250.0)" in changed and f"< {LOW_BALANCE_THRESHOLD!r})" not in changed
    assert "STARTS_WITH(LOWER(merchant), 'casinoroyale')" in changed
    assert "'betbuddy'" not in changed
    assert "IN ('pawn_shop')" in changed
    assert "UNNEST([0, 3])" in changed


def test_every_user_statistic_has_a_column() -> None:
    """A UserStats field is read from its own column or derived (span, trend, categories)."""
    derived = {"span_days", "trend_b_sum", "category_counts"}
    assert set(sql_users.STAT_FIELDS) == set(UserStats._fields) - derived
    text = sql_users.user_stats_sql("p.d.t")
    for column in sql_users.USER_STATS_COLUMNS[2:]:
        assert f"AS {column}" in text


def test_a_user_filter_comes_before_the_aggregates() -> None:
    text = sql_users.user_stats_sql("p.d.t", where=sql.user_sample_condition(0.25))
    assert text.index("WHERE MOD(ABS(FARM_FINGERPRINT(user_id)), 10000) < 2500") < text.index(
        "OVER"
    )


@pytest.mark.parametrize("table", ["t", "p.d", "p.d.t`; DROP TABLE x; --"])
def test_a_bad_table_name_is_refused(table: str) -> None:
    with pytest.raises(FinriskError, match=r"project\.dataset\.table"):
        sql_users.user_stats_sql(table)


@pytest.mark.parametrize("cutoffs", [(0,), (-7,), (7.5,)])
def test_a_bad_cutoff_is_refused(cutoffs: tuple[int, ...]) -> None:
    with pytest.raises(FinriskError, match="whole days > 0"):
        sql_users.user_stats_sql("p.d.t", cutoff_days=cutoffs)


def test_rows_without_the_statistics_are_refused() -> None:
    with pytest.raises(FinriskError, match="n_transactions"):
        sql_users.user_stats_from_rows(pd.DataFrame({"user_id": ["u1"]}))
