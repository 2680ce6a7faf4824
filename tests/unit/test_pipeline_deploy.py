"""The deploy step without a cluster: the InferenceService spec (valid against the KServe CRD),
readiness polling with a timeout, and the dry run.

What the API server decides (create, merge patches, canary and rollback read back whole, RBAC,
a 403) is tested against the real one in tests/integration/test_kube_api.py. Here
`StandInInferenceServices` stands in for the API server *and* KServe's controller, only to
drive readiness: a status per generation, Ready or not, set by the test.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from finrisk.deploy import cluster
from finrisk.deploy.apply import GROUP, PLURAL, VERSION, apply, deploy, readiness, wait_until_ready
from finrisk.deploy.inference_service import (
    DETECTOR_MODEL_ENV,
    RISK_MODEL_ENV,
    ModelRef,
    PredictorConfig,
    inference_service_manifest,
)
from finrisk.errors import FinriskError
from tests.support.crds import validate_manifest


def config(**overrides: Any) -> PredictorConfig:
    base: dict[str, Any] = {
        "name": "finrisk",
        "namespace": "finrisk",
        "detector": ModelRef("finrisk-anomaly-detector", "7", DETECTOR_MODEL_ENV),
        "risk": ModelRef("finrisk-risk-classifier", "3", RISK_MODEL_ENV),
    }
    return PredictorConfig(**{**base, **overrides})


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies application/merge-patch+json."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


class StandInInferenceServices:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[str] = []
        self.forbidden = False

    def _check(self, group: str, version: str, plural: str) -> None:
        assert (group, version, plural) == ("serving.kserve.io", "v1beta1", "inferenceservices")
        if self.forbidden:
            raise ApiException(status=403, reason="Forbidden")

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> dict[str, Any]:
        self._check(group, version, plural)
        self.calls.append("get")
        if (namespace, name) not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.objects[(namespace, name)])

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        self._check(group, version, plural)
        self.calls.append("create")
        obj = copy.deepcopy(body)
        obj["metadata"]["generation"] = 1
        self.objects[(namespace, obj["metadata"]["name"])] = obj
        return obj

    def patch_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: Any
    ) -> dict[str, Any]:
        self._check(group, version, plural)
        self.calls.append("patch")
        current = self.objects[(namespace, name)]
        patched = _merge(current, body)
        if patched["spec"] != current["spec"]:
            patched["metadata"]["generation"] = current["metadata"]["generation"] + 1
        self.objects[(namespace, name)] = patched
        return patched

    def set_ready(self, name: str, ready: bool, url: str = "http://finrisk.example") -> None:
        obj = self.objects[("finrisk", name)]
        obj["status"] = {
            "observedGeneration": obj["metadata"]["generation"],
            "url": url,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "message": "" if ready else "Revision missing",
                }
            ],
        }


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_manifest_validates_against_the_kserve_crd() -> None:
    for variant in (config(), config(canary_traffic_percent=10, service_account="sa")):
        manifest = inference_service_manifest(variant)
        assert validate_manifest(manifest) == []


def test_manifest_pins_versions_and_references_config() -> None:
    manifest = inference_service_manifest(config(canary_traffic_percent=25))
    predictor = manifest["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 25
    (container,) = predictor["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env[DETECTOR_MODEL_ENV]["value"] == "models:/finrisk-anomaly-detector/7"
    assert env[RISK_MODEL_ENV]["value"] == "models:/finrisk-risk-classifier/3"
    assert env["MLFLOW_TRACKING_URI"]["valueFrom"]["configMapKeyRef"] == {
        "name": cluster.CONFIG_MAP,
        "key": cluster.MLFLOW_URI_KEY,
    }
    assert env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == (
        cluster.MLFLOW_SECRET
    )
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["limits"] and container["readinessProbe"]
    annotations = manifest["metadata"]["annotations"]
    assert annotations["finrisk.io/detector-version"] == "finrisk-anomaly-detector/7"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "Finrisk_Predictor"}, "InferenceService name 'Finrisk_Predictor'"),
        ({"canary_traffic_percent": 100}, "between 1 and 99"),
        ({"min_replicas": 3, "max_replicas": 2}, "replicas"),
        ({"detector": ModelRef("d", "", DETECTOR_MODEL_ENV)}, "no registry version given"),
    ],
)
def test_bad_config_is_a_clear_error(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(FinriskError, match=message):
        config(**overrides)


def test_wait_until_ready_polls_the_latest_generation() -> None:
    api = StandInInferenceServices()
    apply(api, inference_service_manifest(config()))
    api.set_ready("finrisk", True)
    api.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "finrisk",
        PLURAL,
        "finrisk",
        {"spec": {"predictor": {"minReplicas": 2}}},
    )
    # Ready, but for the previous generation: not yet.
    assert readiness(api.objects[("finrisk", "finrisk")]) == (
        False,
        "generation 2 not yet observed (at 1)",
    )
    clock = FakeClock()
    polls = 0

    def sleep(seconds: float) -> None:
        nonlocal polls
        polls += 1
        clock.sleep(seconds)
        if polls == 3:
            api.set_ready("finrisk", True)

    obj = wait_until_ready(api, "finrisk", "finrisk", 60, poll_s=5, clock=clock, sleep=sleep)
    assert obj["status"]["url"] == "http://finrisk.example" and polls == 3


def test_wait_until_ready_times_out_with_the_last_condition() -> None:
    api = StandInInferenceServices()
    apply(api, inference_service_manifest(config()))
    api.set_ready("finrisk", False)
    clock = FakeClock()
    with pytest.raises(FinriskError, match="not ready after 30 s: Ready=False: Revision missing"):
        wait_until_ready(api, "finrisk", "finrisk", 30, poll_s=5, clock=clock, sleep=clock.sleep)
    assert clock.now == 30


def test_dry_run_writes_the_manifest_and_touches_no_cluster(tmp_path: Path) -> None:
    result = deploy(
        inference_service_manifest(config()),
        dry_run=True,
        manifest_path=tmp_path / "isvc.yaml",
        api=StandInInferenceServices(),
    )
    assert result.action == "dry-run"
    assert result.manifest_path is not None
    written = yaml.safe_load(result.manifest_path.read_text())
    assert written == inference_service_manifest(config())


def test_deploy_applies_and_reports_the_url(tmp_path: Path) -> None:
    api = StandInInferenceServices()

    manifest = inference_service_manifest(config())
    original_get = api.get_namespaced_custom_object

    def get_and_become_ready(*args: Any) -> dict[str, Any]:
        if ("finrisk", "finrisk") in api.objects:
            api.set_ready("finrisk", True, url="http://finrisk.finrisk.example.com")
        return original_get(*args)

    api.get_namespaced_custom_object = get_and_become_ready  # type: ignore[method-assign]
    result = deploy(
        manifest, dry_run=False, manifest_path=tmp_path / "m.yaml", api=api, timeout_s=10, poll_s=0
    )
    assert (result.action, result.url) == ("created", "http://finrisk.finrisk.example.com")
    assert api.calls == ["get", "create", "get"]
