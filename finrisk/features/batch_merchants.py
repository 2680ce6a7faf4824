"""Batch path of merchant risk (MERCHANT_FEATURES): from transactions and label records.

At each transaction, at time t and merchant m (definitions: MERCHANT_RISK_WINDOW_DAYS):
- window transactions: m's transactions in (t - window, t] up to and including this one in the
  order (timestamp, transaction_id), the order the online path is fed in;
- known frauds: m's transactions in (t - window, t] with a fraud outcome whose label record
  has labelled_at <= t (a label known at exactly t counts: the online path takes a label
  before a transaction of the same instant). A transaction counts once, from its earliest
  fraud label.

Label records are joined to transactions by transaction_id; the transaction, not the record,
gives the merchant and the event time. Rules for labels that cannot be placed, the same in the
online path (finrisk.features.online_merchants): a label for a transaction not in the table is
ignored; a label "known" before its transaction happened is inconsistent and ignored;
non-fraud outcomes are ignored. Without label records every value is the no-history one (0).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from finrisk.errors import FinriskError
from finrisk.features.batch_stats import window_starts
from finrisk.features.definitions import MERCHANT_FEATURES, MERCHANT_RISK_WINDOW_NS
from finrisk.features.formulas import merchant_formulas
from finrisk.features.ordering import canonical_order
from finrisk.labels import LabelRecord
from finrisk.schema import MERCHANT, TIMESTAMP, TRANSACTION_ID
from finrisk.timestamps import series_to_ns

# Rows x frauds of one merchant compared at once: bounds the boolean block's memory.
_CHUNK_CELLS = 4_000_000


def earliest_fraud_labels(labels: Iterable[LabelRecord]) -> dict[str, int]:
    """transaction_id -> the earliest labelled_at (ns) among its fraud outcomes."""
    known: dict[str, int] = {}
    for record in labels:
        if not record.is_fraud:
            continue
        at = pd.Timestamp(record.labelled_at).value
        previous = known.get(record.transaction_id)
        if previous is None or at < previous:
            known[record.transaction_id] = at
    return known


def merchant_features(df: pd.DataFrame, labels: Iterable[LabelRecord] | None) -> pd.DataFrame:
    """MERCHANT_FEATURES of every row of `df` (canonical columns), same index and order.

    `labels`: the label records known by the end of the table (any order); None when there are
    none, which gives every row the no-history values.
    """
    missing = [c for c in (TRANSACTION_ID, TIMESTAMP, MERCHANT) if c not in df.columns]
    if missing:
        raise FinriskError(f"merchant features need the column(s) {missing}")
    n = len(df)
    stamps = series_to_ns(df[TIMESTAMP], TIMESTAMP)
    merchants, _ = pd.factorize(df[MERCHANT].astype(str))
    ids = df[TRANSACTION_ID].astype(str).to_numpy()
    order = canonical_order(merchants.astype(np.int64), stamps, ids)
    group = merchants[order]
    ts = stamps[order]
    first = np.ones(n, dtype=bool)
    first[1:] = group[1:] != group[:-1]
    row_start = np.flatnonzero(first)[np.cumsum(first) - 1]
    window_count = np.arange(n) - window_starts(ts, row_start, MERCHANT_RISK_WINDOW_NS) + 1

    frauds = np.zeros(n)
    known = earliest_fraud_labels(labels or ())
    if known:
        position = pd.Series(np.arange(n), index=ids[order])
        position = position[~position.index.duplicated()]
        hit = position.reindex(list(known)).dropna()
        rows = hit.to_numpy(dtype=np.int64)
        at = np.array([known[tx] for tx in hit.index], dtype=np.int64)
        placed = at >= ts[rows]  # a label cannot be known before its transaction happened
        rows, at = rows[placed], at[placed]
        _count_known(frauds, group, ts, first, rows, at)
    values = merchant_formulas(frauds, window_count)
    out = np.empty((n, len(MERCHANT_FEATURES)))
    for j, value in enumerate(values):
        out[order, j] = value
    return pd.DataFrame(out, index=df.index, columns=list(MERCHANT_FEATURES))


def _count_known(
    frauds: np.ndarray,
    group: np.ndarray,
    ts: np.ndarray,
    first: np.ndarray,
    fraud_rows: np.ndarray,
    known_at: np.ndarray,
) -> None:
    """Add to `frauds` (sorted rows), per row, the frauds of its merchant with event time in
    the window and known by the row's time; merchant by merchant, in blocks."""
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], len(ts))
    for merchant in np.unique(group[fraud_rows]):
        mine = group[fraud_rows] == merchant
        event, at = ts[fraud_rows[mine]], known_at[mine]
        # Codes come from factorize, so every code 0..k-1 has rows: code = group number.
        lo, hi = int(starts[merchant]), int(ends[merchant])
        step = max(1, _CHUNK_CELLS // len(event))
        for begin in range(lo, hi, step):
            t = ts[begin : min(begin + step, hi), None]
            inside = (event[None, :] > t - MERCHANT_RISK_WINDOW_NS) & (at[None, :] <= t)
            frauds[begin : begin + len(t)] += inside.sum(axis=1)
