"""Choosing the anomaly flag threshold on a validation split.

With labels the threshold maximises F1 (or meets a false-positive budget); without labels it
flags a fixed share of traffic (alert rate), the only budget an unlabelled operator can set.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.metrics import precision_recall_curve, roc_curve

from finrisk.errors import FinriskError

THRESHOLD_STRATEGIES = ("auto", "best_f1", "target_fpr", "alert_rate")


def best_f1_threshold(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """The score threshold (flag = score >= threshold) with the highest F1."""
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    precision, recall, thresholds = precision_recall_curve(y, s)
    # The last precision/recall pair has no threshold (recall 0 by convention).
    p, r = precision[:-1], recall[:-1]
    denom = p + r
    f1 = np.divide(2 * p * r, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(thresholds[int(np.argmax(f1))])


def target_fpr_threshold(y_true: npt.ArrayLike, scores: npt.ArrayLike, fpr: float) -> float:
    """The lowest threshold whose false-positive rate stays within `fpr`."""
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    fprs, _, thresholds = roc_curve(y, s, drop_intermediate=False)
    allowed = np.flatnonzero(fprs <= fpr)
    # roc_curve's first threshold is +inf (flag nothing); it is always allowed.
    threshold = float(thresholds[allowed[-1]])
    return threshold if np.isfinite(threshold) else float(np.nextafter(s.max(), np.inf))


def alert_rate_threshold(scores: npt.ArrayLike, alert_rate: float) -> float:
    """The threshold that flags about `alert_rate` of the rows (the top scores)."""
    s = np.asarray(scores, dtype=np.float64)
    return float(np.quantile(s, 1.0 - alert_rate, method="higher"))


def choose_threshold(
    scores: npt.ArrayLike,
    y_true: npt.ArrayLike | None,
    *,
    strategy: str = "auto",
    target_fpr: float = 0.01,
    alert_rate: float = 0.01,
) -> tuple[float, str]:
    """Threshold and the strategy actually used ("auto" resolves by label availability)."""
    if strategy not in THRESHOLD_STRATEGIES:
        raise FinriskError(
            f"unknown threshold strategy {strategy!r}; choose one of {THRESHOLD_STRATEGIES}"
        )
    has_both = y_true is not None and len(np.unique(np.asarray(y_true))) == 2
    if strategy == "auto":
        strategy = "best_f1" if has_both else "alert_rate"
    if strategy in ("best_f1", "target_fpr") and not has_both:
        raise FinriskError(f"threshold strategy {strategy!r} needs labels with both classes")
    if strategy == "best_f1":
        return best_f1_threshold(y_true, scores), strategy  # type: ignore[arg-type]
    if strategy == "target_fpr":
        return target_fpr_threshold(y_true, scores, target_fpr), strategy  # type: ignore[arg-type]
    return alert_rate_threshold(scores, alert_rate), strategy
