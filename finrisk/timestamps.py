"""Timestamps as integer nanoseconds since the epoch (UTC), the form every feature uses.

Integers keep window edges exact (a transaction exactly 24 h earlier has expired in both
paths) and make the hour/day-of-week arithmetic identical for numpy and Python.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from finrisk.errors import FinriskError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NS_PER_MS = 1_000_000
# Nanoseconds fit int64 (as in numpy and pandas): the years 1678 to 2262.
MIN_NS, MAX_NS = -(2**63) + 1, 2**63 - 1


def series_to_ns(values: pd.Series, column: str = "timestamp") -> np.ndarray:
    """int64 nanoseconds of a timestamp column; tz-naive values are taken as UTC."""
    series = values
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        try:
            series = pd.to_datetime(series, utc=True, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise FinriskError(
                f"column {column!r} holds values that are not timestamps: {exc}"
            ) from None
    if series.isna().any():
        row = series.index[series.isna().to_numpy()][0]
        raise FinriskError(f"column {column!r} is empty in row {row!r}")
    if getattr(series.dtype, "tz", None) is None:
        series = series.dt.tz_localize("UTC")
    return np.asarray(series.dt.as_unit("ns").array.asi8, dtype=np.int64)


def to_ns(value: Any) -> int:
    """Nanoseconds since the epoch of one timestamp, within int64 (MIN_NS to MAX_NS).

    Accepted forms, fastest first: epoch milliseconds (int or float, the wire form for the
    streaming bridge), a pandas Timestamp, a datetime (naive = UTC), an ISO-8601 string.
    """
    kind = type(value)
    if kind is int:
        ns = value * _NS_PER_MS
    elif kind is str:
        ns = _datetime_ns(_parse_iso(value))
    elif isinstance(value, pd.Timestamp):
        stamp = value if value.tzinfo is not None else value.tz_localize("UTC")
        ns = int(stamp.as_unit("ns").value)
    elif isinstance(value, datetime):
        ns = _datetime_ns(value)
    elif isinstance(value, float | np.integer | np.floating) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise FinriskError(f"timestamp {value!r} is not a finite number")
        ns = round(float(value) * _NS_PER_MS)
    else:
        raise FinriskError(f"timestamp {value!r} is not epoch milliseconds, a datetime or ISO-8601")
    if not MIN_NS <= ns <= MAX_NS:
        raise FinriskError(f"timestamp {value!r} is out of range (years 1678 to 2262)")
    return ns


def _parse_iso(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise FinriskError(f"timestamp {text!r} is not ISO-8601") from None


def _datetime_ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return ((moment - _EPOCH) // _MICROSECOND) * 1000
