"""The batch user statistics as BigQuery SQL, generated from `finrisk.features.definitions`.

BigQuery aggregates each user's history (`UserStats`, one row per user and history cut-off:
the whole history, cut-off 0, and the point-in-time snapshots of
`finrisk.features.snapshots`); `user_formulas` then runs in Python on the rows read back, a
few per user, so every user feature is still written once.

How the SQL keeps the batch path's semantics (`finrisk.features.batch_stats.user_stats`):

- a snapshot at cut-off d holds the user's transactions before first + d days, for the users
  whose history reaches that point (`history_snapshots`); the whole history is cut-off 0;
- salary intervals are the gaps between a user's consecutive salary credits in the canonical
  order (LAG over the salary rows), so a snapshot keeps exactly the gaps inside it;
- times stay integer microseconds in SQL; days are those integers in nanoseconds divided by
  NS_PER_DAY as float64, as numpy divides them (the span is divided in Python);
- the "recent" weights are EXP(-age * DECAY_PER_NS) against the snapshot's latest
  transaction, the age converted to float64 before the product, as numpy does;
- the last balance is the latest row's in the canonical order (timestamp, transaction_id).

Dialect gaps: BigQuery's EXP need not round like numpy's, and it adds a SUM in whatever order
its workers see the rows; both stay within an ulp per term, far below the parity test's 1e-9
(measured through the emulator on over 100k transactions). A merchant is gambling when
LOWER(merchant) starts with a prefix, as `is_gambling_merchant` lower-cases it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from finrisk.errors import FinriskError
from finrisk.features.definitions import (
    CASH_OUT_CATEGORIES,
    COUNTED_CATEGORIES,
    DEBIT_DIRECTION,
    DISCRETIONARY_CATEGORIES,
    DISTRESS_CATEGORIES,
    ESSENTIAL_CATEGORIES,
    GAMBLING_MERCHANT_PREFIXES,
    LOW_BALANCE_THRESHOLD,
    NS_PER_DAY,
    SALARY,
    SECONDS_PER_DAY,
    TRANSFER_IN,
    USER_FEATURES,
)
from finrisk.features.formulas import DECAY_PER_NS, UserStats, user_formulas
from finrisk.features.snapshots import HISTORY_CUTOFF, HISTORY_CUTOFF_DAYS
from finrisk.features.sql import MICROS_PER_SECOND, NS_PER_MICRO, quoted_table
from finrisk.schema import (
    AMOUNT,
    BALANCE_AFTER,
    CATEGORY,
    DIRECTION,
    MERCHANT,
    TIMESTAMP,
    TRANSACTION_ID,
    USER_ID,
)

MICROS_PER_DAY = SECONDS_PER_DAY * MICROS_PER_SECOND
FIRST_MICROS = "first_micros"
LAST_MICROS = "last_micros"


def category_count_column(category: str) -> str:
    return f"category_count_{category}"


# UserStats fields read from a column of the same name; span_days comes from FIRST_MICROS and
# LAST_MICROS, trend_b_sum is balance_sum (the same sum), category_counts from
# category_count_column.
_DERIVED = frozenset({"span_days", "trend_b_sum", "category_counts"})
STAT_FIELDS: tuple[str, ...] = tuple(f for f in UserStats._fields if f not in _DERIVED)
USER_STATS_COLUMNS: tuple[str, ...] = (
    USER_ID,
    HISTORY_CUTOFF,
    *STAT_FIELDS,
    FIRST_MICROS,
    LAST_MICROS,
    *(category_count_column(c) for c in COUNTED_CATEGORIES),
)


def _names(values: frozenset[str] | tuple[str, ...]) -> str:
    """A SQL list of string literals; the names come from the definitions, not from input."""
    return ", ".join(f"'{value}'" for value in sorted(values))


def _days(micros: str) -> str:
    """A whole number of microseconds as float64 days, rounded as numpy divides ns by a day."""
    return f"CAST(({micros}) * {NS_PER_MICRO} AS FLOAT64) / {float(NS_PER_DAY)!r}"


def user_stats_sql(
    table: str, cutoff_days: tuple[int, ...] = HISTORY_CUTOFF_DAYS, where: str = ""
) -> str:
    """A query of one row per (user, HISTORY_CUTOFF) of `table`'s (sampled) users:
    USER_STATS_COLUMNS. Cut-off 0 is the whole history; each day in `cutoff_days` is a
    snapshot of the users whose history goes beyond it (`history_snapshots`).

    `where` filters users before anything is aggregated (e.g. `user_sample_condition`)."""
    if any(int(days) != days or days <= 0 for days in cutoff_days):
        raise FinriskError(f"history cut-offs must be whole days > 0, got {cutoff_days}")
    source = quoted_table(table)
    condition = f"\n  WHERE {where}" if where else ""
    debit = f"{DIRECTION} = '{DEBIT_DIRECTION}'"
    gambling = " OR ".join(
        f"STARTS_WITH(LOWER({MERCHANT}), '{prefix}')" for prefix in GAMBLING_MERCHANT_PREFIXES
    )
    cutoffs = ", ".join(str(int(days)) for days in (0, *cutoff_days))
    group = f"{USER_ID}, {HISTORY_CUTOFF}"

    def spend(categories: frozenset[str]) -> str:
        return f"SUM(IF({CATEGORY} IN ({_names(categories)}), debit_amount, 0))"

    def recent(flag: str) -> str:
        return f"SUM(IF({flag}, weight, 0))"

    aggregates = {
        "n_transactions": "COUNT(*)",
        "n_debits": "COUNTIF(is_debit)",
        "total_income": f"SUM(IF(is_debit, 0, {AMOUNT}))",
        "total_expense": "SUM(debit_amount)",
        "expense_sumsq": "SUM(debit_amount * debit_amount)",
        "max_expense": "MAX(debit_amount)",
        "n_low_balance": f"COUNTIF({BALANCE_AFTER} < {LOW_BALANCE_THRESHOLD!r})",
        "n_overdrawn": f"COUNTIF({BALANCE_AFTER} < 0)",
        "top_category_spend": "ANY_VALUE(top_category_spend)",
        "discretionary_spend": spend(DISCRETIONARY_CATEGORIES),
        "essential_spend": spend(ESSENTIAL_CATEGORIES),
        "cash_out_spend": spend(CASH_OUT_CATEGORIES),
        "salary_income": f"SUM(IF(is_salary, {AMOUNT}, 0))",
        "salary_intervals": "COUNT(salary_gap_days)",
        "salary_interval_sum": "COALESCE(SUM(salary_gap_days), 0)",
        "salary_interval_sumsq": "COALESCE(SUM(salary_gap_days * salary_gap_days), 0)",
        "balance_sum": f"SUM({BALANCE_AFTER})",
        "min_balance": f"MIN({BALANCE_AFTER})",
        "last_balance": f"ANY_VALUE(IF(is_last, {BALANCE_AFTER}, NULL))",
        "trend_t_sum": "SUM(elapsed_days)",
        "trend_tt_sum": "SUM(elapsed_days * elapsed_days)",
        "trend_tb_sum": f"SUM(elapsed_days * {BALANCE_AFTER})",
        "n_merchants": f"COUNT(DISTINCT {MERCHANT})",
        "n_gambling": "COUNTIF(is_gambling)",
        "n_distress": "COUNTIF(is_distress)",
        "recent_weight": "SUM(weight)",
        "recent_debit_weight": recent("is_debit"),
        "recent_income": f"SUM(IF(is_debit, 0, weight * {AMOUNT}))",
        "recent_expense": "SUM(weight * debit_amount)",
        "recent_overdrawn": recent(f"{BALANCE_AFTER} < 0"),
        "recent_low_balance": recent(f"{BALANCE_AFTER} < {LOW_BALANCE_THRESHOLD!r}"),
        "recent_distress": recent("is_distress"),
        "recent_balance": f"SUM(weight * {BALANCE_AFTER})",
        "recent_transfer_in": recent("is_transfer_in"),
    }
    missing = set(STAT_FIELDS) - set(aggregates)
    if missing:  # a UserStats field added without its SQL
        raise FinriskError(f"user statistics {sorted(missing)} have no SQL")
    columns = ",\n    ".join(
        [
            USER_ID,
            HISTORY_CUTOFF,
            *(f"{aggregates[name]} AS {name}" for name in STAT_FIELDS),
            f"MIN(ts_micros) AS {FIRST_MICROS}",
            f"MAX(ts_micros) AS {LAST_MICROS}",
            *(
                f"COUNTIF({CATEGORY} = '{name}') AS {category_count_column(name)}"
                for name in COUNTED_CATEGORIES
            ),
        ]
    )
    canonical_desc = f"ts_micros DESC, {TRANSACTION_ID} DESC"
    return (
        "WITH input_rows AS (\n"
        f"  SELECT {USER_ID}, {TRANSACTION_ID}, {AMOUNT}, {BALANCE_AFTER}, {CATEGORY}, "
        f"{MERCHANT},\n"
        f"    UNIX_MICROS({TIMESTAMP}) AS ts_micros,\n"
        f"    {debit} AS is_debit,\n"
        f"    IF({debit}, {AMOUNT}, 0) AS debit_amount,\n"
        f"    NOT ({debit}) AND {CATEGORY} = '{SALARY}' AS is_salary,\n"
        f"    NOT ({debit}) AND {CATEGORY} = '{TRANSFER_IN}' AS is_transfer_in,\n"
        f"    ({debit}) AND ({gambling}) AS is_gambling\n"
        f"  FROM {source}{condition}\n"
        "),\n"
        "user_rows AS (\n"
        "  SELECT *,\n"
        f"    is_gambling OR (is_debit AND {CATEGORY} IN ({_names(DISTRESS_CATEGORIES)})) "
        "AS is_distress,\n"
        f"    MIN(ts_micros) OVER (PARTITION BY {USER_ID}) AS user_first,\n"
        f"    MAX(ts_micros) OVER (PARTITION BY {USER_ID}) AS user_last,\n"
        f"    IF(is_salary, ts_micros - LAG(ts_micros) OVER (PARTITION BY {USER_ID}, is_salary "
        f"ORDER BY ts_micros, {TRANSACTION_ID}), NULL) AS salary_gap\n"
        "  FROM input_rows\n"
        "),\n"
        "histories AS (\n"
        f"  SELECT *, {_days('ts_micros - user_first')} AS elapsed_days,\n"
        f"    {_days('salary_gap')} AS salary_gap_days\n"
        f"  FROM user_rows CROSS JOIN UNNEST([{cutoffs}]) AS {HISTORY_CUTOFF}\n"
        f"  WHERE {HISTORY_CUTOFF} = 0 OR (\n"
        f"    ts_micros < user_first + {HISTORY_CUTOFF} * {MICROS_PER_DAY}\n"
        f"    AND user_last >= user_first + {HISTORY_CUTOFF} * {MICROS_PER_DAY})\n"
        "),\n"
        "weighted AS (\n"
        "  SELECT *,\n"
        f"    EXP(CAST((MAX(ts_micros) OVER (PARTITION BY {group}) - ts_micros) * "
        f"{NS_PER_MICRO} AS FLOAT64) * {-DECAY_PER_NS!r}) AS weight,\n"
        f"    ROW_NUMBER() OVER (PARTITION BY {group} ORDER BY {canonical_desc}) = 1 AS is_last\n"
        "  FROM histories\n"
        "),\n"
        "per_category AS (\n"
        f"  SELECT {group}, SUM(debit_amount) AS spend FROM weighted\n"
        f"  GROUP BY {group}, {CATEGORY}\n"
        "),\n"
        "top AS (\n"
        f"  SELECT {group}, MAX(spend) AS top_category_spend FROM per_category GROUP BY {group}\n"
        ")\n"
        f"SELECT\n    {columns}\n"
        f"FROM weighted JOIN top USING ({group})\n"
        f"GROUP BY {group}"
    )


def user_stats_from_rows(rows: pd.DataFrame) -> UserStats:
    """The UserStats of the rows of `user_stats_sql`, in the rows' order."""
    missing = [c for c in USER_STATS_COLUMNS if c not in rows.columns]
    if missing:
        raise FinriskError(f"user statistics lack the column(s) {missing}")

    def floats(column: str) -> np.ndarray:
        return rows[column].to_numpy(dtype=np.float64)

    span_ns = (
        rows[LAST_MICROS].to_numpy(dtype=np.int64) - rows[FIRST_MICROS].to_numpy(dtype=np.int64)
    ) * NS_PER_MICRO
    fields = {name: floats(name) for name in STAT_FIELDS}
    return UserStats(
        **fields,
        span_days=span_ns / float(NS_PER_DAY),
        trend_b_sum=fields["balance_sum"],
        category_counts=[floats(category_count_column(c)) for c in COUNTED_CATEGORIES],
    )


def user_features_from_stats(rows: pd.DataFrame) -> pd.DataFrame:
    """USER_FEATURES and HISTORY_CUTOFF of the rows of `user_stats_sql`, indexed by user id:
    the whole histories (cut-off 0) first, then each cut-off's snapshots, users ascending."""
    ordered = rows.sort_values([HISTORY_CUTOFF, USER_ID], ignore_index=True)
    values = user_formulas(user_stats_from_rows(ordered))
    columns = {
        name: np.broadcast_to(np.asarray(value, dtype=np.float64), (len(ordered),))
        for name, value in zip(USER_FEATURES, values, strict=True)
    }
    frame = pd.DataFrame(columns, index=pd.Index(ordered[USER_ID].astype(str), name=USER_ID))
    frame[HISTORY_CUTOFF] = ordered[HISTORY_CUTOFF].to_numpy(dtype=np.int64)
    return frame
