"""Transaction anomaly detectors: the seed-style Isolation Forest and ours.

Both score rows of a feature DataFrame in [0, 1] (higher = more anomalous) and flag rows whose
score reaches `threshold_`, chosen on a validation split by `choose_threshold`.

`estimator_` is the one fitted sklearn estimator behind the score, kept plain so that it can be
compiled (skl2onnx) for serving. It takes the `feature_names_` columns in order, as float32
(see `detector_input`); `score_kind_` says how its output becomes the score:
- "probability": score = estimator_.predict_proba(X)[:, 1]
- "isolation":   score = -estimator_.score_samples(X), the Isolation Forest paper's
  2 ** (-mean path length / c(n)), already within (0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest

from finrisk.errors import FinriskError
from finrisk.models.base import build_metadata, feature_matrix, labels_vector, resolve_feature_names
from finrisk.models.thresholds import choose_threshold

# The seed scored three raw columns with an Isolation Forest.
SEED_TRANSACTION_FIELDS: tuple[str, ...] = ("amount", "hour", "balance_after")

PROBABILITY = "probability"
ISOLATION = "isolation"


def seed_transaction_frame(transactions: pd.DataFrame) -> pd.DataFrame:
    """The seed detector's inputs from canonical transactions: amount, hour of day, balance."""
    return pd.DataFrame(
        {
            "amount": transactions["amount"].astype(np.float64),
            "hour": pd.to_datetime(transactions["timestamp"], utc=True).dt.hour.astype(np.float64),
            "balance_after": transactions["balance_after"].astype(np.float64),
        },
        index=transactions.index,
    )


def detector_input(X: pd.DataFrame, feature_names: Sequence[str]) -> npt.NDArray[np.float64]:
    """The feature matrix rounded to float32, in training and in scoring.

    A compiled model (ONNX) reads float32; trees trained on float64 values put thresholds
    between values that float32 cannot tell apart, and scores then differ after compiling.
    Rounding first makes sklearn and the compiled model see the same numbers.
    """
    return feature_matrix(X, feature_names).astype(np.float32).astype(np.float64)


def _float32_safe_thresholds(model: HistGradientBoostingClassifier) -> None:
    """Lower every split threshold to the largest float32 at or below it.

    For float32 inputs `x <= t` and `x <= floor32(t)` agree, and floor32(t) survives the cast
    to float32 in a compiled model exactly; a plain cast rounds to nearest and can flip splits
    between adjacent float32 values. sklearn keeps the thresholds in `_predictors` (read by
    skl2onnx too), the only place to change them.
    """
    for predictors in model._predictors:
        for predictor in predictors:
            nodes = predictor.nodes
            exact = nodes["num_threshold"]
            lowered = exact.astype(np.float32)
            above = lowered.astype(np.float64) > exact
            lowered[above] = np.nextafter(lowered[above], np.float32(-np.inf))
            nodes["num_threshold"] = lowered.astype(np.float64)


def _sample_negatives(
    labels: npt.NDArray[np.int64], share: float, seed: int
) -> npt.NDArray[np.bool_]:
    """Rows kept for supervised training: every positive, `share` of the negatives."""
    if not 0 < share <= 1:
        raise FinriskError(f"negative_sample must be in (0, 1], got {share}")
    rng = np.random.default_rng(seed)
    return np.asarray((labels == 1) | (rng.random(len(labels)) < share))


