"""Fitted sklearn trees as plain arrays: the one tree shape the ONNX builder reads.

Every tree is binary; an interior node sends a row left ("true") when x[feature] <= threshold,
and rows with a missing value where `missing_left` says. Leaves carry the value summed into
their target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest

from finrisk.errors import FinriskError


@dataclass(frozen=True)
class FlatTree:
    """One tree; arrays indexed by node id, node 0 is the root."""

    feature: npt.NDArray[np.int64]
    threshold: npt.NDArray[np.float64]
    left: npt.NDArray[np.int64]
    right: npt.NDArray[np.int64]
    is_leaf: npt.NDArray[np.bool_]
    value: npt.NDArray[np.float64]
    missing_left: npt.NDArray[np.bool_]
    target: int = 0


def hgb_trees(model: HistGradientBoostingClassifier, target: int = 0) -> list[FlatTree]:
    """The trees of a binary HistGradientBoostingClassifier (raw score = baseline + sum)."""
    if model.n_trees_per_iteration_ != 1:
        raise FinriskError("only binary HistGradientBoostingClassifier models can be compiled")
    if getattr(model, "_preprocessor", None) is not None or (
        getattr(model, "is_categorical_", None) is not None and np.any(model.is_categorical_)
    ):
        raise FinriskError(
            "HistGradientBoosting models with categorical features cannot be compiled"
        )
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        trees.append(
            FlatTree(
                feature=nodes["feature_idx"].astype(np.int64),
                threshold=nodes["num_threshold"].astype(np.float64),
                left=nodes["left"].astype(np.int64),
                right=nodes["right"].astype(np.int64),
                is_leaf=nodes["is_leaf"].astype(bool),
                value=nodes["value"].astype(np.float64),
                missing_left=nodes["missing_go_to_left"].astype(bool),
                target=target,
            )
        )
    return trees


def hgb_baseline(model: HistGradientBoostingClassifier) -> float:
    return float(np.asarray(model._baseline_prediction).ravel()[0])


def isolation_trees(model: IsolationForest) -> list[FlatTree]:
    """The trees of an Isolation Forest; a leaf's value is that tree's path length for it.

    sklearn adds, per tree, depth(leaf) + c(n_samples(leaf)) - 1 (see `_compute_score_samples`);
    each leaf carries exactly that, so the ensemble's sum is sklearn's `depths`.
    """
    if not getattr(model, "estimators_", None):
        raise FinriskError("the Isolation Forest is not fitted")
    # sklearn subsets the columns per tree only when max_features leaves some out.
    subsample = model._max_features != model.n_features_in_
    trees = []
    for tree_idx, (estimator, features) in enumerate(
        zip(model.estimators_, model.estimators_features_, strict=True)
    ):
        t = estimator.tree_
        is_leaf = t.children_left == -1
        path = (
            np.asarray(model._decision_path_lengths[tree_idx], dtype=np.float64)
            + np.asarray(model._average_path_length_per_tree[tree_idx], dtype=np.float64)
            - 1.0
        )
        local = np.where(is_leaf, 0, t.feature).astype(np.int64)
        feature = np.asarray(features, dtype=np.int64)[local] if subsample else local
        trees.append(
            FlatTree(
                # sklearn compares float32 inputs with these float64 thresholds; the graph
                # rounds its inputs to float32 first, so both compare the same numbers.
                feature=feature,
                threshold=t.threshold.astype(np.float64),
                left=t.children_left.astype(np.int64),
                right=t.children_right.astype(np.int64),
                is_leaf=is_leaf,
                value=np.where(is_leaf, path, 0.0),
                missing_left=np.asarray(t.missing_go_to_left, dtype=bool),
            )
        )
    return trees


def isolation_denominator(model: IsolationForest) -> float:
    """len(trees) * c(max_samples): the score is 2 ** (-sum of path lengths / denominator)."""
    n = float(model._max_samples)
    if n <= 1:
        c = 0.0
    elif n == 2:
        c = 1.0
    else:
        c = 2.0 * (np.log(n - 1.0) + np.euler_gamma) - 2.0 * (n - 1.0) / n
    return float(len(model.estimators_) * c)
