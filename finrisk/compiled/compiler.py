"""From a trained finrisk model to a compiled plan: which trees go into the graph, and the head.

Supported estimators (what finrisk.models trains):
- HistGradientBoostingClassifier (binary): its trees in the graph, expit in the head;
- IsolationForest: its trees in the graph (inputs rounded to float32, as sklearn does), the
  2 ** (-mean path length / c(n)) transform in the head;
- CalibratedClassifierCV (sigmoid or isotonic, any number of folds): every fold's base model
  as a source, its calibrator and the average in the head;
- Pipeline of [LinearInputs] -> [signed_log1p] -> [StandardScaler] -> LogisticRegression:
  numpy in the head (LinearInputs: imputation, missing indicators, one-hot categories).
Risk models take missing values (NaN) in every input and categories as codes
(finrisk.models.encoding): the plan says so (`missing`, `categories`) for the predictor.
Anything else raises a FinriskError naming the estimator.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from finrisk.compiled.trees import (
    FlatTree,
    hgb_baseline,
    hgb_trees,
    isolation_denominator,
    isolation_trees,
)
from finrisk.errors import FinriskError
from finrisk.kinds import DETECTOR, RISK
from finrisk.models.encoding import LinearInputs

# Names of the element-wise transforms a FunctionTransformer may hold (module, function name).
_KNOWN_FUNCTIONS = {("finrisk.models.risk", "_signed_log1p"): "signed_log1p"}


@dataclass
class Plan:
    """What to compile: the graph's trees (one output column per target) and the head spec."""

    kind: str
    feature_names: list[str]
    head: dict[str, Any] = field(default_factory=dict)
    trees: list[FlatTree] = field(default_factory=list)
    n_targets: int = 0
    float32_inputs: bool | None = None
    # Round every input to float32 before anything else (finrisk detectors do, see
    # finrisk.models.anomaly.detector_input).
    round_inputs: bool = False
    # Inputs that may be NaN (missing), and each categorical input's categories (its codes are
    # the indices).
    missing: list[str] = field(default_factory=list)
    categories: dict[str, list[str]] = field(default_factory=dict)

    def add_trees(self, trees: list[FlatTree], float32_inputs: bool) -> int:
        if self.float32_inputs is not None and self.float32_inputs != float32_inputs:
            raise FinriskError("cannot compile float32 and float64 tree models into one graph")
        self.float32_inputs = float32_inputs
        target = self.n_targets
        self.n_targets += 1
        self.trees.extend(replace(t, target=target) for t in trees)
        return target


def model_kind(model: Any) -> str:
    """ "detector" for a finrisk detector, "risk" for a finrisk risk model."""
    if hasattr(model, "anomaly_score") and hasattr(model, "threshold_"):
        return DETECTOR
    if hasattr(model, "risk_probability") and hasattr(model, "bands_"):
        return RISK
    raise FinriskError(f"{type(model).__name__} is not a trained finrisk detector or risk model")


def plan_model(model: Any) -> Plan:
    """The compile plan for a trained finrisk model (detector or risk model)."""
    kind = model_kind(model)
    plan = Plan(kind=kind, feature_names=[str(n) for n in model.feature_names_])
    estimator = model.estimator_
    if kind == DETECTOR:
        plan.round_inputs = True
        if model.score_kind_ == "isolation":
            if not isinstance(estimator, IsolationForest):
                raise FinriskError(f"isolation scores from a {type(estimator).__name__}")
            target = plan.add_trees(isolation_trees(estimator), float32_inputs=True)
            score = {
                "op": "isolation",
                "denominator": isolation_denominator(estimator),
                "of": {"op": "tree", "target": target, "base": 0.0},
            }
        elif model.score_kind_ == "probability":
            score = _probability(plan, estimator)
        else:
            raise FinriskError(f"unknown detector score kind {model.score_kind_!r}")
        # finrisk detectors clip their score to [0, 1].
        plan.head = {"op": "clip", "lo": 0.0, "hi": 1.0, "of": score}
    else:
        plan.head = _probability(plan, estimator)
        # Boosting routes NaN natively, LinearInputs imputes it: every risk input may be missing.
        plan.missing = list(plan.feature_names)
        plan.categories = {
            str(name): list(levels) for name, levels in getattr(model, "categories_", {}).items()
        }
    _check_width(plan, estimator)
    return plan


