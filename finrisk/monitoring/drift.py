"""How far live values have moved from a model's reference profile: the population stability
index (PSI) per feature, per category column and for the scores.

PSI = sum over bins of (observed share - reference share) * ln(observed / reference), with
shares floored at `FLOOR` so that an empty bin counts without being infinite. The usual reading,
which finrisk uses: below 0.1 stable, 0.1 to 0.25 moderate, above 0.25 a major shift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

MODERATE = 0.1
MAJOR = 0.25
FLOOR = 1e-4


def shares_psi(reference: npt.NDArray[np.float64], observed: npt.NDArray[np.float64]) -> float:
    """PSI of observed bin shares against reference shares (the same bins, in order)."""
    expected = np.maximum(reference, FLOOR)
    actual = np.maximum(observed, FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def numeric_psi(reference: Mapping[str, Any], values: npt.ArrayLike) -> float | None:
    """PSI of live `values` against one numeric profile (`profile.numeric`); None when either
    side has no finite value to compare."""
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    shares = np.asarray(reference["shares"], dtype=np.float64)
    if len(finite) == 0 or len(shares) == 0:
        return None
    edges = np.asarray(reference["edges"], dtype=np.float64)
    counts = np.bincount(np.searchsorted(edges, finite, side="left"), minlength=len(shares))
    return shares_psi(shares, counts / len(finite))


def categorical_psi(reference: Mapping[str, float], values: Sequence[Any] | pd.Series) -> float:
    """PSI of live values against category shares; a value the reference never saw counts in a
    bin of its own (reference share 0, floored)."""
    counts = pd.Series(values).astype(str).value_counts()
    return category_counts_psi(reference, {str(k): int(v) for k, v in counts.items()})


def category_counts_psi(reference: Mapping[str, float], counts: Mapping[str, int]) -> float:
    """`categorical_psi` of live values already counted per category."""
    total = sum(counts.values())
    names = sorted(set(reference) | set(counts))
    return shares_psi(
        np.array([reference.get(name, 0.0) for name in names], dtype=np.float64),
        np.array([counts.get(name, 0) / total for name in names], dtype=np.float64),
    )


def level(psi: float | None) -> str:
    """`stable`, `moderate` or `major` (None: `unknown`)."""
    if psi is None:
        return "unknown"
    return "major" if psi > MAJOR else "moderate" if psi >= MODERATE else "stable"
