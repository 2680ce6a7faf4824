"""Registered model names, aliases, kinds and tag keys: one definition for every stage."""

from __future__ import annotations

from finrisk.compiled import DETECTOR, MODEL_KINDS, RISK
from finrisk.errors import FinriskError

CHAMPION = "champion"
CHALLENGER = "challenger"

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

# Other spellings users type for a kind.
_KIND_ALIASES = {"anomaly": DETECTOR, "detector": DETECTOR, "fraud": DETECTOR, "risk": RISK}

# Tags on the training run and on each registered version.
TAG_KIND = "model_kind"
TAG_DATA_FINGERPRINT = "data_fingerprint"
TAG_CODE_VERSION = "code_version"
TAG_PIPELINE_RUN_ID = "pipeline_run_id"
METRIC_TAG_PREFIX = "metric."
# Artifact folder (inside the MLflow model) holding the finrisk files.
ARTIFACT_KEY = "finrisk"


def canonical_kind(kind: str) -> str:
    """ "detector" or "risk" for any accepted spelling; a FinriskError naming the choices else."""
    resolved = _KIND_ALIASES.get(kind.strip().lower())
    if resolved is None:
        raise FinriskError(f"unknown model kind {kind!r}: choose {' or '.join(MODEL_KINDS)}")
    return resolved