def _check_width(plan: Plan, estimator: Any) -> None:
    n_in = getattr(estimator, "n_features_in_", len(plan.feature_names))
    if n_in != len(plan.feature_names):
        raise FinriskError(
            f"the estimator takes {n_in} features but the model names {len(plan.feature_names)}"
        )


def _probability(plan: Plan, estimator: Any) -> dict[str, Any]:
    """Head computing predict_proba(X)[:, 1]."""
    if isinstance(estimator, CalibratedClassifierCV):
        return _calibrated(plan, estimator)
    return {"op": "expit", "of": _decision(plan, estimator)}


def _decision(plan: Plan, estimator: Any) -> dict[str, Any]:
    """Head computing decision_function(X) (the raw score a calibrator or expit reads)."""
    if isinstance(estimator, HistGradientBoostingClassifier):
        _check_binary(estimator)
        target = plan.add_trees(hgb_trees(estimator), float32_inputs=False)
        return {"op": "tree", "target": target, "base": hgb_baseline(estimator)}
    if isinstance(estimator, Pipeline | LogisticRegression):
        return _linear(estimator)
    raise FinriskError(f"cannot compile a {type(estimator).__name__}")


def _check_binary(estimator: Any) -> None:
    classes = getattr(estimator, "classes_", None)
    if classes is None or len(classes) != 2:
        raise FinriskError(
            f"only binary classifiers can be compiled, not {type(estimator).__name__}"
        )


def _calibrated(plan: Plan, estimator: CalibratedClassifierCV) -> dict[str, Any]:
    _check_binary(estimator)
    members = []
    for member in estimator.calibrated_classifiers_:
        if len(member.calibrators) != 1:
            raise FinriskError("only binary calibrated classifiers can be compiled")
        # Calibrators read decision_function when the base model has one (all ours do).
        if not hasattr(member.estimator, "decision_function"):
            raise FinriskError(
                f"cannot compile calibration over {type(member.estimator).__name__} "
                "(no decision_function)"
            )
        source = _decision(plan, member.estimator)
        calibrator = member.calibrators[0]
        if member.method == "sigmoid":
            members.append(
                {
                    "op": "sigmoid_calibration",
                    "a": float(calibrator.a_),
                    "b": float(calibrator.b_),
                    "of": source,
                }
            )
        elif member.method == "isotonic" and isinstance(calibrator, IsotonicRegression):
            if calibrator.out_of_bounds != "clip":
                raise FinriskError("isotonic calibration must clip out-of-range scores")
            members.append(
                {
                    "op": "isotonic",
                    "x": [float(v) for v in calibrator.X_thresholds_],
                    "y": [float(v) for v in calibrator.y_thresholds_],
                    "lo": float(calibrator.X_min_),
                    "hi": float(calibrator.X_max_),
                    "of": source,
                }
            )
        else:
            raise FinriskError(f"cannot compile {member.method!r} calibration")
    return {"op": "mean", "of": members}


def _linear(estimator: Any) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    final = estimator
    if isinstance(estimator, Pipeline):
        *transforms, (_, final) = estimator.steps
        for name, step in transforms:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                continue
            steps.append(_linear_step(name, step))
    if not isinstance(final, LogisticRegression):
        raise FinriskError(f"cannot compile a pipeline ending in {type(final).__name__}")
    _check_binary(final)
    coef = np.asarray(final.coef_, dtype=np.float64)
    if coef.shape[0] != 1:
        raise FinriskError("only binary logistic regressions can be compiled")
    return {
        "op": "linear",
        "steps": steps,
        "coef": [float(v) for v in coef[0]],
        "intercept": float(np.asarray(final.intercept_).ravel()[0]),
    }


def _linear_step(name: str, step: Any) -> dict[str, Any]:
    if isinstance(step, LinearInputs):
        return step.layout()
    if isinstance(step, StandardScaler):
        return {
            "op": "standardize",
            "mean": None if step.mean_ is None else [float(v) for v in step.mean_],
            "scale": None if step.scale_ is None else [float(v) for v in step.scale_],
        }
    if isinstance(step, FunctionTransformer):
        func = step.func
        key = (getattr(func, "__module__", ""), getattr(func, "__name__", ""))
        if key in _KNOWN_FUNCTIONS and not step.kw_args:
            return {"op": _KNOWN_FUNCTIONS[key]}
        raise FinriskError(f"cannot compile pipeline step {name!r}: unknown function {key[1]!r}")
    raise FinriskError(f"cannot compile pipeline step {name!r} ({type(step).__name__})")
