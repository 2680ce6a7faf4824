"""The ONNX TreeEnsemble node's trees re-laid as flat arrays for the JIT evaluator (jit.py).

Built at load time from the graph's DATA (features, thresholds, children, leaf weights), never
from code in the artifact. The layout is chosen for speed and safety:
- each tree's nodes in breadth-first order, the two children of a node side by side, so the
  next node is `left + go_right` (no second child array to read);
- one int64 per node packs left child, feature and the missing-value direction, so a step
  reads one word and one threshold from the same place;
- a leaf is its own left child with threshold +inf and "missing goes left": a row that
  reaches it stays there, so several rows can step together until all are at leaves;
- every child comes after its parent: traversal always ends, and every feature index is
  checked against the input width, because the evaluator does no bounds checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
from onnx import numpy_helper

from finrisk.errors import FinriskError

LEFT_BITS = 32
FEATURE_SHIFT = 32
FEATURE_MASK = 0xFFFF
MISSING_RIGHT_SHIFT = 48


@dataclass(frozen=True)
class Forest:
    """Flat trees: raw[:, targets[k]] += value[leaf reached in tree k from roots[k]]."""

    threshold: npt.NDArray[np.float64]
    meta: npt.NDArray[np.int64]  # left | feature << 32 | missing goes right << 48
    value: npt.NDArray[np.float64]
    roots: npt.NDArray[np.int64]
    targets: npt.NDArray[np.int64]
    n_features: int
    n_targets: int

    @property
    def n_nodes(self) -> int:
        return len(self.threshold)

    def splits(self) -> list[tuple[int, float]]:
        """(feature, threshold) of every interior node."""
        interior = self.meta & ((1 << LEFT_BITS) - 1) != np.arange(self.n_nodes)
        features = (self.meta[interior] >> FEATURE_SHIFT) & FEATURE_MASK
        return list(zip(features.tolist(), self.threshold[interior].tolist(), strict=True))


def _ints(attrs: dict[str, onnx.AttributeProto], name: str) -> npt.NDArray[np.int64]:
    return np.asarray(attrs[name].ints, dtype=np.int64)


def _floats(attrs: dict[str, onnx.AttributeProto], name: str) -> npt.NDArray[np.float64]:
    return np.asarray(numpy_helper.to_array(attrs[name].t), dtype=np.float64)


def forest_from_graph(graph: bytes, n_features: int, n_targets: int) -> Forest:
    """The forest of a finrisk tree-ensemble graph (onnx_graph.py); FinriskError if malformed."""
    model = onnx.load_from_string(graph)
    nodes = [n for n in model.graph.node if n.op_type == "TreeEnsemble"]
    if not nodes:  # a graph of stumps only: every tree was folded into the head's offsets
        empty_f, empty_i = np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
        return Forest(empty_f, empty_i, empty_f, empty_i, empty_i, n_features, n_targets)
    if len(nodes) != 1:
        raise FinriskError("compiled graph holds more than one TreeEnsemble node")
    attrs = {a.name: a for a in nodes[0].attribute}
    try:
        feature = _ints(attrs, "nodes_featureids")
        split = _floats(attrs, "nodes_splits")
        true_id, true_leaf = _ints(attrs, "nodes_truenodeids"), _ints(attrs, "nodes_trueleafs")
        false_id, false_leaf = _ints(attrs, "nodes_falsenodeids"), _ints(attrs, "nodes_falseleafs")
        missing_left = _ints(attrs, "nodes_missing_value_tracks_true")
        leaf_target, leaf_weight = _ints(attrs, "leaf_targetids"), _floats(attrs, "leaf_weights")
        roots = _ints(attrs, "tree_roots")
    except KeyError as exc:
        raise FinriskError(f"compiled graph's TreeEnsemble lacks {exc.args[0]}") from None
    n_interior, n_leaves = len(feature), len(leaf_weight)
    lengths = {len(a) for a in (split, true_id, true_leaf, false_id, false_leaf, missing_left)}
    if lengths != {n_interior} or len(leaf_target) != n_leaves:
        raise FinriskError("compiled graph's TreeEnsemble arrays differ in length")
    if n_interior and (feature.min() < 0 or feature.max() >= min(n_features, FEATURE_MASK + 1)):
        raise FinriskError("compiled graph splits on a feature outside the input")
    if n_leaves and (leaf_target.min() < 0 or leaf_target.max() >= n_targets):
        raise FinriskError("compiled graph has a leaf outside the model's targets")

    def child(node_id: int, is_leaf: int) -> tuple[bool, int]:
        limit = n_leaves if is_leaf else n_interior
        if not 0 <= node_id < limit:
            raise FinriskError("compiled graph has a child id outside its nodes")
        return bool(is_leaf), node_id

    thresholds: list[float] = []
    metas: list[int] = []
    values: list[float] = []
    tree_roots: list[int] = []
    tree_targets: list[int] = []
    seen = np.zeros(n_interior, dtype=bool)
    seen_leaf = np.zeros(n_leaves, dtype=bool)
    for root in roots.tolist():
        if not 0 <= root < n_interior:
            raise FinriskError("compiled graph has a tree root outside its nodes")
        base = len(thresholds)
        order: list[tuple[bool, int]] = [(False, root)]
        # Breadth first: a node's children get the next two free slots, after the node itself.
        position = 0
        while position < len(order):
            is_leaf, node = order[position]
            position += 1
            if is_leaf:
                if seen_leaf[node]:
                    raise FinriskError("compiled graph's trees share a leaf")
                seen_leaf[node] = True
                continue
            if seen[node]:
                raise FinriskError("compiled graph's trees share or revisit a node")
            seen[node] = True
            order.append(child(int(true_id[node]), int(true_leaf[node])))
            order.append(child(int(false_id[node]), int(false_leaf[node])))
        targets = {int(leaf_target[node]) for is_leaf, node in order if is_leaf}
        if len(targets) != 1:
            raise FinriskError("a compiled tree's leaves feed more than one target")
        slot = {item: base + i for i, item in enumerate(order)}
        for is_leaf, node in order:
            index = slot[(is_leaf, node)]
            if is_leaf:
                thresholds.append(np.inf)
                metas.append(index)
                values.append(float(leaf_weight[node]))
                continue
            left = slot[child(int(true_id[node]), int(true_leaf[node]))]
            missing_right = 0 if missing_left[node] else 1
            thresholds.append(float(split[node]))
            metas.append(
                left | int(feature[node]) << FEATURE_SHIFT | missing_right << MISSING_RIGHT_SHIFT
            )
            values.append(0.0)
        tree_roots.append(base)
        tree_targets.append(targets.pop())
    if len(thresholds) >= 1 << (LEFT_BITS - 1):
        raise FinriskError("compiled graph has too many nodes")
    return Forest(
        threshold=np.asarray(thresholds, dtype=np.float64),
        meta=np.asarray(metas, dtype=np.int64),
        value=np.asarray(values, dtype=np.float64),
        roots=np.asarray(tree_roots, dtype=np.int64),
        targets=np.asarray(tree_targets, dtype=np.int64),
        n_features=n_features,
        n_targets=n_targets,
    )
