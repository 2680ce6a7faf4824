"""From a table as read (any names, text or typed values) to canonical columns and dtypes.

Parsing never raises on bad values: they become missing, and `Parsed.bad` says where, so that
validation can report every one of them and loading can refuse them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from finrisk.schema import (
    AMOUNT,
    DIRECTION,
    TRANSACTION_COLUMNS,
    ColumnSpec,
    Schema,
)
from finrisk.transactions import Mapping


@dataclass
class Parsed:
    frame: pd.DataFrame  # canonical columns that were present, parsed; bad values are NA
    bad: dict[str, np.ndarray] = field(default_factory=dict)  # column -> mask of unparseable
    missing: dict[str, np.ndarray] = field(default_factory=dict)  # column -> mask of empty
    raw: dict[str, pd.Series] = field(default_factory=dict)  # column -> values as read
    extra_columns: list[str] = field(default_factory=list)
    source_names: dict[str, str] = field(default_factory=dict)  # canonical -> name in the file


def _is_text(series: pd.Series) -> bool:
    return series.dtype == object or isinstance(series.dtype, pd.StringDtype)


def present(series: pd.Series) -> pd.Series:
    """Values that are there: not missing and not an empty string."""
    notna = series.notna()
    if _is_text(series):
        return notna & series.ne("").fillna(False).astype(bool)
    return notna


def _only(series: pd.Series, given: pd.Series) -> pd.Series:
    return series if bool(given.all()) else series.where(given)


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # an id read as a float (1.0) means "1"
    return str(value)


def _parse_string(series: pd.Series, given: pd.Series) -> pd.Series:
    if series.dtype == object:
        return _only(series, given)
    if series.dtype.kind in "iub":
        return series.astype(str).astype(object)
    # Strings with pd.NA, floats, categoricals, dates: text form, missing stays missing.
    text = series.astype(object).map(_text, na_action="ignore")
    return _only(text, given)


def _parse_number(series: pd.Series, given: pd.Series) -> pd.Series:
    if series.dtype.kind in "iufb":
        return series.astype(np.float64)
    return pd.to_numeric(_only(series, given), errors="coerce").astype(np.float64)


def _parse_timestamp(series: pd.Series, given: pd.Series, schema: Schema) -> pd.Series:
    spec = schema.transactions.timestamp
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    if series.dtype.kind == "M":
        parsed = series
    elif series.dtype.kind in "iuf":
        parsed = pd.to_datetime(series, unit=spec.unit, errors="coerce")
    else:
        text = _only(series, given)
        fmt = spec.format
        try:
            parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=spec.timezone == "UTC")
        except (ValueError, TypeError):
            # Offsets that differ between rows: parse each value against UTC.
            parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=True)
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            return parsed.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    localized = parsed.dt.tz_localize(spec.timezone, ambiguous="NaT", nonexistent="NaT")
    return localized.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")


def parse_column(
    series: pd.Series, spec: ColumnSpec, schema: Schema, given: pd.Series | None = None
) -> pd.Series:
    """One column in its canonical dtype; `given` marks the values present (computed if None)."""
    given = present(series) if given is None else given
    if spec.type == "string":
        return _parse_string(series, given)
    if spec.type == "timestamp":
        return _parse_timestamp(series, given, schema)
    return _parse_number(series, given)


def parse_transactions(df: pd.DataFrame, schema: Schema) -> Parsed:
    """Map names and values, then parse every canonical column present."""
    mapping = Mapping(schema)
    mapped, source_names = mapping.frame(df)
    tx = schema.transactions
    found = [c for c in TRANSACTION_COLUMNS if c in mapped.columns]
    raw = {column: mapping.column_values(column, mapped[column]) for column in found}

    columns: dict[str, pd.Series] = {}
    bad: dict[str, np.ndarray] = {}
    missing: dict[str, np.ndarray] = {}
    for column in found:
        given = present(raw[column])
        parsed = parse_column(raw[column], tx.columns[column], schema, given)
        columns[column] = parsed
        is_given = given.to_numpy()
        if tx.columns[column].type == "string":
            bad[column] = np.zeros(len(parsed), dtype=bool)
        else:
            bad[column] = parsed.isna().to_numpy() & is_given
        missing[column] = ~is_given

    for column, series in columns.items():
        # Integer columns (labels) parse as float to hold NaN; whole and complete -> int64.
        if tx.columns[column].type == "int" and bool(series.notna().all()):
            numbers = series.to_numpy(dtype=np.float64)
            if np.array_equal(numbers, np.round(numbers)):
                columns[column] = series.astype(np.int64)

    if tx.signed_amounts and AMOUNT in columns:
        amount = columns[AMOUNT]
        magnitude, direction = mapping.signed(amount.to_numpy(dtype=np.float64))
        if DIRECTION not in columns:
            columns[DIRECTION] = pd.Series(direction, index=amount.index).where(amount.notna())
            raw[DIRECTION] = columns[DIRECTION]
            bad[DIRECTION] = np.zeros(len(amount), dtype=bool)
            missing[DIRECTION] = amount.isna().to_numpy()
        columns[AMOUNT] = pd.Series(magnitude, index=amount.index)

    # copy=False: consolidating million-row object columns into one block is slow.
    frame = pd.DataFrame(
        {c: columns[c] for c in TRANSACTION_COLUMNS if c in columns}, index=mapped.index, copy=False
    )
    extra = [str(c) for c in mapped.columns if c not in TRANSACTION_COLUMNS]
    return Parsed(
        frame=frame,
        bad=bad,
        missing=missing,
        raw=raw,
        extra_columns=extra,
        source_names=source_names,
    )
