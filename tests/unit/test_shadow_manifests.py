"""manifests/overlays/shadow: the monitoring overlay plus a challenger InferenceService that is
the base's predictor following the `challenger` alias, the bridge shadowing on it, and the
monitor starting runs that shadow. The same overlay passes a server-side dry run on the real
API server in tests/integration/test_kube_api.py."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from finrisk.gate import GatePolicy
from finrisk.pipelines.cli import parse_params
from finrisk.pipelines.monitor import register
from finrisk.settings import BridgeSettings, MonitorSettings
from tests.support.crds import validate_manifest
from tests.support.kustomize import kustomize

ROOT = Path(__file__).resolve().parents[2]
SHADOW = ROOT / "manifests" / "overlays" / "shadow"
MONITORING = ROOT / "manifests" / "overlays" / "monitoring"


def _by_name(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_the_challenger_is_the_base_predictor_following_the_challenger_alias() -> None:
    shadow = _by_name(kustomize(SHADOW))
    champion = shadow[("InferenceService", "finrisk")]
    challenger = shadow[("InferenceService", "finrisk-challenger")]
    expected = copy.deepcopy(champion)
    expected["metadata"]["name"] = "finrisk-challenger"
    expected["metadata"]["labels"]["app.kubernetes.io/component"] = "challenger"
    expected["spec"]["predictor"].update(minReplicas=1, maxReplicas=2)
    (container,) = expected["spec"]["predictor"]["containers"]
    for env in container["env"]:
        if env["name"] == "FINRISK_PREDICTOR_ALIAS":
            assert env["value"] == "champion"
            env["value"] = "challenger"
    assert challenger == expected
    assert challenger["metadata"]["namespace"] == "finrisk"
    assert validate_manifest(challenger) == []


def test_everything_else_is_the_monitoring_overlay_with_what_shadowing_needs() -> None:
    shadow = _by_name(kustomize(SHADOW))
    monitoring = _by_name(kustomize(MONITORING))
    assert set(shadow) - set(monitoring) == {
        ("InferenceService", "finrisk-challenger"),
        ("RoleBinding", "finrisk-monitor-deployer"),
    }
    assert set(monitoring) <= set(shadow)
    changed = {key for key in monitoring if shadow[key] != monitoring[key]}
    assert changed == {
        ("ConfigMap", "finrisk-bridge-config"),
        ("ConfigMap", "finrisk-monitor-config"),
        ("CronJob", "finrisk-monitor"),
        ("PodMonitor", "finrisk-predictor"),
    }


def test_the_monitor_may_roll_out_on_the_champion_and_scrapes_both_predictors() -> None:
    shadow = _by_name(kustomize(SHADOW))
    binding = shadow[("RoleBinding", "finrisk-monitor-deployer")]
    assert binding["roleRef"]["name"] == "finrisk-pipeline-deployer"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "finrisk-monitor", "namespace": "finrisk"}
    ]
    role = shadow[("Role", "finrisk-pipeline-deployer")]
    assert role["rules"] == [
        {
            "apiGroups": ["serving.kserve.io"],
            "resources": ["inferenceservices"],
            "verbs": ["get", "patch"],
        }
    ]
    pod = shadow[("CronJob", "finrisk-monitor")]["spec"]["jobTemplate"]["spec"]["template"]
    assert pod["spec"]["automountServiceAccountToken"] is True
    data = shadow[("ConfigMap", "finrisk-monitor-config")]["data"]
    settings = MonitorSettings.model_validate(
        {
            k.removeprefix("FINRISK_MONITOR__").lower(): v
            for k, v in data.items()
            if k.startswith("FINRISK_MONITOR__")
        }
    )
    assert settings.inference_service == settings.inference_service_namespace == "finrisk"
    assert ("InferenceService", settings.inference_service) in shadow
    selector = shadow[("PodMonitor", "finrisk-predictor")]["spec"]["selector"]
    assert selector == {
        "matchExpressions": [
            {
                "key": "serving.kserve.io/inferenceservice",
                "operator": "In",
                "values": ["finrisk", "finrisk-challenger"],
            }
        ]
    }
    assert validate_manifest(shadow[("PodMonitor", "finrisk-predictor")]) == []


def test_the_bridge_shadows_on_the_challenger_service() -> None:
    shadow = _by_name(kustomize(SHADOW))
    data = shadow[("ConfigMap", "finrisk-bridge-config")]["data"]
    settings = BridgeSettings.model_validate(
        {k.removeprefix("FINRISK_BRIDGE__").lower(): v for k, v in data.items()}
    )
    assert settings.challenger_url is not None
    # KServe's raw deployment names the Service <isvc>-predictor.
    host = urlparse(settings.challenger_url).hostname
    assert host == "finrisk-challenger-predictor.finrisk.svc.cluster.local"
    champion = urlparse(settings.predictor_url).hostname
    assert champion == "finrisk-predictor.finrisk.svc.cluster.local"


def test_the_monitor_starts_runs_that_shadow() -> None:
    job = _by_name(kustomize(SHADOW))[("CronJob", "finrisk-monitor")]
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    params = parse_params(parser.parse_args(container["command"][1:]).param)
    assert params["promotion"] == "shadow"
    assert GatePolicy(promotion=params["promotion"]).promotion == "shadow"
    assert params["data_source"] == "bigquery"  # the monitoring overlay's parameters kept
    env = {e["name"]: e for e in container["env"]}
    assert env["MLFLOW_TRACKING_URI"]["valueFrom"]["configMapKeyRef"]["name"] == "finrisk-config"
