"""The predictor's autoscaling, declared once: replicas, the metric KServe scales on, its target.

Two things set it on the InferenceService `finrisk`: the manifests (`manifests/base/predictor`
for raw deployment, the `serverless` overlay for Knative) and the pipeline's deploy step, which
writes it with every rollout so that an object scaled by hand goes back to these bounds. The
manifests cannot import Python, so a unit test holds each of them to this module
(tests/unit/test_predictor_autoscaling.py); change a figure here and there together.

How these figures follow from the measured throughput: docs/pipeline.md, "Sizing".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from finrisk.errors import FinriskError

log = logging.getLogger(__name__)

# KServe's annotation choosing how the predictor runs, and so which autoscaler reads the fields.
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
RAW_DEPLOYMENT = "RawDeployment"
SERVERLESS = "Serverless"


@dataclass(frozen=True)
class PredictorAutoscaling:
    """KServe's ComponentExtensionSpec autoscaling fields for one deployment mode."""

    min_replicas: int
    max_replicas: int
    # cpu/memory: the HPA's utilisation (%); concurrency/rps: Knative's per-pod target.
    metric: Literal["cpu", "memory", "concurrency", "rps"]
    target: int

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise FinriskError(
                f"predictor replicas must satisfy 1 <= min <= max, got min {self.min_replicas}, "
                f"max {self.max_replicas}"
            )

    def spec_fields(self) -> dict[str, Any]:
        """The fields as they stand in `spec.predictor` of the InferenceService."""
        return {
            "minReplicas": self.min_replicas,
            "maxReplicas": self.max_replicas,
            "scaleMetric": self.metric,
            "scaleTarget": self.target,
        }


PREDICTOR_AUTOSCALING: dict[str, PredictorAutoscaling] = {
    # The HPA adds a pod above 70 % of the CPU request, before the 2-core limit throttles.
    RAW_DEPLOYMENT: PredictorAutoscaling(min_replicas=2, max_replicas=6, metric="cpu", target=70),
    # Knative's in-flight requests per pod: the bridge sends batches, each one request.
    SERVERLESS: PredictorAutoscaling(
        min_replicas=2, max_replicas=6, metric="concurrency", target=16
    ),
}

SPEC_FIELDS = tuple(PREDICTOR_AUTOSCALING[RAW_DEPLOYMENT].spec_fields())


def for_inference_service(obj: dict[str, Any]) -> PredictorAutoscaling | None:
    """The declared autoscaling for the stored object's deployment mode; None (with a warning)
    when the object names no mode this module declares: a rollout then leaves its autoscaling
    as it is rather than fail, since new models matter more than replica bounds."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    mode = annotations.get(DEPLOYMENT_MODE_ANNOTATION)
    if mode in PREDICTOR_AUTOSCALING:
        return PREDICTOR_AUTOSCALING[mode]
    meta = obj.get("metadata") or {}
    log.warning(
        "InferenceService %s/%s has %s=%r, not one of %s: its autoscaling is left as it is "
        "(apply it from manifests/base or manifests/overlays/serverless to have it declared)",
        meta.get("namespace"),
        meta.get("name"),
        DEPLOYMENT_MODE_ANNOTATION,
        mode,
        sorted(PREDICTOR_AUTOSCALING),
    )
    return None
