"""The predictor's deployment files: InferenceServices valid against the KServe CRD (raw and
serverless), hardened and wired to the registry by reference; the Dockerfile's basic facts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.crds import load_documents, validate_manifest
from tests.support.kustomize import kustomize
from tests.support.merge_patch import merge

ROOT = Path(__file__).resolve().parents[2]
PREDICTOR = ROOT / "manifests" / "base" / "predictor" / "predictor.yaml"
DOCKERFILE = ROOT / "serving" / "Dockerfile"


def _services(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in documents if d.get("kind") == "InferenceService"]


def test_base_inference_services_are_valid_and_hardened() -> None:
    services = _services(load_documents([PREDICTOR]))
    assert [s["metadata"]["name"] for s in services] == ["finrisk"]
    for service in services:
        assert validate_manifest(service) == [], service["metadata"]["name"]
        annotations = service["metadata"]["annotations"]
        assert annotations["serving.kserve.io/deploymentMode"] == "RawDeployment"
        predictor = service["spec"]["predictor"]
        assert predictor["securityContext"]["runAsNonRoot"] is True
        assert predictor["securityContext"]["runAsUser"] != 0
        (container,) = predictor["containers"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert set(container["resources"]) == {"requests", "limits"}
        assert container["ports"] == [
            {"name": "http1", "containerPort": 8080, "protocol": "TCP"},
            {"name": "h2c", "containerPort": 8081, "protocol": "TCP"},  # gRPC, as KServe names it
        ]
        assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
        assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
        env = {e["name"]: e for e in container["env"]}
        assert env["MLFLOW_TRACKING_URI"]["valueFrom"]["configMapKeyRef"] == {
            "name": "finrisk-config",
            "key": "MLFLOW_TRACKING_URI",
        }
        assert env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"]["optional"] is True
        assert container["args"][0] == "serve"


def test_a_rollout_changes_only_versions_image_canary_and_annotations_of_the_base() -> None:
    """The deploy step patches the object manifests/base creates; everything else (replicas,
    probes, resources, read-only root and its /tmp, threads) stays as the base has it. The same
    is checked on the real API server in tests/integration/test_kube_api.py."""
    from finrisk.deploy.inference_service import (
        DETECTOR_MODEL_ENV,
        RISK_MODEL_ENV,
        ModelRef,
        Rollout,
        restore_patch,
        rollout_patch,
    )
    from finrisk.pipelines.retraining import retraining_pipeline

    (base,) = _services(load_documents([PREDICTOR]))
    base["metadata"].update(namespace="finrisk", resourceVersion="7")
    default_name = retraining_pipeline.component_spec.inputs["inference_service"].default
    rollout = Rollout(
        name=default_name,
        namespace="finrisk",
        detector=ModelRef("d", "3", DETECTOR_MODEL_ENV),
        risk=ModelRef("r", "2", RISK_MODEL_ENV),
        image="registry.example/finrisk-predictor:0.2.0",
        canary_traffic_percent=10,
    )
    assert base["metadata"]["name"] == rollout.name
    rolled = merge(base, rollout_patch(base, rollout))
    expected = copy.deepcopy(base)
    container = expected["spec"]["predictor"]["containers"][0]
    container["env"] += [
        {"name": DETECTOR_MODEL_ENV, "value": "models:/d/3"},
        {"name": RISK_MODEL_ENV, "value": "models:/r/2"},
    ]
    container["image"] = rollout.image
    expected["spec"]["predictor"]["canaryTrafficPercent"] = 10
    expected["metadata"]["annotations"].update(
        {"finrisk.io/detector-version": "d/3", "finrisk.io/risk-version": "r/2"}
    )
    assert rolled == expected
    # And putting it back restores the base exactly.
    assert merge(rolled, restore_patch(rolled, base)) == base


def test_base_kustomization_lists_the_predictor() -> None:
    kustomization = yaml.safe_load((ROOT / "manifests" / "base" / "kustomization.yaml").read_text())
    assert "predictor" in kustomization["resources"]


@pytest.mark.parametrize(
    ("overlay", "mode"), [("base", "RawDeployment"), ("overlays/serverless", "Serverless")]
)
def test_rendered_variants_validate(overlay: str, mode: str) -> None:
    services = _services(kustomize(ROOT / "manifests" / overlay))
    assert len(services) == 1
    for service in services:
        assert service["metadata"]["namespace"] == "finrisk"
        assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode
        assert validate_manifest(service) == [], service["metadata"]["name"]
    ports = [p["containerPort"] for p in services[0]["spec"]["predictor"]["containers"][0]["ports"]]
    if mode == "Serverless":
        assert {s["spec"]["predictor"]["scaleMetric"] for s in services} == {"concurrency"}
        assert ports == [8080]  # Knative routes one port
    else:
        assert ports == [8080, 8081]


def test_dockerfile_basics() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    assert instructions[:2] == ["ARG BASE_IMAGE=python:3.11-slim", "FROM ${BASE_IMAGE}"]
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert 'ENTRYPOINT ["finrisk"]' in instructions
    assert 'CMD ["serve"]' in instructions
    assert "EXPOSE 8080" in instructions
    assert "EXPOSE 8081" in instructions
    text = DOCKERFILE.read_text()
    assert "FINRISK_PREDICTOR_HOST=0.0.0.0" in text  # loopback inside a pod would be unreachable
    assert "FINRISK_PREDICTOR_GRPC_PORT=8081" in text
    for source in ("requirements.serving.lock", "finrisk", "serving"):
        assert any(line.startswith("COPY ") and source in line for line in instructions)
