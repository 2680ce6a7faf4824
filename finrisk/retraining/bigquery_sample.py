"""The BigQuery source's SQL path: features computed in BigQuery, only the sample read back.

BigQuery runs the transaction statistics (`finrisk.features.sql`) over the table, keeping a
hashed share of the users (whole histories, so their statistics are exact), into a scratch
table; the sample is then read in bounded record batches, through the BigQuery Storage Read
API (Arrow) when a read client is given, else as REST pages of `page_size` rows. The user
statistics (`finrisk.features.sql_users`: whole histories and snapshots) are aggregated over
the same scratch table, a few rows per user. Memory follows the sample, not the table. The
scratch table is dropped whatever happens.

Why a scratch table and not the query's own result: the Read API reads tables, and the
emulator cannot read a query's anonymous result table through it (checked: "schema
..._bqemu_anonymous does not exist"); a `CREATE TABLE ... AS SELECT` works on both.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pandas as pd

from finrisk.errors import FinriskError
from finrisk.features.sql import (
    STATS_COLUMNS,
    TS_MICROS,
    checked_table_id,
    transaction_stats_sql,
    user_sample_condition,
)
from finrisk.features.sql_users import USER_STATS_COLUMNS, user_stats_sql
from finrisk.schema import TRANSACTION_ID, USER_ID

# The dataset folder's files of SQL statistics, next to transactions.parquet: per transaction
# (TRANSACTION_ID and STATS_COLUMNS), and per user and history cut-off (USER_STATS_COLUMNS);
# build_features and train_detector turn them into the features.
SQL_STATS_FILE = "transaction_stats.parquet"
SQL_USER_STATS_FILE = "user_stats.parquet"
STATS_FILE_COLUMNS: tuple[str, ...] = (TRANSACTION_ID, *STATS_COLUMNS)


@dataclass(frozen=True)
class Sample:
    """The sampled users' transactions (the table's columns), their SQL statistics (by
    transaction id), their SQL user statistics (USER_STATS_COLUMNS) and the users table's
    rows of those users (None without one)."""

    transactions: pd.DataFrame
    stats: pd.DataFrame
    user_stats: pd.DataFrame
    users: pd.DataFrame | None
    batches: int  # record batches (or pages) read: the unit memory is bounded by
    read: str  # READ_API or REST_PAGES
    share: float  # of the users kept (the requested one, or lower for max_rows)


READ_API = "read_api"
REST_PAGES = "rest_pages"


def _where(share: float) -> str:
    return "" if share >= 1 else user_sample_condition(share)


def read_sample(
    client: Any,
    table: str,
    users_table: str = "",
    share: float = 1.0,
    page_size: int = 10_000,
    read_client: Any = None,
    max_rows: int = 0,
) -> Sample:
    """Run the feature SQL over `table` in BigQuery and read back the users sample (`share`
    of the users by hash, lowered to about `max_rows` transactions when that is set, from the
    table's row count); FinriskError names what failed."""
    from google.api_core import exceptions

    if page_size < 1:
        raise FinriskError(f"the page size must be >= 1, got {page_size}")
    try:
        metadata = client.get_table(table)
        columns = tuple(field.name for field in metadata.schema)
    except exceptions.NotFound:
        raise FinriskError(f"BigQuery table {table!r} does not exist") from None
    except exceptions.GoogleAPIError as exc:
        raise FinriskError(f"reading BigQuery table {table!r} failed: {exc}") from None
    if max_rows > 0 and (metadata.num_rows or 0) > max_rows:
        # A fixed sample size, whatever the table's: memory stays put as the history grows.
        share = min(share, max_rows / metadata.num_rows)
    where = _where(share)
    project, dataset, _ = table.split(".")
    scratch = f"{project}.{dataset}.finrisk_features_{uuid.uuid4().hex[:12]}"
    query = transaction_stats_sql(table, extra_columns=columns, where=where)
    try:
        client.query(f"CREATE TABLE `{scratch}` AS\n{query}").result()
        read = REST_PAGES if read_client is None else READ_API
        try:
            frames = _batches(client, scratch, page_size, read_client)
        except exceptions.TooManyRequests:
            # The emulator sends a stream's rows (up to 65536) as one message and refuses it
            # past its own 11 MB limit (Google's service splits them): read REST pages instead.
            frames, read = _batches(client, scratch, page_size, None), REST_PAGES
        user_stats = (
            client.query(user_stats_sql(scratch))
            .result()
            .to_arrow(create_bqstorage_client=False)
            .to_pandas()
        )
        users = _users(client, users_table, where) if users_table else None
    except exceptions.GoogleAPIError as exc:
        raise FinriskError(f"computing features of {table!r} in BigQuery failed: {exc}") from None
    finally:
        client.delete_table(scratch, not_found_ok=True)
    if not frames:
        raise FinriskError(f"BigQuery table {table!r} has no transactions in the sample")
    # A table has no row order; validation wants each user's rows in time order, so the
    # sample is put in the canonical order (finrisk.features.ordering).
    frame = pd.concat(frames, ignore_index=True).sort_values(
        [USER_ID, TS_MICROS, TRANSACTION_ID], ignore_index=True
    )
    return Sample(
        transactions=frame[list(columns)],
        stats=frame[list(STATS_FILE_COLUMNS)],
        user_stats=user_stats[list(USER_STATS_COLUMNS)],
        users=users,
        batches=len(frames),
        read=read,
        share=share,
    )


def _batches(client: Any, scratch: str, page_size: int, read_client: Any) -> list[pd.DataFrame]:
    rows = client.list_rows(scratch, page_size=page_size)
    return [
        batch.to_pandas()
        for batch in rows.to_arrow_iterable(bqstorage_client=read_client)
        if batch.num_rows
    ]


def _users(client: Any, users_table: str, where: str) -> pd.DataFrame:
    from google.api_core import exceptions

    checked_table_id(users_table, "bigquery_users_table")
    condition = f" WHERE {where}" if where else ""
    try:
        result = client.query(f"SELECT * FROM `{users_table}`{condition}").result()
    except exceptions.NotFound:
        raise FinriskError(f"BigQuery table {users_table!r} does not exist") from None
    frame: pd.DataFrame = result.to_arrow(create_bqstorage_client=False).to_pandas()
    if USER_ID not in frame.columns:
        raise FinriskError(f"BigQuery table {users_table!r} has no {USER_ID!r} column")
    return frame
