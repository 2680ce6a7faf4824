"""The predictor's autoscaling is declared once (finrisk.deploy.autoscaling): the manifests carry
the same figures, the deploy step writes them with every rollout and puts back what it changed,
and what it writes is a valid InferenceService."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from finrisk.deploy.autoscaling import (
    DEPLOYMENT_MODE_ANNOTATION,
    PREDICTOR_AUTOSCALING,
    RAW_DEPLOYMENT,
    SERVERLESS,
    SPEC_FIELDS,
    PredictorAutoscaling,
    for_inference_service,
)
from finrisk.deploy.inference_service import (
    DETECTOR_MODEL_ENV,
    RISK_MODEL_ENV,
    ModelRef,
    Rollout,
    restore_patch,
    rollout_patch,
)
from finrisk.errors import FinriskError
from tests.support.crds import validate_manifest
from tests.support.kustomize import kustomize
from tests.support.merge_patch import merge

ROOT = Path(__file__).resolve().parents[2]
ROLLOUT = Rollout(
    name="finrisk",
    namespace="finrisk",
    detector=ModelRef("finrisk-anomaly-detector", "7", DETECTOR_MODEL_ENV),
    risk=ModelRef("finrisk-risk-classifier", "3", RISK_MODEL_ENV),
)


def _service(overlay: str) -> dict[str, Any]:
    (service,) = [
        d for d in kustomize(ROOT / "manifests" / overlay) if d["kind"] == "InferenceService"
    ]
    service["metadata"]["resourceVersion"] = "1"
    return service


@pytest.mark.parametrize(
    ("overlay", "mode"), [("base", RAW_DEPLOYMENT), ("overlays/serverless", SERVERLESS)]
)
def test_each_manifest_carries_the_declared_autoscaling(overlay: str, mode: str) -> None:
    service = _service(overlay)
    assert service["metadata"]["annotations"][DEPLOYMENT_MODE_ANNOTATION] == mode
    predictor = service["spec"]["predictor"]
    declared = PREDICTOR_AUTOSCALING[mode].spec_fields()
    assert {key: predictor.get(key) for key in declared} == declared
    assert for_inference_service(service) == PREDICTOR_AUTOSCALING[mode]


@pytest.mark.parametrize("overlay", ["base", "overlays/serverless"])
def test_a_rollout_writes_the_declared_autoscaling_over_a_hand_scaled_object(
    overlay: str,
) -> None:
    current = _service(overlay)
    current["spec"]["predictor"].update(minReplicas=1, maxReplicas=40)  # kubectl edit
    mode = current["metadata"]["annotations"][DEPLOYMENT_MODE_ANNOTATION]
    patch = rollout_patch(current, ROLLOUT)
    patched = merge(current, patch)
    declared = PREDICTOR_AUTOSCALING[mode].spec_fields()
    assert {key: patched["spec"]["predictor"][key] for key in declared} == declared
    del patched["metadata"]["resourceVersion"]
    assert validate_manifest(patched) == []


def test_putting_a_rollout_back_restores_the_autoscaling_it_changed() -> None:
    previous = _service("base")
    previous["spec"]["predictor"].update(minReplicas=1, maxReplicas=40)
    del previous["spec"]["predictor"]["scaleTarget"]
    rolled = merge(previous, rollout_patch(previous, ROLLOUT))
    assert rolled["spec"]["predictor"]["scaleTarget"] == 70
    restored = merge(rolled, restore_patch(rolled, previous))
    assert restored["spec"] == previous["spec"]


def test_an_unknown_deployment_mode_still_rolls_out_leaving_autoscaling_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = _service("base")
    service["metadata"]["annotations"][DEPLOYMENT_MODE_ANNOTATION] = "ModelMesh"
    service["spec"]["predictor"].update(minReplicas=1, maxReplicas=40)
    unannotated = copy.deepcopy(service)
    del unannotated["metadata"]["annotations"][DEPLOYMENT_MODE_ANNOTATION]
    for current, shown in ((service, "'ModelMesh'"), (unannotated, "None")):
        patch = rollout_patch(current, ROLLOUT)
        assert not set(SPEC_FIELDS) & set(patch["spec"]["predictor"])
        patched = merge(current, patch)
        assert patched["spec"]["predictor"]["maxReplicas"] == 40
        env = {
            e["name"]: e.get("value") for e in patched["spec"]["predictor"]["containers"][0]["env"]
        }
        assert env[DETECTOR_MODEL_ENV] == "models:/finrisk-anomaly-detector/7"
        assert f"deploymentMode={shown}, not one of" in caplog.text


def test_bounds_must_be_ordered() -> None:
    with pytest.raises(FinriskError, match="1 <= min <= max, got min 3, max 2"):
        PredictorAutoscaling(min_replicas=3, max_replicas=2, metric="cpu", target=70)
    with pytest.raises(FinriskError, match="got min 0"):
        PredictorAutoscaling(min_replicas=0, max_replicas=2, metric="cpu", target=70)
