"""How a risk model reads a user table with gaps and text columns (docs/models-and-evaluation.md,
"Gaps and categories").

- Numeric columns: float64; a gap (NaN, an empty cell) stays NaN. Gradient boosting routes NaN
  natively (each split learnt where missing values go); linear models impute (LinearInputs).
  Infinite values are refused by name.
- Categorical columns (text columns of at most finrisk.user_columns.MAX_CATEGORIES values,
  learnt at fit): each value becomes its code, its index in the model's sorted category list
  (`categories_` / the metadata's `categories`); a gap or a value unseen in training is NaN.
  The code is the encoded form the compiled model and the predictor take; a number given for
  a categorical column is read as a code already (an integer 0..k-1, or NaN). The predictor
  also takes the text and reads it with the same rule (text_code), so serving cannot skew.

LinearInputs is the linear models' first step: median imputation (medians of the training rows)
plus one missing-indicator column per numeric column that had gaps in the training rows, and a
one-hot block per categorical column (a gap or unseen value: all zeros). Its output is laid out
column by column of the input, so every output column has one owner input column: reasons
(occlusion) stay per input column and name it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from finrisk.errors import FinriskError
from finrisk.user_columns import MAX_CATEGORIES

Matrix = npt.NDArray[np.float64]


def is_text(series: pd.Series) -> bool:
    return series.dtype.kind not in "iufb"


def learn_categories(X: pd.DataFrame, feature_names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Sorted distinct values of each text feature column; more than MAX_CATEGORIES is refused
    (the data loader drops such columns with a warning before training)."""
    out: dict[str, tuple[str, ...]] = {}
    for name in feature_names:
        column = X[name]
        if not is_text(column):
            continue
        values = column[column.notna()].astype(str).str.strip()
        levels = tuple(sorted(v for v in values.unique() if v))
        if len(levels) > MAX_CATEGORIES:
            raise FinriskError(
                f"text column {name!r} has {len(levels)} distinct values; at most "
                f"{MAX_CATEGORIES} can be encoded"
            )
        out[name] = levels
    return out


def encode(
    X: pd.DataFrame, feature_names: Sequence[str], categories: Mapping[str, Sequence[str]]
) -> Matrix:
    """(rows, features) float64 in model order: numbers, NaN for gaps, codes for categories."""
    if not isinstance(X, pd.DataFrame):
        raise FinriskError("finrisk models take a pandas DataFrame with named feature columns")
    missing = [name for name in feature_names if name not in X.columns]
    if missing:
        raise FinriskError(f"feature columns missing from the input: {', '.join(missing)}")
    out = np.empty((len(X), len(feature_names)), dtype=np.float64)
    for j, name in enumerate(feature_names):
        column = X[name]
        if name in categories:
            out[:, j] = _codes(name, column, categories[name])
            continue
        try:
            out[:, j] = column.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise FinriskError(f"feature {name!r} must be numeric: {exc}") from None
        infinite = np.isinf(out[:, j])
        if infinite.any():
            row = X.index[int(np.flatnonzero(infinite)[0])]
            raise FinriskError(
                f"feature {name!r} is infinite in row {row!r} ({int(infinite.sum())} in all); "
                "a missing value is NaN"
            )
    return out


def _codes(name: str, column: pd.Series, levels: Sequence[str]) -> npt.NDArray[np.float64]:
    if not is_text(column):  # already codes
        codes = column.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isnan(codes) & ~np.isin(codes, np.arange(len(levels), dtype=np.float64))
        if bad.any():
            raise FinriskError(
                f"categorical feature {name!r}: code {codes[np.flatnonzero(bad)[0]]!r} is not "
                f"0..{len(levels) - 1} (or NaN for missing)"
            )
        return codes
    lookup = category_lookup(levels)
    given = column.notna().to_numpy()
    return np.fromiter(
        (
            text_code(lookup, str(v)) if ok else np.nan
            for v, ok in zip(column.to_numpy(dtype=object), given, strict=True)
        ),
        dtype=np.float64,
        count=len(column),
    )


