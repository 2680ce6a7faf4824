"""The hand-built TreeEnsemble graph: leaves, stumps, targets and the float32 input rounding."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from finrisk.compiled.onnx_graph import INPUT, tree_ensemble_graph
from finrisk.compiled.trees import FlatTree


def _tree(feature: int, threshold: float, left: float, right: float, target: int = 0) -> FlatTree:
    return FlatTree(
        feature=np.array([feature, 0, 0]),
        threshold=np.array([threshold, 0.0, 0.0]),
        left=np.array([1, -1, -1]),
        right=np.array([2, -1, -1]),
        is_leaf=np.array([False, True, True]),
        value=np.array([0.0, left, right]),
        missing_left=np.array([True, False, False]),
        target=target,
    )


def _stump(value: float, target: int = 0) -> FlatTree:
    return FlatTree(
        feature=np.array([0]),
        threshold=np.array([0.0]),
        left=np.array([-1]),
        right=np.array([-1]),
        is_leaf=np.array([True]),
        value=np.array([value]),
        missing_left=np.array([False]),
        target=target,
    )


def _run(graph: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {INPUT: x})[0])


def test_sum_of_leaves_per_target_with_inclusive_thresholds() -> None:
    trees = [
        _tree(0, 0.5, 1.0, 2.0, target=0),
        _tree(1, -1.0, 10.0, 20.0, target=1),
        _tree(1, 3.0, 0.25, 0.5, target=0),
    ]
    graph, offsets = tree_ensemble_graph(trees, n_features=2, n_targets=2)
    x = np.array([[0.5, -1.0], [0.6, 3.0], [np.nextafter(0.5, 1), 3.5]])
    out = _run(graph, x)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[1.25, 10.0], [2.25, 20.0], [2.5, 20.0]])
    np.testing.assert_array_equal(offsets, [0.0, 0.0])


def test_missing_values_follow_the_tree() -> None:
    graph, _ = tree_ensemble_graph([_tree(0, 0.5, 1.0, 2.0)], n_features=1, n_targets=1)
    np.testing.assert_array_equal(_run(graph, np.array([[np.nan]])), [[1.0]])


def test_stumps_become_offsets() -> None:
    graph, offsets = tree_ensemble_graph(
        [_stump(0.75), _tree(0, 0.0, 1.0, 2.0)], n_features=1, n_targets=1
    )
    np.testing.assert_array_equal(offsets, [0.75])
    np.testing.assert_array_equal(_run(graph, np.array([[-1.0], [1.0]])), [[1.0], [2.0]])


def test_a_forest_of_stumps_still_has_a_graph() -> None:
    graph, offsets = tree_ensemble_graph(
        [_stump(1.0), _stump(2.0, target=1)], n_features=3, n_targets=2
    )
    np.testing.assert_array_equal(offsets, [1.0, 2.0])
    np.testing.assert_array_equal(_run(graph, np.zeros((4, 3))), np.zeros((4, 2)))


def test_float32_inputs_round_like_sklearn_trees() -> None:
    threshold = 0.1  # not a float32 number: float32(0.1) > 0.1
    graph, _ = tree_ensemble_graph(
        [_tree(0, threshold, 1.0, 2.0)], n_features=1, n_targets=1, float32_inputs=True
    )
    just_above = np.nextafter(threshold, 1.0)  # > threshold in float64, but rounds to float32(0.1)
    x = np.array([[threshold], [just_above], [float(np.float32(threshold))]])
    # sklearn compares float32(x) with the float64 threshold: all three round to float32(0.1) > 0.1.
    expected = np.where(x.astype(np.float32).astype(np.float64) <= threshold, 1.0, 2.0)
    np.testing.assert_array_equal(_run(graph, x), expected)
    exact, _ = tree_ensemble_graph([_tree(0, threshold, 1.0, 2.0)], n_features=1, n_targets=1)
    np.testing.assert_array_equal(_run(exact, x), [[1.0], [2.0], [2.0]])
