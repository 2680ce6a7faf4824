"""The deploy step without a cluster: the rollout's validation, readiness polling with its
timeout, the client-side dry run, and the flow (patch, Ready, probe; put back on failure).

What the API server decides (the merge patch on the stored object, a conflict, a 403, RBAC,
the server-side dry run) is tested against the real one in tests/integration/test_kube_api.py.
Here `StandInInferenceServices` stands in for the API server *and* KServe's controller, only
to drive readiness and the flow: a merge patch, a generation per spec change, a status the
test sets.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from finrisk.deploy.apply import (
    CONFLICT_ATTEMPTS,
    deploy,
    readiness,
    wait_until_ready,
)
from finrisk.deploy.inference_service import (
    DETECTOR_MODEL_ENV,
    RISK_MODEL_ENV,
    ModelRef,
    Rollout,
)
from finrisk.errors import FinriskError
from tests.support.crds import load_documents, validate_manifest
from tests.support.merge_patch import merge

BASE = Path(__file__).resolve().parents[2] / "manifests" / "base" / "predictor" / "predictor.yaml"


def rollout(**overrides: Any) -> Rollout:
    values: dict[str, Any] = {
        "name": "finrisk",
        "namespace": "finrisk",
        "detector": ModelRef("finrisk-anomaly-detector", "7", DETECTOR_MODEL_ENV),
        "risk": ModelRef("finrisk-risk-classifier", "3", RISK_MODEL_ENV),
    }
    return Rollout(**{**values, **overrides})


class StandInInferenceServices:
    """The base's InferenceService behind the CustomObjectsApi calls the deploy step makes."""

    def __init__(self, exists: bool = True) -> None:
        (base,) = [d for d in load_documents([BASE]) if d["kind"] == "InferenceService"]
        base["metadata"].update(namespace="finrisk", resourceVersion="1", generation=1)
        self.objects: dict[tuple[str, str], dict[str, Any]] = (
            {("finrisk", "finrisk"): base} if exists else {}
        )
        self.patches: list[dict[str, Any]] = []
        self.on_patch: Any = None  # what "the controller" does after each patch
        self.racing_reads = 0  # reads after which "the controller" writes the status

    def _check(self, group: str, version: str, plural: str) -> None:
        assert (group, version, plural) == ("serving.kserve.io", "v1beta1", "inferenceservices")

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> dict[str, Any]:
        self._check(group, version, plural)
        if (namespace, name) not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        found = copy.deepcopy(self.objects[(namespace, name)])
        if self.racing_reads:  # the controller writes the status right after this read
            self.racing_reads -= 1
            stored = self.objects[(namespace, name)]["metadata"]
            stored["resourceVersion"] = str(int(stored["resourceVersion"]) + 1)
        return found

    def patch_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: Any, **kw: Any
    ) -> dict[str, Any]:
        self._check(group, version, plural)
        current = self.objects[(namespace, name)]
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        patched = merge(current, body)
        meta = patched["metadata"]
        meta["resourceVersion"] = str(int(current["metadata"]["resourceVersion"]) + 1)
        if patched["spec"] != current["spec"]:
            meta["generation"] = current["metadata"]["generation"] + 1
        if kw.get("dry_run") == "All":
            return patched
        self.patches.append(body)
        self.objects[(namespace, name)] = patched
        if self.on_patch is not None:
            self.on_patch(patched)
        return copy.deepcopy(patched)

    def set_ready(self, ready: bool, url: str = "http://finrisk.finrisk.svc") -> None:
        obj = self.objects[("finrisk", "finrisk")]
        obj["status"] = {
            "observedGeneration": obj["metadata"]["generation"],
            "address": {"url": url},
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


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "Finrisk_Predictor"}, "InferenceService name 'Finrisk_Predictor'"),
        ({"canary_traffic_percent": 100}, "between 1 and 99"),
        ({"detector": ModelRef("d", "", DETECTOR_MODEL_ENV)}, "no registry version given"),
    ],
)
def test_a_bad_rollout_is_a_clear_error(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(FinriskError, match=message):
        rollout(**overrides)


def test_wait_until_ready_polls_the_latest_generation() -> None:
    api = StandInInferenceServices()
    api.set_ready(True)
    api.objects[("finrisk", "finrisk")]["metadata"]["generation"] = 2
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
            api.set_ready(True)

    obj = wait_until_ready(api, "finrisk", "finrisk", 60, poll_s=5, clock=clock, sleep=sleep)
    assert obj["status"]["address"]["url"] == "http://finrisk.finrisk.svc" and polls == 3


def test_wait_until_ready_times_out_with_the_last_condition() -> None:
    api = StandInInferenceServices()
    api.set_ready(False)
    clock = FakeClock()
    with pytest.raises(FinriskError, match="not ready after 30 s: Ready=False: Revision missing"):
        wait_until_ready(api, "finrisk", "finrisk", 30, poll_s=5, clock=clock, sleep=clock.sleep)
    assert clock.now == 30


def test_the_client_dry_run_writes_what_would_change_and_touches_no_cluster(
    tmp_path: Path,
) -> None:
    class NoCluster:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the dry run called {name}")

    result = deploy(
        rollout(canary_traffic_percent=5),
        dry_run="client",
        manifest_path=tmp_path / "isvc.yaml",
        api=NoCluster(),
    )
    assert result.action == "dry run (client)"
    written = yaml.safe_load((tmp_path / "isvc.yaml").read_text())
    assert written["changes"]["env"] == {
        DETECTOR_MODEL_ENV: "models:/finrisk-anomaly-detector/7",
        RISK_MODEL_ENV: "models:/finrisk-risk-classifier/3",
    }
    assert written["changes"]["canaryTrafficPercent"] == 5
    assert written["changes"]["autoscaling"]["RawDeployment"] == {
        "minReplicas": 2,
        "maxReplicas": 6,
        "scaleMetric": "cpu",
        "scaleTarget": 70,
    }


def test_a_rollout_that_serves_stays_and_reports_where(tmp_path: Path) -> None:
    api = StandInInferenceServices()
    api.on_patch = lambda obj: api.set_ready(True)
    probed: list[tuple[str, Rollout]] = []
    wanted = rollout()
    result = deploy(
        wanted,
        manifest_path=tmp_path / "m.yaml",
        api=api,
        timeout_s=10,
        poll_s=0,
        probe=lambda url, r, deadline: probed.append((url, r)),
    )
    assert (result.action, result.url) == ("rolled out", "http://finrisk.finrisk.svc")
    assert probed == [("http://finrisk.finrisk.svc", wanted)]
    stored = api.objects[("finrisk", "finrisk")]
    env = {e["name"]: e.get("value") for e in stored["spec"]["predictor"]["containers"][0]["env"]}
    assert env[DETECTOR_MODEL_ENV] == "models:/finrisk-anomaly-detector/7"
    assert validate_manifest({k: v for k, v in stored.items() if k != "status"}) == []


def test_a_rollout_that_does_not_serve_is_put_back(tmp_path: Path) -> None:
    api = StandInInferenceServices()
    before = copy.deepcopy(api.objects[("finrisk", "finrisk")])
    api.on_patch = lambda obj: api.set_ready(True)

    def probe(url: str, r: Rollout, deadline: float) -> None:
        raise FinriskError(f"{url}/v2/models/x/versions/7/ready did not answer 200 in time")

    with pytest.raises(FinriskError, match="is back on what it served before, and no alias moved"):
        deploy(
            rollout(canary_traffic_percent=10),
            manifest_path=tmp_path / "m.yaml",
            api=api,
            timeout_s=10,
            poll_s=0,
            probe=probe,
        )
    after = api.objects[("finrisk", "finrisk")]
    assert after["spec"] == before["spec"]
    assert after["metadata"]["annotations"] == before["metadata"]["annotations"]
    assert len(api.patches) == 2  # the rollout, then what put it back


@pytest.mark.parametrize("races", [1, CONFLICT_ATTEMPTS - 1, CONFLICT_ATTEMPTS])
def test_the_put_back_reads_again_when_the_controller_changed_the_object(
    tmp_path: Path, races: int
) -> None:
    """KServe writes the object's status while the deploy step reads and patches it: the
    put-back's patch then carries a stale resourceVersion (409) and must be made again from a
    fresh read, not leave the failed rollout serving."""
    api = StandInInferenceServices()
    before = copy.deepcopy(api.objects[("finrisk", "finrisk")])
    api.on_patch = lambda obj: api.set_ready(True)

    def probe(url: str, r: Rollout, deadline: float) -> None:
        api.racing_reads = races  # from the put-back's first read on
        raise FinriskError("did not answer 200 in time")

    run = lambda: deploy(  # noqa: E731
        rollout(), manifest_path=tmp_path / "m.yaml", api=api, timeout_s=10, poll_s=0, probe=probe
    )
    if races < CONFLICT_ATTEMPTS:
        with pytest.raises(FinriskError, match="is back on what it served before"):
            run()
        assert api.objects[("finrisk", "finrisk")]["spec"] == before["spec"]
    else:  # the controller never stops: say so, what may still serve, and what to do
        with pytest.raises(FinriskError, match="putting it back failed too") as failed:
            run()
        assert "may still serve the new pair (no alias moved)" in str(failed.value)
        assert "HTTP 409" in str(failed.value)


@pytest.mark.parametrize("races", [1, CONFLICT_ATTEMPTS - 1, CONFLICT_ATTEMPTS])
def test_the_rollout_reads_again_when_the_controller_changed_the_object(
    tmp_path: Path, races: int
) -> None:
    """KServe writes the object's status between the step's read and its patch (found by the
    real API server under load): the patch, stale, is made again from a fresh read; only a
    controller that never stops fails the step, with nothing changed."""
    api = StandInInferenceServices()
    before = copy.deepcopy(api.objects[("finrisk", "finrisk")])
    api.on_patch = lambda obj: api.set_ready(True)
    api.racing_reads = races  # from the rollout's first read on
    run = lambda: deploy(  # noqa: E731
        rollout(),
        manifest_path=tmp_path / "m.yaml",
        api=api,
        timeout_s=10,
        poll_s=0,
        probe=lambda url, r, deadline: None,
    )
    if races < CONFLICT_ATTEMPTS:
        assert run().action == "rolled out"
        stored = api.objects[("finrisk", "finrisk")]
        env = stored["spec"]["predictor"]["containers"][0]["env"]
        assert {"name": DETECTOR_MODEL_ENV, "value": "models:/finrisk-anomaly-detector/7"} in env
        assert len(api.patches) == 1
    else:
        with pytest.raises(FinriskError, match=r"HTTP 409 .*run the step again"):
            run()
        assert api.objects[("finrisk", "finrisk")]["spec"] == before["spec"]
        assert api.patches == []


def test_a_missing_inference_service_says_to_apply_the_base(tmp_path: Path) -> None:
    with pytest.raises(FinriskError, match=r"does not exist: apply it first \(kubectl apply -k"):
        deploy(rollout(), manifest_path=tmp_path / "m.yaml", api=StandInInferenceServices(False))