def category_lookup(levels: Sequence[str]) -> dict[str, float]:
    """Category text -> code (its index in the sorted category list) of one categorical column."""
    return {level: float(i) for i, level in enumerate(levels)}


def text_code(lookup: Mapping[str, float], text: str) -> float:
    """The code of one category text, the one rule of training and serving (the predictor takes
    text too): surrounding whitespace is ignored, the rest must match exactly (case too); a text
    the model never saw, or an empty one, is NaN: missing, as a gap is."""
    return lookup.get(text.strip(), np.nan)


def reference_values(values: Matrix, categorical: Sequence[int]) -> Matrix:
    """The typical user, against which reasons are measured: each numeric column's median over
    the values present, each categorical column's most frequent code (0 where all missing)."""
    reference = np.zeros(values.shape[1], dtype=np.float64)
    for j in range(values.shape[1]):
        column = values[:, j][~np.isnan(values[:, j])]
        if not len(column):
            continue
        if j in categorical:
            codes, counts = np.unique(column, return_counts=True)
            reference[j] = codes[int(np.argmax(counts))]
        else:
            reference[j] = float(np.median(column))
    return reference


class LinearInputs(TransformerMixin, BaseEstimator):
    """Imputation, missing indicators and one-hot categories for a linear model (module doc).

    categorical: input column index -> number of categories.
    """

    def __init__(self, categorical: dict[int, int] | None = None) -> None:
        self.categorical = categorical

    fill_: Matrix
    indicators_: npt.NDArray[np.bool_]

    def fit(self, X: Any, y: Any = None) -> LinearInputs:
        values = np.asarray(X, dtype=np.float64)
        categorical = self.categorical or {}
        gaps = np.isnan(values)
        self.fill_ = reference_values(values, ())
        self.indicators_ = np.asarray(gaps.any(axis=0), dtype=bool)
        for j in categorical:
            self.fill_[j] = np.nan
            self.indicators_[j] = False
        self.n_features_in_ = values.shape[1]
        return self

    def transform(self, X: Any) -> Matrix:
        values = np.asarray(X, dtype=np.float64)
        return expand(values, self.layout())

    def layout(self) -> dict[str, Any]:
        """The compiled form (finrisk.compiled.heads "expand")."""
        categorical = self.categorical or {}
        return {
            "op": "expand",
            "fill": [None if np.isnan(v) else float(v) for v in self.fill_],
            "indicators": [int(j) for j in np.flatnonzero(self.indicators_)],
            "categories": {str(j): int(k) for j, k in sorted(categorical.items())},
        }


def expand_owners(layout: Mapping[str, Any]) -> npt.NDArray[np.intp]:
    """The input column of each expanded column (module docstring: one owner each)."""
    indicators = set(layout["indicators"])
    categories = {int(j): int(k) for j, k in layout["categories"].items()}
    owners: list[int] = []
    for j in range(len(layout["fill"])):
        if j in categories:
            owners.extend([j] * categories[j])
        else:
            owners.extend([j, j] if j in indicators else [j])
    return np.asarray(owners, dtype=np.intp)


def expand(values: Matrix, layout: Mapping[str, Any]) -> Matrix:
    """LinearInputs' output: per input column, its imputed value (and its missing indicator),
    or its one-hot block."""
    indicators = set(layout["indicators"])
    categories = {int(j): int(k) for j, k in layout["categories"].items()}
    blocks: list[Matrix] = []
    for j, fill in enumerate(layout["fill"]):
        column = values[:, j]
        gap = np.isnan(column)
        if j in categories:
            levels = np.arange(categories[j], dtype=np.float64)
            blocks.append((column[:, np.newaxis] == levels[np.newaxis, :]).astype(np.float64))
            continue
        blocks.append(np.where(gap, 0.0 if fill is None else fill, column)[:, np.newaxis])
        if j in indicators:
            blocks.append(gap.astype(np.float64)[:, np.newaxis])
    return np.ascontiguousarray(np.hstack(blocks))
