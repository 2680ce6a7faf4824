"""The two models finrisk trains, serves and registers: their kinds and default names.

Kept free of heavy imports so that settings, the gate and the CLI can use it cheaply.
"""

from __future__ import annotations

DETECTOR = "detector"
RISK = "risk"
MODEL_KINDS: tuple[str, ...] = (DETECTOR, RISK)

# The registry aliases of a model's versions: the one serving, and the one that may replace
# it. They are also the roles the bridge scores and monitors versions in (the challenger in
# the shadow), and the roles of the realized metrics.
CHAMPION = "champion"
CHALLENGER = "challenger"

# Registered model names in MLflow, and the model names the predictor serves them under.
DEFAULT_MODEL_NAMES: dict[str, str] = {
    DETECTOR: "finrisk-anomaly-detector",
    RISK: "finrisk-risk-classifier",
}

# The environment variables that pin the exact registry versions a predictor serves: the
# pipeline's deploy step sets them on the InferenceService, `finrisk serve` reads them.
MODEL_URI_ENV: dict[str, str] = {
    DETECTOR: "FINRISK_DETECTOR_MODEL_URI",
    RISK: "FINRISK_RISK_MODEL_URI",
}
