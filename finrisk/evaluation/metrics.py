"""Metrics for a binary label and a score, each defined once here.

Conventions:
- higher score = more likely positive;
- recall_at_fpr: the best recall among thresholds whose false-positive rate is <= the budget
  (tied scores move together, so a tie can keep a recall out of reach);
- precision_at_k: positives among the k highest scores, ties broken by row order (stable);
- brier: mean squared error of the score read as a probability (meaningful only for
  probabilities; an Isolation Forest score is not one and is reported for completeness);
- expected calibration error (ECE): the rows fall into ECE_BINS equal-width probability bins
  ([0, 0.1), [0.1, 0.2), ..., [0.9, 1.0], a probability of 1 in the last); each bin's
  |mean probability - observed rate|, weighted by its share of the rows, summed. 0 is perfectly
  calibrated; empty bins count nothing;
- daily alert budget: each day the `budget` highest-scored rows are alerts (ties by row
  order), as an investigation team with a fixed capacity works through its queue;
- cost-weighted loss: what the alerts leave the bank to pay (ALERT_REVIEW_COST per alert,
  FALSE_ALERT_COST more per legitimate customer stopped, and a missed fraud's amount plus
  MISSED_FRAUD_FEE), as a share of what alerting nothing costs (every fraud missed): 1.0 is
  no better than no detector, above 1 worse, 0 impossible (reviews cost).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    roc_auc_score,
    roc_curve,
)

from finrisk.errors import FinriskError
from finrisk.models.bands import BAND_NAMES, RiskBands

# Costs of the cost-weighted loss, in the data's currency (docs/models-and-evaluation.md):
# an analyst's review of one alert (a few minutes); a legitimate customer's card held until
# they call back (support time and churn risk); a missed fraud costs its amount (refunded to
# the cardholder) plus the chargeback's handling fee.
ALERT_REVIEW_COST = 5.0
FALSE_ALERT_COST = 10.0
MISSED_FRAUD_FEE = 20.0


def _checked(
    y_true: npt.ArrayLike, scores: npt.ArrayLike
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise FinriskError(f"labels {y.shape} and scores {s.shape} must be 1-d and the same length")
    if not set(np.unique(y).tolist()) <= {0, 1}:
        raise FinriskError("labels must be 0/1")
    if np.isnan(s).any():
        raise FinriskError("scores contain NaN")
    return y.astype(np.int64), s


def _both_classes(y: npt.NDArray[np.int64], metric: str) -> None:
    if y.min() == y.max():
        raise FinriskError(f"{metric} needs both positive and negative labels in the test set")


def roc_auc(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    y, s = _checked(y_true, scores)
    _both_classes(y, "ROC-AUC")
    return float(roc_auc_score(y, s))


def pr_auc(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Average precision: the step-wise area under the precision-recall curve."""
    y, s = _checked(y_true, scores)
    _both_classes(y, "PR-AUC")
    return float(average_precision_score(y, s))


def recall_at_fpr(y_true: npt.ArrayLike, scores: npt.ArrayLike, fpr: float = 0.01) -> float:
    y, s = _checked(y_true, scores)
    _both_classes(y, "recall at FPR")
    fprs, tprs, _ = roc_curve(y, s, drop_intermediate=False)
    return float(tprs[fprs <= fpr].max())


def precision_at_k(y_true: npt.ArrayLike, scores: npt.ArrayLike, k: int) -> float:
    y, s = _checked(y_true, scores)
    if k < 1:
        raise FinriskError(f"k must be >= 1, got {k}")
    k = min(k, len(y))
    top = np.argsort(-s, kind="stable")[:k]
    return float(y[top].mean())