class _Detector(ClassifierMixin, BaseEstimator):
    """Scoring, flagging and threshold choice shared by both detectors."""

    # Set by subclasses' __init__ (sklearn wants constructor params stored as given).
    threshold_strategy: str
    target_fpr: float
    alert_rate: float

    feature_names_: tuple[str, ...]
    estimator_: Any
    score_kind_: str
    threshold_: float
    threshold_strategy_: str
    metadata_: dict[str, Any]
    classes_: npt.NDArray[np.int64]

    def _raw_scores(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if self.score_kind_ == PROBABILITY:
            return np.asarray(self.estimator_.predict_proba(values)[:, 1], dtype=np.float64)
        return np.asarray(-self.estimator_.score_samples(values), dtype=np.float64)

    def anomaly_score(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Score in [0, 1] per row; higher = more anomalous."""
        self._check_fitted()
        return np.clip(self._raw_scores(detector_input(X, self.feature_names_)), 0.0, 1.0)

    def predict_proba(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        """[1 - score, score] per row, so sklearn-style tooling can read the score."""
        score = self.anomaly_score(X)
        return np.column_stack([1.0 - score, score])

    def predict(self, X: pd.DataFrame) -> npt.NDArray[np.int64]:
        """1 where the score reaches the chosen threshold."""
        return (self.anomaly_score(X) >= self.threshold_).astype(np.int64)

    def choose_threshold(self, X: pd.DataFrame, y: Any = None) -> float:
        """Pick `threshold_` on held-out rows (labels optional) and record how in metadata."""
        scores = self.anomaly_score(X)
        labels = None if y is None else labels_vector(y, len(scores))
        self.threshold_, self.threshold_strategy_ = choose_threshold(
            scores,
            labels,
            strategy=self.threshold_strategy,
            target_fpr=self.target_fpr,
            alert_rate=self.alert_rate,
        )
        self.metadata_.update(
            threshold=self.threshold_,
            threshold_strategy=self.threshold_strategy_,
            threshold_rows=len(scores),
        )
        return self.threshold_

    def _finish_fit(
        self, X: pd.DataFrame, labels: npt.NDArray[np.int64] | None, **facts: Any
    ) -> None:
        self.classes_ = np.array([0, 1], dtype=np.int64)
        self.metadata_ = build_metadata(
            self,
            self.feature_names_,
            score_kind=self.score_kind_,
            n_train=len(X),
            train_positive_rate=None if labels is None else float(labels.mean()),
            **facts,
        )
        # A usable flag before any validation split is seen; choose_threshold replaces it.
        self.choose_threshold(X, labels)

    def _check_fitted(self) -> None:
        if not hasattr(self, "estimator_"):
            raise FinriskError(f"{type(self).__name__} is not trained yet: call fit first")


class SeedIsolationForestDetector(_Detector):
    """The seed's detector: an Isolation Forest on amount, hour and balance, no labels used."""

    def __init__(
        self,
        feature_names: Sequence[str] = SEED_TRANSACTION_FIELDS,
        n_estimators: int = 100,
        random_state: int = 0,
        threshold_strategy: str = "auto",
        target_fpr: float = 0.01,
        alert_rate: float = 0.01,
    ) -> None:
        self.feature_names = feature_names
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.threshold_strategy = threshold_strategy
        self.target_fpr = target_fpr
        self.alert_rate = alert_rate

    def fit(self, X: pd.DataFrame, y: Any = None) -> SeedIsolationForestDetector:
        self.feature_names_ = resolve_feature_names(X, self.feature_names)
        values = detector_input(X, self.feature_names_)
        labels = None if y is None else labels_vector(y, len(values))
        self.estimator_ = IsolationForest(
            n_estimators=self.n_estimators, random_state=self.random_state
        ).fit(values)
        self.score_kind_ = ISOLATION
        self._finish_fit(X, labels, mode="unsupervised")
        return self


class TransactionAnomalyDetector(_Detector):
    """Ours: gradient boosting on engineered features when labels exist, else an Isolation Forest.

    mode="auto" trains the supervised model when `y` holds at least `min_positives` frauds and
    falls back to the Isolation Forest on the same engineered features otherwise, so the
    detector still ranks unusual behaviour for a user who has no labels.
    Class imbalance: class_weight="balanced" gives both classes equal total weight, so rare
    frauds are not ignored; before that, only a `negative_sample` share of the legitimate rows
    is kept (all frauds are), which cuts training time about fivefold at no measurable cost:
    legitimate rows are plentiful and alike, and balancing restores their total weight.
    """

    def __init__(
        self,
        feature_names: Sequence[str] | None = None,
        mode: str = "auto",
        min_positives: int = 20,
        learning_rate: float = 0.1,
        max_iter: int = 150,
        max_leaf_nodes: int = 31,
        min_samples_leaf: int = 40,
        l2_regularization: float = 1.0,
        class_weight: str | None = "balanced",
        negative_sample: float = 0.2,
        n_estimators: int = 200,
        random_state: int = 0,
        threshold_strategy: str = "auto",
        target_fpr: float = 0.01,
        alert_rate: float = 0.01,
    ) -> None:
        self.feature_names = feature_names
        self.mode = mode
        self.min_positives = min_positives
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.class_weight = class_weight
        self.negative_sample = negative_sample
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.threshold_strategy = threshold_strategy
        self.target_fpr = target_fpr
        self.alert_rate = alert_rate

    def fit(self, X: pd.DataFrame, y: Any = None) -> TransactionAnomalyDetector:
        if self.mode not in ("auto", "supervised", "unsupervised"):
            raise FinriskError(f"unknown detector mode {self.mode!r}")
        self.feature_names_ = resolve_feature_names(X, self.feature_names)
        values = detector_input(X, self.feature_names_)
        labels = None if y is None else labels_vector(y, len(values))
        n_pos = 0 if labels is None else int(labels.sum())
        supervised = self.mode == "supervised" or (
            self.mode == "auto" and n_pos >= self.min_positives and n_pos < len(values)
        )
        if supervised:
            if labels is None or n_pos == 0 or n_pos == len(values):
                raise FinriskError("supervised detector needs labels with both fraud and non-fraud")
            keep = _sample_negatives(labels, self.negative_sample, self.random_state)
            self.estimator_ = HistGradientBoostingClassifier(
                learning_rate=self.learning_rate,
                max_iter=self.max_iter,
                max_leaf_nodes=self.max_leaf_nodes,
                min_samples_leaf=self.min_samples_leaf,
                l2_regularization=self.l2_regularization,
                class_weight=self.class_weight,
                early_stopping=False,  # its random inner split would make training less repeatable
                random_state=self.random_state,
            ).fit(values[keep], labels[keep])
            _float32_safe_thresholds(self.estimator_)
            self.score_kind_ = PROBABILITY
        else:
            self.estimator_ = IsolationForest(
                n_estimators=self.n_estimators, random_state=self.random_state
            ).fit(values)
            self.score_kind_ = ISOLATION
        self._finish_fit(
            X, labels, mode="supervised" if supervised else "unsupervised", n_train_positives=n_pos
        )
        return self
