"""The MLflow pyfunc face of a finrisk model, so generic MLflow tooling can load and serve it.

`mlflow models serve` runs `predict` with the ORIGINAL finrisk model (scores, not the -1/1
labels a raw Isolation Forest pyfunc would give); finrisk's own predictor serves the compiled
graph from the same artifacts instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models.signature import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types.schema import ColSpec, Schema

from finrisk.compiled import DETECTOR
from finrisk.registry.artifacts import read_files
from finrisk.registry.names import ARTIFACT_KEY


class FinriskPyfunc(PythonModel):
    """predict(DataFrame of features) -> DataFrame: score + is_anomaly, or probability + band."""

    def load_context(self, context: Any) -> None:
        files = read_files(Path(context.artifacts[ARTIFACT_KEY]))
        self.model = files.model
        self.metadata = files.metadata

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if self.metadata["kind"] == DETECTOR:
            score = self.model.anomaly_score(frame)
            return pd.DataFrame(
                {"score": score, "is_anomaly": (score >= self.model.threshold_).astype(np.int64)}
            )
        probability = self.model.risk_probability(frame)
        return pd.DataFrame(
            {"probability": probability, "band": self.model.bands_.bands(probability)}
        )


def signature(kind: str, feature_names: list[str]) -> ModelSignature:
    inputs = Schema([ColSpec("double", name) for name in feature_names])
    if kind == DETECTOR:
        outputs = Schema([ColSpec("double", "score"), ColSpec("long", "is_anomaly")])
    else:
        outputs = Schema([ColSpec("double", "probability"), ColSpec("string", "band")])
    return ModelSignature(inputs=inputs, outputs=outputs)
