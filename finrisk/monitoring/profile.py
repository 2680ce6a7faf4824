"""The reference profile of a model's training data: what live traffic is compared with.

Logged as `profile.json` with every registered version (finrisk.registry), data, not a pickle:

- `features`: per feature, the inner edges of its deciles on the training rows (fewer when
  values repeat) and the share of rows in each bin, plus the share of missing values;
- `categories`: for the detector, the share of each category and channel;
- `scores`: the model's scores on rows it did not train on, binned the same way;
- `alert_rate`: the detector's share of those rows at or above its threshold (the risk model's:
  its HIGH share); `band_mix`: the risk model's share of each band;
- `calendar` (version 2, when the rows' event times are given): the same bins' shares per
  calendar phase (finrisk.monitoring.calendar) of the features and categories (parts of the
  month) and of the scores (weekdays), so that a window of the 1st to the 5th is compared with
  the training's 1st to 5th (finrisk.monitoring.window). A profile without it (version 1, or
  rows without one event time, as the risk model's users) is compared with its overall shares.

Edges are chosen on a sample of at most `MAX_ROWS` rows (seeded), so profiling a million-row
history takes a second, not the training's time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from finrisk.monitoring.calendar import MONTH_PART, PHASES, WEEKDAY, phases

# 2: the `calendar` shares per phase (a version 1 profile is read as one without them).
PROFILE_VERSION = 2
BINS = 10
MAX_ROWS = 200_000
# The calendar scheme of each measure: the features and categories follow the month's bills,
# the scores the weekday (measured: `finrisk bench drift`, docs/monitoring.md).
FEATURE_PHASES = MONTH_PART
SCORE_PHASES = WEEKDAY
# A phase with fewer profiled rows than this keeps no shares of its own (too noisy to compare
# a window with): its live rows are compared with the overall shares.
MIN_PHASE_ROWS = 500


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


def binned_shares(reference: Mapping[str, Any], values: npt.ArrayLike) -> list[float] | None:
    """The shares of the finite `values` in the bins of a `numeric` reference; None when too
    few values (MIN_PHASE_ROWS) to stand for it."""
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    if len(finite) < MIN_PHASE_ROWS or not reference["shares"]:
        return None
    edges = np.asarray(reference["edges"], dtype=np.float64)
    counts = np.bincount(
        np.searchsorted(edges, finite, side="left"), minlength=len(reference["shares"])
    )
    return (counts / len(finite)).tolist()


def event_ns(times: npt.ArrayLike | pd.Series) -> npt.NDArray[np.int64]:
    """Event times (timestamps, or nanoseconds since the epoch) as nanoseconds, UTC."""
    utc = pd.to_datetime(pd.Series(times), utc=True).dt.tz_convert(None)
    return utc.to_numpy(dtype="datetime64[ns]").view(np.int64)


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
    times: npt.ArrayLike | pd.Series | None = None,
    score_times: npt.ArrayLike | pd.Series | None = None,
) -> dict[str, Any]:
    """The profile of the training rows of `features` (a column per feature; `rows`, a mask or
    positions, picks the training rows, so a large table is sampled without copying it whole)
    and of held-out `scores`. `categories` are columns as long as `features`. `times`, the
    event time of each row of `features`, and `score_times`, of each score, add the shares per
    calendar phase (`calendar`): both or neither."""
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
    if (times is None) != (score_times is None):
        raise ValueError("a calendar profile needs the event times of the rows and the scores")
    if times is not None and score_times is not None:
        profile["calendar"] = _calendar(
            profile,
            sampled,
            event_ns(times)[sample],
            {name: pd.Series(values).iloc[sample] for name, values in (categories or {}).items()},
            score_values,
            event_ns(score_times),
        )
    if threshold is not None and len(score_values):
        profile["alert_rate"] = float(np.mean(score_values >= threshold))
    if bands is not None and len(bands):
        mix = categorical(bands)
        profile["band_mix"] = mix
        profile["alert_rate"] = mix.get("HIGH", 0.0)
    return profile


def _calendar(
    profile: Mapping[str, Any],
    sampled: pd.DataFrame,
    sampled_ns: npt.NDArray[np.int64],
    categories: Mapping[str, pd.Series],
    scores: npt.NDArray[np.float64],
    score_ns: npt.NDArray[np.int64],
) -> dict[str, Any]:
    """The shares per phase, in the overall bins: `shares[name][phase]` (None for a phase with
    too few rows), and each phase's rows."""
    row_phase = phases(FEATURE_PHASES, sampled_ns)
    score_phase = phases(SCORE_PHASES, score_ns)
    n_rows, n_scores = len(PHASES[FEATURE_PHASES]), len(PHASES[SCORE_PHASES])
    in_phase = [row_phase == p for p in range(n_rows)]
    return {
        "features": {
            "phases": FEATURE_PHASES,
            "rows": [int(mask.sum()) for mask in in_phase],
            "shares": {
                name: [binned_shares(reference, sampled[name].to_numpy()[m]) for m in in_phase]
                for name, reference in profile["features"].items()
            },
        },
        "categories": {
            "phases": FEATURE_PHASES,
            "rows": [int(mask.sum()) for mask in in_phase],
            "shares": {
                name: [
                    categorical(values.to_numpy()[m]) if m.sum() >= MIN_PHASE_ROWS else None
                    for m in in_phase
                ]
                for name, values in categories.items()
            },
        },
        "scores": {
            "phases": SCORE_PHASES,
            "rows": [int((score_phase == p).sum()) for p in range(n_scores)],
            "shares": [
                binned_shares(profile["scores"], scores[score_phase == p]) for p in range(n_scores)
            ],
        },
    }
