"""The numba tree kernel (finrisk.compiled.jit over forest.py's arrays) scores exactly like ONNX
Runtime and like the original models: on gaps (boosting's learnt missing direction), every
category code, split thresholds and their neighbours, any batch shape, and more than one target.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import helper

from finrisk.compiled import (
    CompiledModel,
    check_parity,
    compile_model,
    original_scores,
    probe_rows,
    require_parity,
    runtime,
)
from finrisk.compiled import jit as jit_module
from finrisk.compiled.forest import MISSING_RIGHT_SHIFT, Forest, forest_from_graph
from finrisk.errors import FinriskError
from finrisk.evaluation.inputs import risk_data_from_user_table
from finrisk.models.risk import RiskModel
from tests.support import trained_models
from tests.unit.test_risk_gaps import gappy_users

TREE_MODELS = [
    ("detector", "supervised"),
    ("detector", "isolation"),
    ("detector", "seed"),
    ("risk", "hgb"),
    ("risk", "hgb_isotonic"),
]


def _model(family: str, kind: str) -> Any:
    return (
        trained_models.detector(kind) if family == "detector" else trained_models.risk_model(kind)
    )


@pytest.fixture(scope="module")
def gappy() -> tuple[Any, Any]:
    """A boosted risk model on a table with gaps in numeric columns and a categorical column."""
    table = risk_data_from_user_table(gappy_users())
    model = RiskModel(estimator="hgb", cv=2, max_iter=30).fit(table.table, table.labels)
    return model, table


def test_auto_engine_is_the_kernel_and_onnx_stays_available() -> None:
    compiled = compile_model(trained_models.detector("supervised"))
    assert compiled.engine == "jit"
    assert compiled.with_engine("onnx").engine == "onnx"
    assert runtime.available_engines() == ["jit", "onnx"]
    assert jit_module.compile_seconds is not None


@pytest.mark.parametrize(("family", "kind"), TREE_MODELS)
@pytest.mark.parametrize("rows", [1, 7, 8, 9, 129, 1000])
def test_kernel_equals_onnx_runtime_on_probe_rows(family: str, kind: str, rows: int) -> None:
    # Rows not a multiple of 8 or of a block exercise the kernel's tails.
    compiled = compile_model(_model(family, kind), engine="jit")
    onnx_model = compiled.with_engine("onnx")
    values = compiled._prepared(probe_rows(compiled, rows, seed=rows))
    np.testing.assert_array_equal(compiled.raw(values), onnx_model.raw(values))


@pytest.mark.parametrize(("family", "kind"), TREE_MODELS)
def test_kernel_scores_equal_the_original(family: str, kind: str) -> None:
    model = _model(family, kind)
    compiled = compile_model(model, engine="jit")
    frame = pd.DataFrame(probe_rows(compiled, 1500), columns=list(compiled.feature_names))
    got = compiled.score(frame.to_numpy())
    np.testing.assert_allclose(got, original_scores(model, frame), rtol=0, atol=1e-12)


def test_calibration_folds_are_separate_targets() -> None:
    compiled = compile_model(trained_models.risk_model("hgb_isotonic"), engine="jit")
    assert compiled.n_targets == 2
    values = probe_rows(compiled, 300)
    raw = compiled.raw(values)
    assert raw is not None and raw.shape == (300, 2)
    assert not np.array_equal(raw[:, 0], raw[:, 1])


def test_gaps_follow_the_learnt_missing_direction(gappy: tuple[Any, Any]) -> None:
    model, table = gappy
    compiled = compile_model(model, engine="jit")
    assert compiled.graph is not None
    forest = forest_from_graph(compiled.graph, compiled.n_features, compiled.n_targets)
    interior = forest.meta & 0xFFFFFFFF != np.arange(forest.n_nodes)
    missing_right = (forest.meta[interior] >> MISSING_RIGHT_SHIFT) & 1
    # Both directions occur, so a kernel that sent every gap one way would fail below.
    assert 0 < missing_right.sum() < interior.sum()
    names = list(compiled.feature_names)
    encoded = pd.DataFrame(model.encode(table.table), columns=names)
    rows = []
    for j in range(len(names)):  # each feature missing alone, then all of them
        gap = encoded.iloc[:50].to_numpy(copy=True)
        gap[:, j] = np.nan
        rows.append(gap)
    rows.append(np.full((3, len(names)), np.nan))
    frame = pd.DataFrame(np.vstack(rows), columns=names)
    expected = original_scores(model, frame)
    np.testing.assert_allclose(compiled.score(frame.to_numpy()), expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(
        compiled.raw(frame.to_numpy()), compiled.with_engine("onnx").raw(frame.to_numpy())
    )


def test_every_category_code_scores_like_the_original(gappy: tuple[Any, Any]) -> None:
    model, _ = gappy
    compiled = compile_model(model, engine="jit")
    grade = compiled.feature_names.index("grade")
    base = probe_rows(compiled, 40, seed=3)
    levels = len(compiled.categories["grade"])
    rows = []
    for code in [*range(levels), np.nan]:
        block = base.copy()
        block[:, grade] = code
        rows.append(block)
    frame = pd.DataFrame(np.vstack(rows), columns=list(compiled.feature_names))
    expected = original_scores(model, frame)
    np.testing.assert_allclose(compiled.score(frame.to_numpy()), expected, rtol=0, atol=1e-12)


def test_parity_report_covers_both_engines(gappy: tuple[Any, Any]) -> None:
    model, table = gappy
    report = require_parity(model, compile_model(model), table.table, probe=500)
    assert report.engines == ("jit", "onnx")
    assert report.to_dict()["engines"] == ["jit", "onnx"]


def test_parity_check_catches_a_wrong_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    model = trained_models.detector("supervised")
    compiled = compile_model(model, engine="onnx")
    assert check_parity(model, compiled, probe=300).ok

    def shifted(graph: bytes, n_features: int, n_targets: int) -> Forest:
        forest = forest_from_graph(graph, n_features, n_targets)
        return Forest(
            forest.threshold,
            forest.meta,
            forest.value + 0.01,  # every leaf: the kernel alone is wrong
            forest.roots,
            forest.targets,
            n_features,
            n_targets,
        )

    monkeypatch.setattr(runtime, "forest_from_graph", shifted)
    report = check_parity(model, compiled, probe=300)
    assert not report.ok and report.max_abs_diff > 1e-6


def test_threads_split_large_batches_without_changing_scores() -> None:
    compiled = compile_model(trained_models.detector("supervised"), engine="jit")
    assert compiled.graph is not None
    forest = forest_from_graph(compiled.graph, compiled.n_features, compiled.n_targets)
    values = compiled._prepared(probe_rows(compiled, 3 * jit_module.PARALLEL_MIN_ROWS, seed=1))
    single = jit_module.evaluator(forest, threads=1)(values)
    np.testing.assert_array_equal(jit_module.evaluator(forest, threads=3)(values), single)


def test_without_numba_auto_falls_back_to_onnx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jit_module, "numba", None)
    assert runtime.available_engines() == ["onnx"]
    compiled = compile_model(trained_models.detector("supervised"))
    assert compiled.engine == "onnx"
    with pytest.raises(FinriskError, match="not installed"):
        compiled.with_engine("jit")


def test_unknown_engine_is_named() -> None:
    with pytest.raises(FinriskError, match="unknown tree engine 'gpu'"):
        compile_model(trained_models.detector("supervised"), engine="gpu")


def test_saved_model_loads_on_the_kernel(tmp_path: Any) -> None:
    model = trained_models.risk_model("hgb")
    compile_model(model).save(tmp_path)
    loaded = CompiledModel.load(tmp_path)
    assert loaded.engine == "jit"
    assert require_parity(model, loaded, probe=300).ok


# A hostile or corrupt graph must be refused at load: the kernel does no bounds checks.


def _tree_node(compiled: CompiledModel) -> tuple[onnx.ModelProto, onnx.NodeProto]:
    assert compiled.graph is not None
    graph = onnx.load_from_string(compiled.graph)
    (node,) = [n for n in graph.graph.node if n.op_type == "TreeEnsemble"]
    return graph, node


def _with_ints(compiled: CompiledModel, name: str, change: Any) -> bytes:
    graph, node = _tree_node(compiled)
    for i, attribute in enumerate(node.attribute):
        if attribute.name == name:
            values = change(list(attribute.ints))
            node.attribute[i].CopyFrom(helper.make_attribute(name, values))
    return graph.SerializeToString()


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("nodes_featureids", lambda v: [99, *v[1:]], "feature outside the input"),
        ("nodes_truenodeids", lambda v: [10**6, *v[1:]], "child id outside"),
        ("nodes_falsenodeids", lambda v: [0, *v[1:]], "share"),
        ("tree_roots", lambda v: [v[0], v[0], *v[2:]], "share"),
        ("leaf_targetids", lambda v: [5, *v[1:]], "outside the model's targets"),
        ("nodes_trueleafs", lambda v: v[:-1], "differ in length"),
    ],
)
def test_malformed_graphs_are_refused(name: str, change: Any, message: str) -> None:
    compiled = compile_model(trained_models.detector("supervised"), engine="jit")
    graph = _with_ints(compiled, name, change)
    with pytest.raises(FinriskError, match=message):
        forest_from_graph(graph, compiled.n_features, compiled.n_targets)
    with pytest.raises(FinriskError, match=message):
        CompiledModel(compiled.spec, graph, engine="jit")