def brier(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    y, s = _checked(y_true, scores)
    if s.min() < 0 or s.max() > 1:
        raise FinriskError("Brier score needs scores within [0, 1]")
    return float(brier_score_loss(y, s))


ECE_BINS = 10


def expected_calibration_error(
    y_true: npt.ArrayLike, probabilities: npt.ArrayLike, bins: int = ECE_BINS
) -> float:
    """ECE over `bins` equal-width bins (module docstring)."""
    y, p = _checked(y_true, probabilities)
    if p.min() < 0 or p.max() > 1:
        raise FinriskError("calibration error needs probabilities within [0, 1]")
    if bins < 1:
        raise FinriskError(f"calibration error needs at least one bin, got {bins}")
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in np.unique(which):
        rows = which == b
        total += rows.mean() * abs(p[rows].mean() - y[rows].mean())
    return float(total)


def confusion_at_threshold(
    y_true: npt.ArrayLike, scores: npt.ArrayLike, threshold: float
) -> dict[str, int]:
    """Counts of the flag score >= threshold against the label."""
    y, s = _checked(y_true, scores)
    flag = s >= threshold
    return {
        "tp": int((flag & (y == 1)).sum()),
        "fp": int((flag & (y == 0)).sum()),
        "fn": int((~flag & (y == 1)).sum()),
        "tn": int((~flag & (y == 0)).sum()),
    }


def band_confusion(
    y_true: npt.ArrayLike, probabilities: npt.ArrayLike, bands: RiskBands
) -> dict[str, dict[str, Any]]:
    """Per band: users with and without the outcome, and the observed outcome rate.

    Rows of the matrix are the bands, columns the true outcome; a good model puts the
    outcomes in HIGH and the observed rate rises LOW < MEDIUM < HIGH.
    """
    y, p = _checked(y_true, probabilities)
    assigned = bands.bands(p)
    out: dict[str, dict[str, Any]] = {}
    for name in BAND_NAMES:
        in_band = assigned == name
        n = int(in_band.sum())
        positives = int(y[in_band].sum())
        out[name] = {
            "n": n,
            "negative": n - positives,
            "positive": positives,
            "positive_rate": positives / n if n else None,
        }
    return out


def _rank_auc(y: npt.NDArray[np.int64], s: npt.NDArray[np.float64]) -> float:
    # Mann-Whitney: equals roc_auc_score (ties count half) without its per-call checks,
    # which dominate when a bootstrap calls it thousands of times.
    ranks = rankdata(s)
    positives = int(y.sum())
    negatives = len(y) - positives
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def roc_auc_gain_interval(
    y_true: npt.ArrayLike,
    ours: npt.ArrayLike,
    baseline: npt.ArrayLike,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """95% interval of ROC-AUC(ours) - ROC-AUC(baseline), resampling rows for both at once.

    Pairing matters: both models are scored on the same rows, so their errors are
    correlated and the gain is far better determined than either metric alone.
    """
    y, a = _checked(y_true, ours)
    _, b = _checked(y_true, baseline)
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        if y[rows].min() == y[rows].max():
            continue  # a resample with one class has no ROC-AUC
        gains.append(_rank_auc(y[rows], a[rows]) - _rank_auc(y[rows], b[rows]))
    if not gains:
        raise FinriskError("every bootstrap resample held a single class")
    low, high = np.percentile(gains, [2.5, 97.5])
    return float(low), float(high)


def binary_metrics(y_true: npt.ArrayLike, scores: npt.ArrayLike, *, k: int) -> dict[str, float]:
    """The headline metrics of one model on one test set, under stable report names."""
    y, s = _checked(y_true, scores)
    return {
        "roc_auc": roc_auc(y, s),
        "pr_auc": pr_auc(y, s),
        "recall_at_1pct_fpr": recall_at_fpr(y, s, 0.01),
        "precision_at_k": precision_at_k(y, s, k),
        "k": min(k, len(y)),
        "brier": brier(y, s),
        "n": len(y),
        "positives": int(y.sum()),
    }


def daily_alerts(scores: npt.ArrayLike, days: npt.ArrayLike, budget: int) -> npt.NDArray[np.bool_]:
    """True for each day's `budget` highest-scored rows (all of a day's rows when fewer); ties
    go to the earlier row."""
    s = np.asarray(scores, dtype=np.float64)
    d = np.asarray(days)
    if s.shape != d.shape or s.ndim != 1:
        raise FinriskError(f"scores {s.shape} and days {d.shape} must be 1-d and the same length")
    if budget < 1:
        raise FinriskError(f"the daily alert budget must be >= 1, got {budget}")
    # Sort by day, then score descending, then row: a row's rank within its day picks it.
    order = np.lexsort((np.arange(len(s)), -s, d))
    sorted_days = d[order]
    first = np.ones(len(s), dtype=bool)
    first[1:] = sorted_days[1:] != sorted_days[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(len(s)), 0))
    alerts = np.zeros(len(s), dtype=bool)
    alerts[order] = np.arange(len(s)) - start < budget
    return alerts


def precision_within_daily_budget(
    y_true: npt.ArrayLike, scores: npt.ArrayLike, days: npt.ArrayLike, budget: int
) -> float:
    """Frauds among all the alerts of a daily budget of `budget` alerts."""
    y, _ = _checked(y_true, scores)
    alerts = daily_alerts(scores, days, budget)
    return float(y[alerts].mean()) if alerts.any() else 0.0


def cost_weighted_loss(
    y_true: npt.ArrayLike, alerts: npt.ArrayLike, amounts: npt.ArrayLike
) -> float:
    """The alerts' cost (module docstring) relative to alerting nothing."""
    y = np.asarray(y_true).astype(np.int64)
    a = np.asarray(alerts, dtype=bool)
    amount = np.asarray(amounts, dtype=np.float64)
    if not (y.shape == a.shape == amount.shape) or y.ndim != 1:
        raise FinriskError("labels, alerts and amounts must be 1-d and the same length")
    fraud = y == 1
    if not fraud.any():
        raise FinriskError("the cost-weighted loss needs at least one fraud")
    missed = (amount + MISSED_FRAUD_FEE)[fraud & ~a].sum()
    cost = ALERT_REVIEW_COST * a.sum() + FALSE_ALERT_COST * (a & ~fraud).sum() + missed
    return float(cost / (amount + MISSED_FRAUD_FEE)[fraud].sum())


def fraud_team_metrics(
    y_true: npt.ArrayLike,
    scores: npt.ArrayLike,
    days: npt.ArrayLike,
    amounts: npt.ArrayLike,
    *,
    budget: int,
) -> dict[str, float]:
    """What a daily alert budget leaves: the alerts' precision, the share of frauds they catch
    and the cost-weighted loss (binary_metrics has the ranking metrics: average precision is
    its pr_auc, and recall at 1% FPR)."""
    y, s = _checked(y_true, scores)
    _both_classes(y, "the daily budget's recall")
    alerts = daily_alerts(s, days, budget)
    return {
        "daily_budget_precision": float(y[alerts].mean()) if alerts.any() else 0.0,
        "daily_budget_recall": float(y[alerts].sum() / y.sum()),
        "cost_loss": cost_weighted_loss(y, alerts, amounts),
    }
