"""What a served model must know about itself, written next to it at registration."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sklearn

from finrisk.compiled import DETECTOR, CompiledModel, ParityReport
from finrisk.version import __version__ as finrisk_version

METADATA_FORMAT = 1


def model_metadata(
    model: Any,
    kind: str,
    compiled: CompiledModel,
    parity: ParityReport,
    *,
    provenance: Mapping[str, str],
    metrics: Mapping[str, float],
) -> dict[str, Any]:
    """kind, feature order, decision parameters, versions, provenance, metrics, parity."""
    meta: dict[str, Any] = {
        "format": METADATA_FORMAT,
        "kind": kind,
        "model_class": type(model).__name__,
        "feature_names": list(compiled.feature_names),
        "finrisk_version": finrisk_version,
        "sklearn_version": sklearn.__version__,
        "training": dict(getattr(model, "metadata_", {})),
        "provenance": dict(provenance),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "parity": parity.to_dict(),
    }
    if kind == DETECTOR:
        meta["threshold"] = float(model.threshold_)
        meta["score_kind"] = str(model.score_kind_)
    else:
        meta["bands"] = model.bands_.to_dict()
        meta["reference"] = [float(v) for v in model.reference_]
    return meta
