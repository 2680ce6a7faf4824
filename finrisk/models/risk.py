"""User risk classifiers: the seed-style Logistic Regression and our calibrated model.

Both map a user-feature DataFrame (one row per user) to a probability of the risk outcome, a
band (see bands.py) and the top reasons (see reasons.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from finrisk.errors import FinriskError
from finrisk.models.bands import DEFAULT_BANDS, RiskBands
from finrisk.models.base import build_metadata, labels_vector, resolve_feature_names
from finrisk.models.encoding import LinearInputs, encode, learn_categories, reference_values
from finrisk.models.reasons import Reason, occlusion_contributions, top_reasons
from finrisk.models.selection import (
    AUTO,
    CANDIDATES,
    DEFAULT_FOLDS,
    HGB,
    LOGISTIC,
    choose,
    cross_validate,
    selection_record,
)

DEFAULT_REASONS = 3


def _signed_log1p(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # Money amounts span orders of magnitude; a linear model sees them better on a log scale.
    return np.sign(values) * np.log1p(np.abs(values))


class _RiskModel(ClassifierMixin, BaseEstimator):
    """Probability, band and reasons shared by both risk models."""

    band_low: float
    band_high: float

    feature_names_: tuple[str, ...]
    categories_: dict[str, tuple[str, ...]]
    estimator_: Any
    chosen_estimator_: str
    reference_: npt.NDArray[np.float64]
    bands_: RiskBands
    metadata_: dict[str, Any]
    classes_: npt.NDArray[np.int64]

    def _make_estimator(self, categorical: dict[int, int]) -> Any:
        """The estimator on encoded inputs; categorical: column index -> number of categories."""
        raise NotImplementedError

    def _select(
        self,
        values: npt.NDArray[np.float64],
        labels: npt.NDArray[np.int64],
        groups: npt.ArrayLike,
        categorical: dict[int, int],
    ) -> dict[str, Any]:
        """Metadata of how the estimator was chosen (none to choose: nothing)."""
        return {}

    def fit(self, X: pd.DataFrame, y: Any) -> _RiskModel:
        self.bands_ = RiskBands(low=self.band_low, high=self.band_high)
        self.feature_names_ = resolve_feature_names(X, getattr(self, "feature_names", None))
        missing = [name for name in self.feature_names_ if name not in X.columns]
        if missing:
            raise FinriskError(f"feature columns missing from the input: {', '.join(missing)}")
        self.categories_ = learn_categories(X, self.feature_names_)
        values = self.encode(X)
        labels = labels_vector(y, len(values))
        if len(np.unique(labels)) < 2:
            raise FinriskError("the risk label has a single class: nothing to learn from")
        categorical = {
            j: len(self.categories_[name])
            for j, name in enumerate(self.feature_names_)
            if name in self.categories_
        }
        chosen = self._select(values, labels, X.index.to_numpy(), categorical)
        self.estimator_ = self._make_estimator(categorical).fit(values, labels)
        self.reference_ = reference_values(values, list(categorical))
        self.classes_ = np.array([0, 1], dtype=np.int64)
        self.metadata_ = build_metadata(
            self,
            self.feature_names_,
            bands=self.bands_.to_dict(),
            n_train=len(values),
            train_positive_rate=float(labels.mean()),
            reference=dict(zip(self.feature_names_, map(float, self.reference_), strict=True)),
            categories={name: list(levels) for name, levels in self.categories_.items()},
            train_missing={
                name: int(n)
                for name, n in zip(self.feature_names_, np.isnan(values).sum(axis=0), strict=True)
                if n
            },
            **chosen,
        )
        return self

    def encode(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        """The model's input matrix for X: gaps as NaN, categories as codes (encoding.py)."""
        return encode(X, self.feature_names_, getattr(self, "categories_", {}))

    def _proba(self, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.asarray(self.estimator_.predict_proba(values)[:, 1], dtype=np.float64)

    def _check_fitted(self) -> None:
        if not hasattr(self, "estimator_"):
            raise FinriskError(f"{type(self).__name__} is not trained yet: call fit first")

    def risk_probability(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Probability of the risk outcome per row."""
        self._check_fitted()
        return self._proba(self.encode(X))

    def predict_proba(self, X: pd.DataFrame) -> npt.NDArray[np.float64]:
        p = self.risk_probability(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> npt.NDArray[np.int64]:
        return (self.risk_probability(X) >= 0.5).astype(np.int64)

    def predict_band(self, X: pd.DataFrame, bands: RiskBands | None = None) -> npt.NDArray[np.str_]:
        """LOW / MEDIUM / HIGH per row, with the model's bands unless others are given."""
        return (bands or self.bands_).bands(self.risk_probability(X))

    def explain(self, X: pd.DataFrame, k: int = DEFAULT_REASONS) -> list[list[Reason]]:
        """Top-k reasons per row (occlusion against the training medians, see reasons.py)."""
        self._check_fitted()
        if k < 1:
            raise FinriskError(f"number of reasons must be >= 1, got {k}")
        values = self.encode(X)
        contributions = occlusion_contributions(self._proba, values, self.reference_)
        return top_reasons(contributions, values, self.reference_, self.feature_names_, k)

    def assess(
        self, X: pd.DataFrame, k: int = DEFAULT_REASONS, bands: RiskBands | None = None
    ) -> pd.DataFrame:
        """probability, band and reasons (list of dicts) per row, indexed like X."""
        probability = self.risk_probability(X)
        reasons = self.explain(X, k)
        return pd.DataFrame(
            {
                "probability": probability,
                "band": (bands or self.bands_).bands(probability),
                "reasons": [[r.to_dict() for r in row] for row in reasons],
            },
            index=X.index,
        )


class SeedLogisticRiskModel(_RiskModel):
    """The seed's model: standardised features into a plain Logistic Regression (gaps imputed
    and categories one-hot encoded as for ours, encoding.LinearInputs)."""

    def __init__(
        self,
        feature_names: Sequence[str] | None = None,
        C: float = 1.0,
        band_low: float = DEFAULT_BANDS.low,
        band_high: float = DEFAULT_BANDS.high,
    ) -> None:
        self.feature_names = feature_names
        self.C = C
        self.band_low = band_low
        self.band_high = band_high

    def _make_estimator(self, categorical: dict[int, int]) -> Pipeline:
        return make_pipeline(
            LinearInputs(categorical),
            StandardScaler(),
            LogisticRegression(C=self.C, max_iter=1000),
        )


class RiskModel(_RiskModel):
    """Ours: a model on the full user features, probabilities calibrated by cross-validation.

    estimator="auto" (default) chooses between the candidates below by stratified
    cross-validation on the training rows (`selection_folds` folds, seeded by random_state;
    mean ROC-AUC, ties within selection.TIE_TOLERANCE to the simpler logistic model, see
    finrisk.models.selection), then refits the chosen one on every training row; the choice and
    the candidates table are in `metadata_["selection"]`.
    estimator="logistic": imputed (with missing indicators) and one-hot encoded
    (encoding.LinearInputs), log-scaled, standardised features into a Logistic Regression,
    cheap and as good as boosting when effects are close to additive; "hgb": gradient
    boosting, for interactions and non-linear effects; it routes gaps natively and splits on
    category codes.
    calibration="isotonic"/"sigmoid" fits `cv` calibrated copies (CalibratedClassifierCV,
    ensemble averaged), so every training user helps both the model and its calibration.
    """

    def __init__(
        self,
        feature_names: Sequence[str] | None = None,
        estimator: str = AUTO,
        calibration: str = "sigmoid",
        cv: int = 5,
        selection_folds: int = DEFAULT_FOLDS,
        learning_rate: float = 0.05,
        max_iter: int = 200,
        max_leaf_nodes: int = 8,
        min_samples_leaf: int = 20,
        l2_regularization: float = 1.0,
        C: float = 1.0,
        random_state: int = 0,
        band_low: float = DEFAULT_BANDS.low,
        band_high: float = DEFAULT_BANDS.high,
    ) -> None:
        self.feature_names = feature_names
        self.estimator = estimator
        self.calibration = calibration
        self.cv = cv
        self.selection_folds = selection_folds
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.C = C
        self.random_state = random_state
        self.band_low = band_low
        self.band_high = band_high

    def _select(
        self,
        values: npt.NDArray[np.float64],
        labels: npt.NDArray[np.int64],
        groups: npt.ArrayLike,
        categorical: dict[int, int],
    ) -> dict[str, Any]:
        if self.estimator != AUTO:
            self._candidate(self.estimator, categorical)  # an unknown name fails before fitting
            self.chosen_estimator_ = self.estimator
            return {"estimator": self.estimator}
        scores = [
            cross_validate(
                partial(self._candidate, name, categorical),
                values,
                labels,
                groups,
                folds=self.selection_folds,
                seed=self.random_state,
                name=name,
            )
            for name in CANDIDATES
        ]
        self.chosen_estimator_ = choose(scores)
        return {
            "estimator": self.chosen_estimator_,
            "selection": selection_record(scores, self.chosen_estimator_, self.random_state),
        }

    def _make_estimator(self, categorical: dict[int, int]) -> CalibratedClassifierCV:
        return self._candidate(getattr(self, "chosen_estimator_", self.estimator), categorical)

    def _candidate(self, name: str, categorical: dict[int, int]) -> CalibratedClassifierCV:
        """The calibrated estimator of one candidate (selection.CANDIDATES)."""
        if self.calibration not in ("isotonic", "sigmoid"):
            raise FinriskError(f"unknown calibration {self.calibration!r}: isotonic or sigmoid")
        base: Any
        if name == HGB:
            base = HistGradientBoostingClassifier(
                learning_rate=self.learning_rate,
                max_iter=self.max_iter,
                max_leaf_nodes=self.max_leaf_nodes,
                min_samples_leaf=self.min_samples_leaf,
                l2_regularization=self.l2_regularization,
                early_stopping=False,
                random_state=self.random_state,
            )
        elif name == LOGISTIC:
            base = make_pipeline(
                LinearInputs(categorical),
                FunctionTransformer(_signed_log1p),
                StandardScaler(),
                LogisticRegression(C=self.C, max_iter=2000),
            )
        else:
            raise FinriskError(f"unknown risk estimator {name!r}: {AUTO}, {LOGISTIC} or {HGB}")
        return CalibratedClassifierCV(base, method=self.calibration, cv=self.cv, ensemble=True)
