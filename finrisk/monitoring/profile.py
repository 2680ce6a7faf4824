"""The reference profile of a model's training data: what live traffic is compared with.

Logged as `profile.json` with every registered version (finrisk.registry), data, not a pickle:

- `features`: per feature, the inner edges of its deciles on the training rows (fewer when
  values repeat) and the share of rows in each bin, plus the share of missing values;
- `categories`: for the detector, the share of each category and channel;
- `scores`: the model's scores on rows it did not train on, binned the same way;
- `alert_rate`: the detector's share of those rows at or above its threshold (the risk model's:
  its HIGH share); `band_mix`: the risk model's share of each band.

Edges are chosen on a sample of at most `MAX_ROWS` rows (seeded), so profiling a million-row
history takes a second, not the training's time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

PROFILE_VERSION = 1
BINS = 10
MAX_ROWS = 200_000


def numeric(values: npt.ArrayLike) -> dict[str, Any]:
    """Decile edges of the finite values and each bin's share (bin i: edges[i-1] < v <= edges[i]
    with the first and last open), and the share of values that are missing or not finite."""
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    if len(finite) == 0:
        return {"edges": [], "shares": [], "missing": 1.0 if len(array) else 0.0}
    inner = np.quantile(finite, np.arange(1, BINS) / BINS)
    edges = np.unique(inner)
    counts = np.bincount(np.searchsorted(edges, finite, side="left"), minlength=len(edges) + 1)
    return {
        "edges": edges.tolist(),
        "shares": (counts / len(finite)).tolist(),
        "missing": float(1.0 - len(finite) / len(array)),
    }


def categorical(values: Sequence[Any] | pd.Series) -> dict[str, float]:
    """Each value's share (as text)."""
    series = pd.Series(values).astype(str)
    return {str(k): float(v) for k, v in series.value_counts(normalize=True).sort_index().items()}


def sample_rows(rows: npt.NDArray[np.intp], seed: int) -> npt.NDArray[np.intp]:
    """At most MAX_ROWS of the row positions `rows`, the same for the same seed."""
    if len(rows) <= MAX_ROWS:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, MAX_ROWS, replace=False))


def reference_profile(
    features: pd.DataFrame,
    scores: npt.ArrayLike,
    *,
    rows: npt.ArrayLike | None = None,
    seed: int = 0,
    categories: Mapping[str, Sequence[Any] | pd.Series] | None = None,
    threshold: float | None = None,
    bands: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The profile of the training rows of `features` (a column per feature; `rows`, a mask or
    positions, picks the training rows, so a large table is sampled without copying it whole)
    and of held-out `scores`. `categories` are columns as long as `features`."""
    positions = np.arange(len(features)) if rows is None else np.asarray(rows)
    if positions.dtype == np.bool_:
        positions = np.flatnonzero(positions)
    sample = sample_rows(positions, seed)
    sampled = features.iloc[sample]
    score_values = np.asarray(scores, dtype=np.float64)
    profile: dict[str, Any] = {
        "version": PROFILE_VERSION,
        "rows": len(positions),
        "profiled_rows": len(sample),
        "features": {str(name): numeric(sampled[name].to_numpy()) for name in features.columns},
        "categories": {
            str(name): categorical(pd.Series(values).iloc[sample])
            for name, values in (categories or {}).items()
        },
        "scores": numeric(score_values),
        "alert_rate": None,
        "band_mix": None,
    }
    if threshold is not None and len(score_values):
        profile["alert_rate"] = float(np.mean(score_values >= threshold))
    if bands is not None and len(bands):
        mix = categorical(bands)
        profile["band_mix"] = mix
        profile["alert_rate"] = mix.get("HIGH", 0.0)
    return profile
