"""What each column of a user's own table can be as a risk-model feature, decided one way for
`finrisk data validate --table users` and for training (finrisk.evaluation.inputs).

A file is read as text (finrisk.io.read_table), so a column's kind comes from its values:
- numeric: every non-empty value is a finite number; empty cells are gaps (missing values),
  which the risk model handles (docs/models-and-evaluation.md, "Gaps and categories");
- text: no non-empty value is a number; with at most MAX_CATEGORIES distinct values it is a
  categorical feature, above that it is dropped with a warning (too many levels to learn
  from per user table, and an id-like column would only memorise users);
- mixed: numbers and text in one column (a typo or an "N/A" marker): an error, the user must
  say which it is;
- empty: no value at all: ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from finrisk.parsing import present

# Above this many distinct values a text column is not encoded (see the module docstring).
MAX_CATEGORIES = 20

ColumnKind = Literal["numeric", "text", "mixed", "empty"]
NUMERIC: ColumnKind = "numeric"
TEXT: ColumnKind = "text"
MIXED: ColumnKind = "mixed"
EMPTY: ColumnKind = "empty"


@dataclass(frozen=True)
class UserColumn:
    name: str
    kind: ColumnKind
    missing: int  # empty cells
    cardinality: int = 0  # distinct values of a text column
    first_bad: int | None = None  # mixed: 0-based row of the first value that is not a number
    infinite: int = 0  # numeric: values that are +-inf (never a usable feature value)

    @property
    def categorical(self) -> bool:
        """A text column the risk model encodes."""
        return self.kind == TEXT and self.cardinality <= MAX_CATEGORIES


def _given(series: pd.Series) -> np.ndarray:
    return np.asarray(present(series), dtype=bool)


def categories_of(series: pd.Series) -> tuple[str, ...]:
    """A text column's distinct values (stripped), sorted: the order of its codes."""
    values = series[_given(series)].astype(str).str.strip()
    return tuple(sorted(values.unique()))


def numbers_of(series: pd.Series) -> pd.Series:
    """A numeric column as float64, gaps as NaN."""
    return pd.to_numeric(series.where(_given(series)), errors="coerce").astype(np.float64)


def classify(name: str, series: pd.Series) -> UserColumn:
    """The kind of one column (see the module docstring)."""
    given = _given(series)
    missing = int((~given).sum())
    if not given.any():
        return UserColumn(name, EMPTY, missing)
    if series.dtype.kind in "iufb":
        values = series.to_numpy(dtype=np.float64)
        return UserColumn(name, NUMERIC, missing, infinite=int(np.isinf(values).sum()))
    numbers = pd.to_numeric(series.where(given), errors="coerce").to_numpy(dtype=np.float64)
    parsed = given & ~np.isnan(numbers)
    if parsed[given].all():
        return UserColumn(name, NUMERIC, missing, infinite=int(np.isinf(numbers).sum()))
    if not parsed.any():
        return UserColumn(name, TEXT, missing, cardinality=len(categories_of(series)))
    first_bad = int(np.flatnonzero(given & ~parsed)[0])
    return UserColumn(name, MIXED, missing, first_bad=first_bad)
