"""The CRD validator itself must reject what a cluster rejects, or every manifest test is hollow."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.crds import validate_manifest


@pytest.fixture
def isvc() -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "finrisk-anomaly", "namespace": "finrisk"},
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": "example/predictor:1",
                        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                    }
                ],
            }
        },
    }


def test_valid_inference_service_passes(isvc: dict[str, Any]) -> None:
    assert validate_manifest(isvc) == []


def test_misspelt_field_is_caught(isvc: dict[str, Any]) -> None:
    bad = copy.deepcopy(isvc)
    bad["spec"]["predictor"]["minReplica"] = 1
    errors = validate_manifest(bad)
    assert any("minReplica" in e for e in errors), errors


def test_wrong_type_is_caught(isvc: dict[str, Any]) -> None:
    bad = copy.deepcopy(isvc)
    bad["spec"]["predictor"]["minReplicas"] = "one"
    assert any(e.startswith("spec.predictor.minReplicas") for e in validate_manifest(bad))


def test_int_or_string_accepts_both(isvc: dict[str, Any]) -> None:
    ok = copy.deepcopy(isvc)
    ok["spec"]["predictor"]["containers"][0]["resources"]["limits"]["cpu"] = 2
    assert validate_manifest(ok) == []


def test_bad_name_and_unknown_kind(isvc: dict[str, Any]) -> None:
    bad = copy.deepcopy(isvc)
    bad["metadata"]["name"] = "Finrisk_Anomaly"
    assert any("DNS-1123" in e for e in validate_manifest(bad))
    assert validate_manifest({"apiVersion": "v1", "kind": "Pod"})[0].startswith("no CRD")


def test_pipeline_version_requires_pipeline_spec() -> None:
    version = {
        "apiVersion": "pipelines.kubeflow.org/v2beta1",
        "kind": "PipelineVersion",
        "metadata": {"name": "finrisk-retrain-abc123"},
        "spec": {"pipelineName": "finrisk-retrain"},
    }
    assert any("pipelineSpec" in e for e in validate_manifest(version))
