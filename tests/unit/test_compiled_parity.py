"""Compiled models must score exactly like the finrisk models they come from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finrisk.compiled import (
    DETECTOR,
    RISK,
    CompiledModel,
    check_parity,
    compile_model,
    original_scores,
    probe_rows,
    require_parity,
)
from finrisk.errors import FinriskError
from tests.support import trained_models

MODELS = [
    ("detector", "supervised"),
    ("detector", "isolation"),
    ("detector", "seed"),
    ("risk", "hgb"),
    ("risk", "hgb_isotonic"),
    ("risk", "logistic"),
    ("risk", "seed"),
]


def _model(family: str, kind: str):  # type: ignore[no-untyped-def]
    return (
        trained_models.detector(kind) if family == "detector" else trained_models.risk_model(kind)
    )


def _frame(family: str) -> pd.DataFrame:
    frame, _ = (
        trained_models.detector_frame(seed=5)
        if family == "detector"
        else trained_models.risk_frame(seed=6)
    )
    return frame


@pytest.mark.parametrize(("family", "kind"), MODELS)
def test_compiled_scores_match_the_original(family: str, kind: str) -> None:
    model = _model(family, kind)
    compiled = compile_model(model)
    assert compiled.kind == (DETECTOR if family == "detector" else RISK)
    frame = _frame(family).loc[:, list(model.feature_names_)]
    expected = original_scores(model, frame)
    got = compiled.score(frame.to_numpy())
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    report = check_parity(model, compiled, frame, probe=500)
    assert report.ok, report.to_dict()
    assert report.rows == len(frame) + 500


@pytest.mark.parametrize(("family", "kind"), MODELS)
def test_scores_agree_on_split_thresholds_and_their_neighbours(family: str, kind: str) -> None:
    model = _model(family, kind)
    compiled = compile_model(model)
    probes = probe_rows(compiled, 3000, seed=3)
    expected = original_scores(model, pd.DataFrame(probes, columns=list(compiled.feature_names)))
    np.testing.assert_allclose(compiled.score(probes), expected, rtol=0, atol=1e-12)


def test_probe_rows_hit_the_thresholds_exactly() -> None:
    compiled = compile_model(trained_models.detector("supervised"))
    probes = probe_rows(compiled, 2000, seed=0)
    from finrisk.compiled.parity import _splits

    splits = _splits(compiled)
    assert splits
    hits = sum(bool(np.any(probes[:, f] == t)) for f, t in splits[:50])
    assert hits >= 40  # most thresholds appear verbatim in some probe row


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = trained_models.risk_model("hgb")
    compiled = compile_model(model)
    files = compiled.save(tmp_path / "c")
    assert {p.name for p in files} == {"compiled.json", "model.onnx"}
    again = CompiledModel.load(tmp_path / "c", threads=2)
    rows = _frame("risk").loc[:, list(model.feature_names_)].to_numpy()
    np.testing.assert_array_equal(again.score(rows), compiled.score(rows))


def test_linear_model_has_no_graph(tmp_path: Path) -> None:
    compiled = compile_model(trained_models.risk_model("seed"))
    assert compiled.graph is None
    assert [p.name for p in compiled.save(tmp_path)] == ["compiled.json"]
    assert CompiledModel.load(tmp_path).graph is None


def test_parity_check_catches_a_wrong_compiled_model() -> None:
    model = trained_models.detector("supervised")
    compiled = compile_model(model)
    spec = dict(compiled.spec)
    # Shift the boosting baseline: every probability moves a little.
    spec["head"] = {
        **spec["head"],
        "of": {
            **spec["head"]["of"],
            "of": {**spec["head"]["of"]["of"], "base": spec["head"]["of"]["of"]["base"] + 0.01},
        },
    }
    broken = CompiledModel(spec, compiled.graph)
    report = check_parity(model, broken, probe=200)
    assert not report.ok
    assert report.max_abs_diff > 1e-6
    with pytest.raises(FinriskError, match="disagrees"):
        require_parity(model, broken, probe=200)


def test_parity_check_counts_flipped_flags() -> None:
    model = trained_models.detector("isolation")
    compiled = compile_model(model)
    scores = compiled.score(_frame("detector").loc[:, list(model.feature_names_)].to_numpy())
    spec = {
        **compiled.spec,
        "head": {"op": "clip", "lo": 1.0, "hi": 1.0, "of": compiled.spec["head"]},
    }
    report = check_parity(model, CompiledModel(spec, compiled.graph), _frame("detector"), probe=0)
    assert report.flag_mismatches == int((scores < model.threshold_).sum()) > 0


def test_compiled_model_rejects_the_wrong_width() -> None:
    compiled = compile_model(trained_models.detector("supervised"))
    with pytest.raises(FinriskError, match="inputs"):
        compiled.score(np.zeros((2, compiled.n_features + 1)))


def test_untrained_or_foreign_models_are_refused() -> None:
    from sklearn.linear_model import LinearRegression

    with pytest.raises(FinriskError, match="not a trained finrisk"):
        compile_model(LinearRegression())
    with pytest.raises(FinriskError):
        compile_model(trained_models.TransactionAnomalyDetector())


def test_unknown_pipeline_function_is_refused() -> None:
    import copy

    from sklearn.preprocessing import FunctionTransformer

    model = copy.deepcopy(trained_models.risk_model("logistic"))
    member = model.estimator_.calibrated_classifiers_[0].estimator
    member.steps[0] = ("fn", FunctionTransformer(np.sqrt))
    with pytest.raises(FinriskError, match="sqrt"):
        compile_model(model)


def test_compiled_format_is_checked() -> None:
    compiled = compile_model(trained_models.risk_model("seed"))
    with pytest.raises(FinriskError, match="format"):
        CompiledModel({**compiled.spec, "format": 99}, None)


@pytest.mark.parametrize(("family", "kind"), MODELS)
def test_one_pass_occlusion_equals_rescoring_every_occluded_row(family: str, kind: str) -> None:
    from finrisk.compiled.heads import tree_targets
    from finrisk.models.reasons import occlusion_contributions

    compiled = compile_model(_model(family, kind))
    rows = _frame(family).loc[:, list(compiled.feature_names)].to_numpy()[:200]
    reference = np.median(rows, axis=0)
    occluder = compiled.occluder(reference)
    if tree_targets(compiled.spec["head"]):
        assert occluder is None  # trees: every occluded row must be scored
        return
    assert occluder is not None
    rows[0] = reference  # a row at the reference: every feature contributes exactly nothing
    rows[1, :3] = reference[:3]
    occluded = occluder(rows)
    assert occluded.shape == (len(rows), compiled.n_features + 1)
    np.testing.assert_allclose(occluded[:, -1], compiled.score(rows), rtol=0, atol=1e-12)
    expected = occlusion_contributions(compiled.score, rows, reference)
    got = occluded[:, -1:] - occluded[:, :-1]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert np.count_nonzero(got[0]) == 0
    assert np.count_nonzero(got[1, :3]) == 0
    assert np.count_nonzero(got[1, 3:]) > 0
