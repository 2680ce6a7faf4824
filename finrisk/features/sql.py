"""The batch transaction statistics as BigQuery SQL, generated from `finrisk.features.definitions`.

BigQuery computes what needs the whole history (window functions per user over event time):
the `TxStats` of every transaction. The formulas (`finrisk.features.formulas`) then run in
Python on the rows read back, which are only the training sample, so every feature is still
written once and the heavy part scales with the warehouse, not the machine.

How the SQL keeps the batch path's semantics (`finrisk.features.batch_stats`):

- order: each user's rows are ordered by (timestamp, transaction_id)
  (`finrisk.features.ordering`); "prior" statistics are ROWS frames ending 1 PRECEDING;
- per (user, category) prior counts and debit sums: the same ROWS frame partitioned by user
  and category;
- velocity windows (t - length, t], itself included: timestamps are integer microseconds
  (BigQuery's precision), so the window is `RANGE BETWEEN length - 1 PRECEDING AND CURRENT
  ROW` over UNIX_MICROS. A RANGE frame includes the row's peers (same timestamp) that come
  after it in the canonical order, which the batch path does not count; they are subtracted
  (a count and a debit sum over the later peers);
- first visits in each of NEW_MERCHANT_WINDOWS: each row's first-visit flag (ROW_NUMBER per
  user and merchant) is computed in a step before, then summed over the window's RANGE frame
  like a count, less the later peers' flags;
- the first transaction has no previous one (`has_prev` 0, gap 0): the formula applies the
  gap cap, MIN_ZSCORE_HISTORY and the variance floor, as for the other paths.

Dialect gap: BigQuery has no LOG1P, and its SIN/COS/LN need not round like numpy's; the
formulas therefore run in Python (`transaction_features_from_stats`) on the bounded sample
rather than in SQL. The only logarithm in SQL, LN(1 + amount) inside the prior log sums, equals
log1p to within an ulp for amounts >= 0.01 (the smallest currency unit).

The sample is a set of users: every transaction statistic depends on the user's own history
only, so filtering users before the window functions gives their exact features.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from finrisk.errors import FinriskError
from finrisk.features.definitions import (
    DEBIT_DIRECTION,
    NEW_MERCHANT_WINDOWS,
    NS_PER_SECOND,
    SUM_WINDOWS,
    TRANSACTION_FEATURES,
    WINDOWS,
)
from finrisk.features.formulas import TxStats, transaction_formulas
from finrisk.schema import (
    AMOUNT,
    BALANCE_AFTER,
    CATEGORY,
    CHANNEL,
    DIRECTION,
    MERCHANT,
    TIMESTAMP,
    TRANSACTION_ID,
    USER_ID,
)

MICROS_PER_SECOND = 1_000_000
NS_PER_MICRO = NS_PER_SECOND // MICROS_PER_SECOND

# Columns of the statistics query besides the pass-through ones.
TS_MICROS = "ts_micros"
PRIOR_DEBIT_COUNT = "prior_debit_count"
PRIOR_DEBIT_LOG_SUM = "prior_debit_log_sum"
PRIOR_DEBIT_LOG_SUMSQ = "prior_debit_log_sumsq"
PRIOR_DEBIT_MAX = "prior_debit_max"
PREVIOUS_MICROS = "previous_micros"
PRIOR_CATEGORY_COUNT = "prior_category_count"
PRIOR_CATEGORY_SPEND = "prior_category_spend"
IS_NEW_CATEGORY = "is_new_category"
IS_NEW_MERCHANT = "is_new_merchant"
STATS_INPUTS: tuple[str, ...] = (AMOUNT, DIRECTION, BALANCE_AFTER, CATEGORY, CHANNEL)


def window_count_column(suffix: str) -> str:
    return f"window_count_{suffix}"


def window_sum_column(suffix: str) -> str:
    return f"window_debit_sum_{suffix}"


def window_new_merchants_column(suffix: str) -> str:
    return f"window_new_merchants_{suffix}"


STATS_COLUMNS: tuple[str, ...] = (
    TS_MICROS,
    PRIOR_DEBIT_COUNT,
    PRIOR_DEBIT_LOG_SUM,
    PRIOR_DEBIT_LOG_SUMSQ,
    PRIOR_DEBIT_MAX,
    PREVIOUS_MICROS,
    PRIOR_CATEGORY_COUNT,
    PRIOR_CATEGORY_SPEND,
    *(window_count_column(suffix) for suffix, _ in WINDOWS),
    *(window_sum_column(suffix) for suffix in SUM_WINDOWS),
    IS_NEW_CATEGORY,
    IS_NEW_MERCHANT,
    *(window_new_merchants_column(suffix) for suffix, _ in NEW_MERCHANT_WINDOWS),
)


def checked_table_id(table: str, what: str = "BigQuery table") -> str:
    """`table` when it is project.dataset.table and safe inside backquotes; else FinriskError
    naming it as `what` (the setting it came from)."""
    parts = table.split(".")
    if len(parts) != 3 or not all(parts) or "`" in table:
        raise FinriskError(f"{what} {table!r} must be project.dataset.table")
    return table


def quoted_table(table: str) -> str:
    return f"`{checked_table_id(table)}`"


def _micros(length_ns: int) -> int:
    if length_ns % NS_PER_MICRO:
        raise FinriskError(f"window length {length_ns} ns is not whole microseconds")
    return length_ns // NS_PER_MICRO


def user_sample_condition(share: float, buckets: int = 10_000) -> str:
    """A WHERE condition keeping about `share` of the users, always the same ones (a hash)."""
    if not 0 < share <= 1:
        raise FinriskError(f"the user sample share must be in (0, 1], got {share}")
    kept = max(1, round(share * buckets))
    return f"MOD(ABS(FARM_FINGERPRINT({USER_ID})), {buckets}) < {kept}"


def transaction_stats_sql(table: str, extra_columns: tuple[str, ...] = (), where: str = "") -> str:
    """A query of every (sampled) transaction of `table`: transaction_id, user_id, the columns
    the formulas read (STATS_INPUTS), `extra_columns` passed through, and STATS_COLUMNS.

    `where` filters users before the window functions (e.g. `user_sample_condition`); it must
    keep or drop whole users, or the statistics of the kept ones change.
    """
    source = quoted_table(table)
    debit = f"{DIRECTION} = '{DEBIT_DIRECTION}'"
    user = f"PARTITION BY {USER_ID}"
    ordered = f"{user} ORDER BY {TS_MICROS}, {TRANSACTION_ID}"
    prior = f"({ordered} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    prior_in_category = (
        f"({user}, {CATEGORY} ORDER BY {TS_MICROS}, {TRANSACTION_ID} "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    )
    peers = f"PARTITION BY {USER_ID}, {TS_MICROS}"
    later_peers = (
        f"({peers} ORDER BY {TRANSACTION_ID} ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)"
    )

    def frame(length: int) -> str:
        return (
            f"({user} ORDER BY {TS_MICROS} RANGE BETWEEN {_micros(length) - 1} PRECEDING "
            "AND CURRENT ROW)"
        )

    window_terms: list[str] = []
    for suffix, length in WINDOWS:
        window_terms.append(
            f"COUNT(*) OVER {frame(length)} - COUNT(*) OVER {later_peers} "
            f"AS {window_count_column(suffix)}"
        )
        if suffix in SUM_WINDOWS:
            window_terms.append(
                f"SUM(debit_amount) OVER {frame(length)} "
                f"- COALESCE(SUM(debit_amount) OVER {later_peers}, 0) "
                f"AS {window_sum_column(suffix)}"
            )

    passed = list(dict.fromkeys((TRANSACTION_ID, USER_ID, *STATS_INPUTS, *extra_columns)))
    condition = f"\n  WHERE {where}" if where else ""
    columns = ",\n    ".join(
        [
            *passed,
            TS_MICROS,
            f"COALESCE(SUM(IF(is_debit, 1, 0)) OVER {prior}, 0) AS {PRIOR_DEBIT_COUNT}",
            f"COALESCE(SUM(log_debit) OVER {prior}, 0) AS {PRIOR_DEBIT_LOG_SUM}",
            f"COALESCE(SUM(log_debit * log_debit) OVER {prior}, 0) AS {PRIOR_DEBIT_LOG_SUMSQ}",
            f"COALESCE(MAX(debit_amount) OVER {prior}, 0) AS {PRIOR_DEBIT_MAX}",
            f"LAG({TS_MICROS}) OVER ({ordered}) AS {PREVIOUS_MICROS}",
            f"COUNT(*) OVER {prior_in_category} AS {PRIOR_CATEGORY_COUNT}",
            f"COALESCE(SUM(debit_amount) OVER {prior_in_category}, 0) AS {PRIOR_CATEGORY_SPEND}",
            *window_terms,
            f"IF(ROW_NUMBER() OVER ({user}, {CATEGORY} ORDER BY {TS_MICROS}, {TRANSACTION_ID}) "
            f"= 1, 1, 0) AS {IS_NEW_CATEGORY}",
            IS_NEW_MERCHANT,
            *(
                f"SUM({IS_NEW_MERCHANT}) OVER {frame(length)} "
                f"- COALESCE(SUM({IS_NEW_MERCHANT}) OVER {later_peers}, 0) "
                f"AS {window_new_merchants_column(suffix)}"
                for suffix, length in NEW_MERCHANT_WINDOWS
            ),
        ]
    )
    return (
        "WITH input_rows AS (\n"
        f"  SELECT *,\n"
        f"    UNIX_MICROS({TIMESTAMP}) AS {TS_MICROS},\n"
        f"    {debit} AS is_debit,\n"
        f"    IF({debit}, {AMOUNT}, 0) AS debit_amount,\n"
        f"    IF({debit}, LN(1 + {AMOUNT}), 0) AS log_debit\n"
        f"  FROM {source}{condition}\n"
        "),\n"
        # The first-visit flag is a window function itself: the window sum reads it from here.
        "flagged_rows AS (\n"
        f"  SELECT *,\n"
        f"    IF(ROW_NUMBER() OVER ({user}, {MERCHANT} ORDER BY {TS_MICROS}, {TRANSACTION_ID}) "
        f"= 1, 1, 0) AS {IS_NEW_MERCHANT}\n"
        "  FROM input_rows\n"
        ")\n"
        f"SELECT\n    {columns}\nFROM flagged_rows"
    )


def stats_from_rows(rows: pd.DataFrame) -> TxStats:
    """The TxStats of the rows of `transaction_stats_sql`, in the rows' order."""
    missing = [c for c in (*STATS_INPUTS, *STATS_COLUMNS) if c not in rows.columns]
    if missing:
        raise FinriskError(f"feature statistics lack the column(s) {missing}")
    previous = pd.to_numeric(rows[PREVIOUS_MICROS])
    micros = rows[TS_MICROS].to_numpy(dtype=np.int64)
    has_prev = previous.notna().to_numpy()
    gap_micros = micros - np.where(has_prev, previous.fillna(0).to_numpy(dtype=np.int64), micros)

    def floats(column: str) -> np.ndarray:
        return rows[column].to_numpy(dtype=np.float64)

    return TxStats(
        amount=floats(AMOUNT),
        is_debit=(rows[DIRECTION] == DEBIT_DIRECTION).to_numpy(dtype=np.float64),
        balance_after=floats(BALANCE_AFTER),
        timestamp_ns=micros * NS_PER_MICRO,
        category=rows[CATEGORY].to_numpy(dtype=object),
        channel=rows[CHANNEL].to_numpy(dtype=object),
        prior_debit_count=floats(PRIOR_DEBIT_COUNT),
        prior_debit_log_sum=floats(PRIOR_DEBIT_LOG_SUM),
        prior_debit_log_sumsq=floats(PRIOR_DEBIT_LOG_SUMSQ),
        prior_debit_max=floats(PRIOR_DEBIT_MAX),
        prior_category_count=floats(PRIOR_CATEGORY_COUNT),
        prior_category_spend=floats(PRIOR_CATEGORY_SPEND),
        window_counts=[floats(window_count_column(suffix)) for suffix, _ in WINDOWS],
        window_debit_sums=[floats(window_sum_column(suffix)) for suffix in SUM_WINDOWS],
        has_prev=has_prev,
        # Seconds as the batch path divides them: whole nanoseconds over NS_PER_SECOND.
        seconds_since_prev=(gap_micros * NS_PER_MICRO) / float(NS_PER_SECOND),
        is_new_category=floats(IS_NEW_CATEGORY),
        is_new_merchant=floats(IS_NEW_MERCHANT),
        window_new_merchants=[
            floats(window_new_merchants_column(suffix)) for suffix, _ in NEW_MERCHANT_WINDOWS
        ],
    )


def transaction_features_from_stats(rows: pd.DataFrame) -> pd.DataFrame:
    """TRANSACTION_FEATURES of the rows of `transaction_stats_sql`, same index and order."""
    values = transaction_formulas(stats_from_rows(rows))
    columns = {
        name: np.broadcast_to(np.asarray(value, dtype=np.float64), (len(rows),))
        for name, value in zip(TRANSACTION_FEATURES, values, strict=True)
    }
    return pd.DataFrame(columns, index=rows.index)
