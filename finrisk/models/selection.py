"""Choosing the risk model's estimator by cross-validation on the training rows.

Every candidate is the whole calibrated estimator RiskModel would fit (calibration included),
scored on folds it did not see: the selection compares what would be served, not a raw model.

- Folds: stratified on the label, k folds (default 5), shuffled with the model's seed. A user's
  rows stay in one fold (grouped by the index, the user id): a user's point-in-time snapshots
  and whole history are near copies, and splitting them would reward memorising users.
- Metric: mean ROC-AUC over the folds (the Brier score is recorded beside it).
- Tie rule: candidates are listed simplest first; the simplest whose mean ROC-AUC is within
  TIE_TOLERANCE of the best wins. A difference that small is inside the folds' noise on a few
  thousand users, and the simpler model is cheaper to serve and easier to explain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

from finrisk.errors import FinriskError

LOGISTIC = "logistic"
HGB = "hgb"
AUTO = "auto"
# Simplest first: the order the tie rule reads.
CANDIDATES: tuple[str, ...] = (LOGISTIC, HGB)
DEFAULT_FOLDS = 5
TIE_TOLERANCE = 0.002


@dataclass(frozen=True)
class CandidateScore:
    name: str
    roc_auc_mean: float
    roc_auc_std: float
    brier_mean: float
    folds: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.name,
            "cv_roc_auc_mean": self.roc_auc_mean,
            "cv_roc_auc_std": self.roc_auc_std,
            "cv_brier_mean": self.brier_mean,
            "folds": self.folds,
        }


def choose(scores: Sequence[CandidateScore], tolerance: float = TIE_TOLERANCE) -> str:
    """The simplest candidate (first listed) within `tolerance` of the best mean ROC-AUC."""
    if not scores:
        raise FinriskError("no candidate to choose from")
    best = max(s.roc_auc_mean for s in scores)
    return next(s.name for s in scores if s.roc_auc_mean >= best - tolerance)


def cross_validate(
    make: Callable[[], Any],
    values: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    groups: npt.ArrayLike,
    *,
    folds: int,
    seed: int,
    name: str,
) -> CandidateScore:
    """Mean and spread of one candidate's held-out ROC-AUC (and Brier) over stratified folds."""
    if folds < 2:
        raise FinriskError(f"model selection needs at least 2 folds, got {folds}")
    minority = int(min(labels.sum(), len(labels) - labels.sum()))
    if minority < folds:
        raise FinriskError(
            f"model selection with {folds} folds needs at least {folds} rows of each class, "
            f"the rarer class has {minority}"
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    aucs, briers = [], []
    for train, test in splitter.split(values, labels, groups):
        fitted = make().fit(values[train], labels[train])
        p = fitted.predict_proba(values[test])[:, 1]
        aucs.append(float(roc_auc_score(labels[test], p)))
        briers.append(float(brier_score_loss(labels[test], p)))
    return CandidateScore(
        name=name,
        roc_auc_mean=float(np.mean(aucs)),
        roc_auc_std=float(np.std(aucs)),
        brier_mean=float(np.mean(briers)),
        folds=len(aucs),
    )


def selection_record(scores: Sequence[CandidateScore], chosen: str, seed: int) -> dict[str, Any]:
    """What the model's metadata (and so the registry and the report) keep of the choice."""
    return {
        "chosen": chosen,
        "metric": "cv_roc_auc_mean",
        "tie_tolerance": TIE_TOLERANCE,
        "seed": seed,
        "candidates": [s.to_dict() for s in scores],
    }


def selection_params(model: Any) -> dict[str, str]:
    """MLflow params of a risk model's choice: the estimator it serves (chosen or given)."""
    estimator = getattr(model, "metadata_", {}).get("estimator")
    return {} if estimator is None else {"risk_estimator": str(estimator)}


def selection_metrics(model: Any) -> dict[str, float]:
    """MLflow metrics of a risk model's candidates table: cv_<metric>_<candidate>."""
    record = getattr(model, "metadata_", {}).get("selection")
    if record is None:
        return {}
    out = {}
    for row in record["candidates"]:
        for key in ("cv_roc_auc_mean", "cv_roc_auc_std", "cv_brier_mean"):
            if row.get(key) is not None:
                out[f"{key}_{row['candidate']}"] = float(row[key])
    return out
