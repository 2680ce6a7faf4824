"""One ONNX graph for a whole tree ensemble: a single ai.onnx.ml TreeEnsemble node, in float64.

skl2onnx emits float32 tree operators (or one node per tree for an Isolation Forest, which is
slow on large batches); building the node from the fitted arrays keeps sklearn's float64
thresholds and sums, so compiled and original scores agree to ~1e-12.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from finrisk.compiled.trees import FlatTree

INPUT = "X"
OUTPUT = "raw"
ML_DOMAIN = "ai.onnx.ml"
ML_OPSET = 5  # TreeEnsemble (float64 in and out) exists from ai.onnx.ml 5
ONNX_OPSET = 21
BRANCH_LEQ = 0
AGGREGATE_SUM = 1
POST_TRANSFORM_NONE = 0


def tree_ensemble_graph(
    trees: Sequence[FlatTree],
    n_features: int,
    n_targets: int,
    *,
    float32_inputs: bool = False,
) -> tuple[bytes, npt.NDArray[np.float64]]:
    """ONNX model X (n, n_features) float64 -> raw (n, n_targets) float64 = sum of leaf values.

    Returns the serialised model and a per-target constant: trees that are a single leaf have no
    split to encode, so their value is returned here to be added outside the graph.
    `float32_inputs` rounds X to float32 first, as sklearn's DecisionTree predict does.
    """
    offsets = np.zeros(n_targets, dtype=np.float64)
    feature_ids: list[int] = []
    splits: list[float] = []
    true_ids: list[int] = []
    true_leafs: list[int] = []
    false_ids: list[int] = []
    false_leafs: list[int] = []
    missing_true: list[int] = []
    leaf_targets: list[int] = []
    leaf_weights: list[float] = []
    roots: list[int] = []

    for tree in trees:
        if not 0 <= tree.target < n_targets:
            raise ValueError(f"tree target {tree.target} outside 0..{n_targets - 1}")
        if tree.is_leaf[0]:
            offsets[tree.target] += float(tree.value[0])
            continue
        # Renumber: interior nodes and leaves each get ids in the graph's own arrays.
        interior = np.flatnonzero(~tree.is_leaf)
        leaves = np.flatnonzero(tree.is_leaf)
        node_id = {int(n): len(feature_ids) + i for i, n in enumerate(interior)}
        leaf_id = {int(n): len(leaf_weights) + i for i, n in enumerate(leaves)}
        roots.append(node_id[0])
        for n in interior:
            left, right = int(tree.left[n]), int(tree.right[n])
            feature_ids.append(int(tree.feature[n]))
            splits.append(float(tree.threshold[n]))
            true_leafs.append(int(tree.is_leaf[left]))
            true_ids.append(leaf_id[left] if tree.is_leaf[left] else node_id[left])
            false_leafs.append(int(tree.is_leaf[right]))
            false_ids.append(leaf_id[right] if tree.is_leaf[right] else node_id[right])
            missing_true.append(int(tree.missing_left[n]))
        for n in leaves:
            leaf_targets.append(tree.target)
            leaf_weights.append(float(tree.value[n]))

    if n_features < 1 or (splits and max(feature_ids) >= n_features):
        raise ValueError("a tree splits on a feature outside the input")
    nodes: list[onnx.NodeProto] = []
    source = INPUT
    if float32_inputs:
        nodes.append(helper.make_node("Cast", [INPUT], ["X32"], to=TensorProto.FLOAT))
        nodes.append(helper.make_node("Cast", ["X32"], ["X64"], to=TensorProto.DOUBLE))
        source = "X64"
    if roots:
        nodes.append(
            helper.make_node(
                "TreeEnsemble",
                [source],
                [OUTPUT],
                domain=ML_DOMAIN,
                aggregate_function=AGGREGATE_SUM,
                post_transform=POST_TRANSFORM_NONE,
                n_targets=n_targets,
                tree_roots=roots,
                nodes_featureids=feature_ids,
                nodes_splits=numpy_helper.from_array(np.asarray(splits, dtype=np.float64)),
                nodes_modes=numpy_helper.from_array(
                    np.full(len(splits), BRANCH_LEQ, dtype=np.uint8)
                ),
                nodes_truenodeids=true_ids,
                nodes_trueleafs=true_leafs,
                nodes_falsenodeids=false_ids,
                nodes_falseleafs=false_leafs,
                nodes_missing_value_tracks_true=missing_true,
                leaf_targetids=leaf_targets,
                leaf_weights=numpy_helper.from_array(np.asarray(leaf_weights, dtype=np.float64)),
            )
        )
    else:
        # Every tree is a stump without a split: the raw output is the offsets alone.
        zeros = numpy_helper.from_array(np.zeros((1, n_targets), dtype=np.float64), "zeros")
        nodes.append(helper.make_node("Constant", [], ["zeros"], value=zeros))
        nodes.append(helper.make_node("Shape", [source], ["shape"], start=0, end=1))
        width = numpy_helper.from_array(np.asarray([n_targets], dtype=np.int64), "width")
        nodes.append(helper.make_node("Constant", [], ["width"], value=width))
        nodes.append(helper.make_node("Concat", ["shape", "width"], ["out_shape"], axis=0))
        nodes.append(helper.make_node("Expand", ["zeros", "out_shape"], [OUTPUT]))
    graph = helper.make_graph(
        nodes,
        "finrisk_tree_ensemble",
        [helper.make_tensor_value_info(INPUT, TensorProto.DOUBLE, [None, n_features])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.DOUBLE, [None, n_targets])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", ONNX_OPSET),
            helper.make_opsetid(ML_DOMAIN, ML_OPSET),
        ],
        producer_name="finrisk",
    )
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model.SerializeToString(), offsets
