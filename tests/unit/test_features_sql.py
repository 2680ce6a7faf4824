"""The BigQuery feature SQL is generated from the definitions, and refuses what it cannot quote."""

from __future__ import annotations

import pandas as pd
import pytest

from finrisk.errors import FinriskError
from finrisk.features import sql
from finrisk.features.definitions import DEBIT_DIRECTION, SUM_WINDOWS, WINDOWS


def test_the_windows_come_from_the_definitions(monkeypatch: pytest.MonkeyPatch) -> None:
    text = sql.transaction_stats_sql("p.d.t")
    for suffix, length in WINDOWS:
        assert f"RANGE BETWEEN {length // 1000 - 1} PRECEDING" in text
        assert f"AS {sql.window_count_column(suffix)}" in text
    for suffix in SUM_WINDOWS:
        assert f"AS {sql.window_sum_column(suffix)}" in text
    assert f"'{DEBIT_DIRECTION}'" in text
    # A changed definition changes the query: nothing is retyped in SQL.
    monkeypatch.setattr(sql, "WINDOWS", (("5m", 300 * 10**9),))
    assert "RANGE BETWEEN 299999999 PRECEDING" in sql.transaction_stats_sql("p.d.t")


def test_a_user_filter_comes_before_the_window_functions() -> None:
    text = sql.transaction_stats_sql("p.d.t", where=sql.user_sample_condition(0.25))
    assert text.index("WHERE MOD(ABS(FARM_FINGERPRINT(user_id)), 10000) < 2500") < text.index(
        "OVER"
    )


@pytest.mark.parametrize("table", ["t", "p.d", "p..t", "p.d.t`; DROP TABLE x; --"])
def test_a_bad_table_name_is_refused(table: str) -> None:
    with pytest.raises(FinriskError, match=r"project\.dataset\.table"):
        sql.transaction_stats_sql(table)


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5])
def test_a_bad_sample_share_is_refused(share: float) -> None:
    with pytest.raises(FinriskError, match=r"\(0, 1\]"):
        sql.user_sample_condition(share)


def test_rows_without_the_statistics_are_refused() -> None:
    with pytest.raises(FinriskError, match="prior_debit_count"):
        sql.stats_from_rows(pd.DataFrame({"amount": [1.0]}))
