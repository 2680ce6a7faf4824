"""Detectors compile to ONNX with the same scores (the serving path relies on it)."""

from __future__ import annotations

import numpy as np
import onnxruntime as rt
import pandas as pd
import pytest
from skl2onnx import to_onnx

from finrisk.models import SeedIsolationForestDetector, TransactionAnomalyDetector
from finrisk.models.anomaly import PROBABILITY, detector_input

# onnx's own deprecation notices about skl2onnx's output; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _frame(n: int = 3000) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(5)
    # 'b' varies below float32 resolution (~0.008 at 1e5) and carries the label: trees split
    # on differences that a float32 runtime cannot see unless inputs are rounded first.
    b = 1e5 + rng.random(n) * 0.05
    y = ((b - 1e5) * 20 + rng.normal(0, 0.1, n) > 0.9).astype(int)
    x = pd.DataFrame({"a": rng.lognormal(3, 1, n) + 50 * y, "b": b, "c": rng.random(n) / 3})
    return x, y


def _onnx_scores(
    model: TransactionAnomalyDetector | SeedIsolationForestDetector, x: pd.DataFrame
) -> np.ndarray:
    values = detector_input(x, model.feature_names_).astype(np.float32)
    options = (
        {id(model.estimator_): {"zipmap": False}} if model.score_kind_ == PROBABILITY else None
    )
    onx = to_onnx(
        model.estimator_, values[:1], target_opset={"": 17, "ai.onnx.ml": 3}, options=options
    )
    session = rt.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: values})
    if model.score_kind_ == PROBABILITY:
        return np.asarray(outputs[1][:, 1], dtype=np.float64)
    # ONNX reports decision_function = score_samples - offset_; the score is -score_samples.
    return -(np.asarray(outputs[1][:, 0], dtype=np.float64) + model.estimator_.offset_)


@pytest.mark.parametrize(
    "make",
    [
        lambda: TransactionAnomalyDetector(max_iter=40),
        lambda: TransactionAnomalyDetector(mode="unsupervised", n_estimators=30),
        lambda: SeedIsolationForestDetector(feature_names=("a", "b", "c"), n_estimators=30),
    ],
)
def test_compiled_scores_match(make: object) -> None:
    x, y = _frame()
    model = make().fit(x, y)  # type: ignore[operator]
    np.testing.assert_allclose(_onnx_scores(model, x), model.anomaly_score(x), atol=1e-5)
