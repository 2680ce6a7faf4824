"""The bridge's Kubernetes manifest: valid objects, non-root, probes, resources, real settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from finrisk.cli import build_parser
from finrisk.images import image_ref
from finrisk.settings import BridgeSettings, ImagesSettings
from tests.support.k8s_core import validate_builtin

BASE = Path(__file__).resolve().parents[2] / "manifests" / "base"
PREFIX = "FINRISK_BRIDGE__"


@pytest.fixture(scope="module")
def docs() -> dict[str, dict[str, Any]]:
    loaded = [d for d in yaml.safe_load_all((BASE / "bridge.yaml").read_text()) if d]
    return {d["kind"]: d for d in loaded}


def test_every_object_is_a_valid_kubernetes_object(docs: dict[str, dict[str, Any]]) -> None:
    assert set(docs) == {
        "ConfigMap",
        "StatefulSet",
        "Service",
        "ServiceAccount",
        "PodDisruptionBudget",
    }
    for doc in docs.values():
        assert validate_builtin(doc) == []


def test_the_validator_catches_a_misspelt_field(docs: dict[str, dict[str, Any]]) -> None:
    broken = yaml.safe_load(yaml.safe_dump(docs["StatefulSet"]))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    broken["spec"]["replicas"] = "two"
    errors = validate_builtin(broken)
    assert any("livenesProbe: unknown field" in e for e in errors)
    assert any("spec.replicas: expected int" in e for e in errors)


def test_kustomization_lists_the_bridge() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert "bridge.yaml" in kustomization["resources"]


def test_pod_runs_non_root_with_probes_and_resources(docs: dict[str, dict[str, Any]]) -> None:
    pod = docs["StatefulSet"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    (container,) = pod["containers"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    port = container["ports"][0]["containerPort"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    config = docs["ConfigMap"]["data"]
    assert int(config[f"{PREFIX}HTTP_PORT"]) == port
    assert config[f"{PREFIX}HTTP_HOST"] == "0.0.0.0"  # probes come from the kubelet
    # Long enough for a batch to finish and commit after SIGTERM.
    assert pod["terminationGracePeriodSeconds"] >= 30


def test_the_image_is_the_serving_image_which_runs_as_the_same_user(
    docs: dict[str, dict[str, Any]],
) -> None:
    dockerfile = (BASE.parents[1] / "serving" / "Dockerfile").read_text()
    pod = docs["StatefulSet"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    tag = container["image"]
    # The tag `make images` gives the serving image by default.
    assert tag == image_ref(ImagesSettings(), "finrisk-predictor")
    assert f"USER {pod['securityContext']['runAsUser']}:" in dockerfile


def test_command_and_settings_are_ones_finrisk_understands(
    docs: dict[str, dict[str, Any]],
) -> None:
    (container,) = docs["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    assert container["command"][0] == "finrisk"
    build_parser().parse_args(container["command"][1:])  # exits on an unknown sub-command
    values = {
        key.removeprefix(PREFIX).lower(): value
        for key, value in docs["ConfigMap"]["data"].items()
        if key.startswith(PREFIX)
    }
    assert len(values) == len(docs["ConfigMap"]["data"])
    env_fields = {
        e["name"].removeprefix(PREFIX).lower()
        for e in container["env"]
        if e["name"].startswith(PREFIX)
    }
    assert env_fields <= set(BridgeSettings.model_fields)
    settings = BridgeSettings.model_validate(values)  # extra="forbid": typos fail here
    assert settings.sink == "bigquery"
    assert settings.security_protocol == "SASL_SSL"


def test_exactly_once_gets_a_transactional_id_stable_across_restarts(
    docs: dict[str, dict[str, Any]],
) -> None:
    """The pod name, in a StatefulSet: kept by a restarted or updated pod (a Deployment's pods
    get new names), so a restart fences its predecessor's open transaction."""
    workload = docs["StatefulSet"]
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    source = {e["name"]: e.get("valueFrom") for e in container["env"]}
    assert source[f"{PREFIX}TRANSACTIONAL_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    service = docs["Service"]
    assert workload["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"  # headless: the StatefulSet's names
    assert service["spec"]["selector"] == workload["spec"]["selector"]["matchLabels"]
