"""Registered model names, aliases, kinds and tag keys: one definition for every stage."""

from __future__ import annotations

from finrisk.errors import FinriskError
from finrisk.kinds import (
    CHALLENGER,
    CHAMPION,
    DEFAULT_MODEL_NAMES,
    DETECTOR,
    MODEL_KINDS,
    MODEL_URI_ENV,
    RISK,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DEFAULT_MODEL_NAMES",
    "DETECTOR",
    "MODEL_KINDS",
    "MODEL_URI_ENV",
    "RISK",
]

# Other spellings users type for a kind.
_KIND_ALIASES = {"anomaly": DETECTOR, "detector": DETECTOR, "fraud": DETECTOR, "risk": RISK}

# Tags on the training run and on each registered version.
TAG_KIND = "model_kind"
TAG_DATA_FINGERPRINT = "data_fingerprint"
TAG_CODE_VERSION = "code_version"
TAG_PIPELINE_RUN_ID = "pipeline_run_id"
# SHA-256 of the model's artifact folder, recorded when it is logged (run and version tags live
# in the registry's database, not beside the files they vouch for).
TAG_ARTIFACT_SHA256 = "artifact_sha256"
METRIC_TAG_PREFIX = "metric."
# Artifact folder (inside the MLflow model) holding the finrisk files.
ARTIFACT_KEY = "finrisk"


def canonical_kind(kind: str) -> str:
    """ "detector" or "risk" for any accepted spelling; a FinriskError naming the choices else."""
    resolved = _KIND_ALIASES.get(kind.strip().lower())
    if resolved is None:
        raise FinriskError(f"unknown model kind {kind!r}: choose {' or '.join(MODEL_KINDS)}")
    return resolved
