"""What users apply and what the deploy step does, against a real Kubernetes API server.

`finrisk stack up kube`: etcd and kube-apiserver built from source, on loopback, with the
upstream CRDs installed. The API server itself decides here: schema validation and pruning of
custom resources, server-side apply and dry run, merge-patch semantics, RBAC. No controller
runs: `StandInKServeController` (tests/support/kserve_stand_in.py) writes the Ready status the
deploy step waits for, and nothing here proves what KServe or Kubeflow would then do.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client, config

from finrisk.deploy import cluster
from finrisk.deploy.apply import deploy
from finrisk.deploy.inference_service import (
    DETECTOR_MODEL_ENV,
    RISK_MODEL_ENV,
    ModelRef,
    Rollout,
)
from finrisk.errors import FinriskError
from finrisk.pipelines.compile import compile_pipeline
from finrisk.stack import Service
from finrisk.stack.kube import CRDS, KubeApiServer
from tests.support.kserve_stand_in import StandInKServeController
from tests.support.predictor_process import Served

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "finrisk"  # what manifests/base's kustomization sets
ISVC = "finrisk"  # the InferenceService manifests/base creates
PINNED = {DETECTOR_MODEL_ENV, RISK_MODEL_ENV}
# One field manager, forcing conflicts: a developer's long-lived server keeps earlier runs'
# objects, and rollouts patched some of their fields.
MANAGER = "finrisk-test"
APPLY = ("apply", "--server-side", "--force-conflicts", f"--field-manager={MANAGER}")
SERVICE_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:{cluster.PIPELINE_SERVICE_ACCOUNT}"


def _server(kube: Service) -> KubeApiServer:
    assert isinstance(kube, KubeApiServer)
    return kube


def _objects(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _contains(stored: Any, sent: Any, path: str = "") -> list[str]:
    """Where `stored` lacks or changed something `sent` had: what the server pruned, renamed
    or rejected silently (it may add defaults and status: those are not compared)."""
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return [f"{path}: sent an object, stored {stored!r}"]
        return [
            problem
            for key, value in sent.items()
            for problem in (
                [f"{path}.{key}: dropped"]
                if key not in stored
                else _contains(stored[key], value, f"{path}.{key}")
            )
        ]
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return [f"{path}: sent {len(sent)} items, stored {stored!r}"[:300]]
        return [
            p
            for i, (a, b) in enumerate(zip(stored, sent, strict=True))
            for p in _contains(a, b, f"{path}[{i}]")
        ]
    return (
        []
        if stored == sent or str(stored) == str(sent)
        else [f"{path}: sent {sent!r}, stored {stored!r}"]
    )


def _stored(kube: KubeApiServer, obj: dict[str, Any]) -> dict[str, Any]:
    kind = obj["kind"].lower()
    group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
    resource = f"{kind}.{group}" if group and "." in group else kind
    namespace = obj["metadata"].get("namespace")
    args = ["get", f"{resource}/{obj['metadata']['name']}", "-o", "json"]
    if namespace:
        args += ["-n", namespace]
    return dict(json.loads(kube.kubectl(*args)))


def _apply(server: KubeApiServer, obj: dict[str, Any]) -> None:
    """Apply one object server-side (as every apply here, with the tests' field manager)."""
    text = yaml.safe_dump(obj)
    server.kubectl(*APPLY, "-f", "-", input_text=text)


@pytest.fixture(scope="module")
def namespace(kube: Service) -> str:
    _apply(
        _server(kube), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    )
    return NAMESPACE


def test_the_upstream_crds_are_installed_and_established(kube: Service) -> None:
    listed = json.loads(_server(kube).kubectl("get", "crd", "-o", "json"))
    names = {item["metadata"]["name"] for item in listed["items"]}
    wanted = {
        doc["metadata"]["name"]
        for path in CRDS.rglob("*.yaml")
        for doc in _objects(path.read_text())
        if doc.get("kind") == "CustomResourceDefinition"
    }
    assert len(wanted) == 8 and wanted <= names
    for item in listed["items"]:
        conditions = {c["type"]: c["status"] for c in item["status"]["conditions"]}
        assert conditions.get("Established") == "True", item["metadata"]["name"]


@pytest.mark.parametrize(
    "kustomization", ["base", "overlays/serverless", "overlays/monitoring", "overlays/shadow"]
)
def test_every_kustomization_passes_a_server_side_dry_run(
    kube: Service, namespace: str, kustomization: str
) -> None:
    server = _server(kube)
    out = server.kubectl(
        *APPLY,
        "--dry-run=server",
        "-o",
        "json",
        "-k",
        str(ROOT / "manifests" / kustomization),
    )
    applied = json.loads(out)
    items = applied.get("items", [applied])
    sent = _objects(server.kubectl("kustomize", str(ROOT / "manifests" / kustomization)))
    assert len(items) == len(sent)
    for stored, obj in zip(
        sorted(items, key=lambda o: (o["kind"], o["metadata"]["name"])),
        sorted(sent, key=lambda o: (o["kind"], o["metadata"]["name"])),
        strict=True,
    ):
        assert _contains(stored, obj) == [], (obj["kind"], obj["metadata"]["name"])


def test_the_autoscaling_overlays_scaled_object_passes_a_server_side_dry_run(
    kube: Service, namespace: str
) -> None:
    """KEDA's ScaledObject CRD is installed here, its TriggerAuthentication's is not (not
    vendored): the ScaledObject and the StatefulSet it scales, as the overlay renders them, go
    through the API server's own validation and come back whole. KEDA itself does not run."""
    server = _server(kube)
    rendered = _objects(
        server.kubectl("kustomize", str(ROOT / "manifests" / "overlays" / "autoscaling"))
    )
    sent = [
        o
        for o in rendered
        if (o["kind"], o["metadata"]["name"])
        in {("ScaledObject", "finrisk-bridge"), ("StatefulSet", "finrisk-bridge")}
    ]
    assert len(sent) == 2
    out = server.kubectl(
        *APPLY,
        "--dry-run=server",
        "-o",
        "json",
        "-f",
        "-",
        input_text=yaml.safe_dump_all(sent),
    )
    applied = json.loads(out)
    items = applied.get("items", [applied])
    stored = {o["kind"]: o for o in items}
    for obj in sent:
        assert _contains(stored[obj["kind"]], obj) == [], obj["kind"]


@pytest.fixture(scope="module")
def base(kube: Service, namespace: str) -> list[dict[str, Any]]:
    """manifests/base applied server-side, as `kubectl apply -k` users run it; its objects."""
    server = _server(kube)
    folder = str(ROOT / "manifests" / "base")
    # A user re-applying the base after rollouts takes their pinned versions back the same way.
    server.kubectl(*APPLY, "-k", folder)
    return _objects(server.kubectl("kustomize", folder))


def test_the_base_applies_server_side_and_every_field_is_stored(
    kube: Service, base: list[dict[str, Any]]
) -> None:
    """A field the server does not know is pruned from a custom resource without an error:
    reading every object back is what shows that nothing was lost."""
    server = _server(kube)
    for obj in base:
        assert _contains(_stored(server, obj), obj) == [], (obj["kind"], obj["metadata"]["name"])


def test_the_compiled_pipeline_applies_server_side(
    kube: Service, namespace: str, tmp_path: Path
) -> None:
    server = _server(kube)
    compiled = compile_pipeline(tmp_path, namespace=namespace)
    server.kubectl(*APPLY, "-f", str(compiled.manifest_path))
    sent = _objects(compiled.manifest_path.read_text())
    assert {obj["kind"] for obj in sent} == {"Pipeline", "PipelineVersion"}
    for obj in sent:
        assert _contains(_stored(server, obj), obj) == [], obj["kind"]


# ---------------------------------------------------------------- the deploy step


def _api(server: KubeApiServer, token: str | None = None) -> client.CustomObjectsApi:
    """A CustomObjectsApi as the admin (kubeconfig) or as the holder of `token`."""
    if token is None:
        return client.CustomObjectsApi(config.new_client_from_config(str(server.kubeconfig)))
    configuration = client.Configuration()
    configuration.host = server.address
    configuration.ssl_ca_cert = str(server.ca_file)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.CustomObjectsApi(client.ApiClient(configuration))


@pytest.fixture(scope="module")
def pipeline_api(
    kube: Service, namespace: str, base: list[dict[str, Any]]
) -> client.CustomObjectsApi:
    """The API as the retraining pipeline's service account (from manifests/base, with a token
    the server issued)."""
    server = _server(kube)
    token = server.kubectl(
        "create", "token", cluster.PIPELINE_SERVICE_ACCOUNT, "-n", namespace, "--duration=1h"
    ).strip()
    return _api(server, token)


@pytest.fixture
def stand_in(kube: Service, namespace: str, served: Served) -> Iterator[StandInKServeController]:
    """Marks the InferenceServices Ready, their address a real predictor process (`finrisk
    serve` on registered models), which the deploy step's probe then asks for its versions."""
    api = _api(_server(kube))
    with StandInKServeController(api, namespace, address=served.url) as controller:
        yield controller


def _rollout(served: Served, detector: str, risk: str, **changes: Any) -> Rollout:
    return Rollout(
        name=ISVC,
        namespace=NAMESPACE,
        detector=ModelRef(served.detector, detector, DETECTOR_MODEL_ENV),
        risk=ModelRef(served.risk, risk, RISK_MODEL_ENV),
        **changes,
    )


def _served_version(served: Served, name: str) -> str:
    return str(httpx.get(f"{served.url}/v2/models/{name}", timeout=10).json()["versions"][0])


def _without_rollout(obj: dict[str, Any]) -> dict[str, Any]:
    """The stored object with exactly what a rollout may change taken out (pinned versions,
    canary, image, finrisk annotations) and the server's own bookkeeping: what must equal the
    base manifest."""
    spec = copy.deepcopy(obj["spec"])
    predictor = spec["predictor"]
    predictor.pop("canaryTrafficPercent", None)
    for container in predictor["containers"]:
        container["env"] = [e for e in container["env"] if e["name"] not in PINNED]
        container.pop("image")
    annotations = {
        k: v
        for k, v in (obj["metadata"].get("annotations") or {}).items()
        if not k.startswith("finrisk.io/")
    }
    return {"spec": spec, "annotations": annotations, "labels": obj["metadata"].get("labels")}


def test_rollouts_change_only_what_they_say_and_a_failed_one_is_put_back(
    kube: Service,
    base: list[dict[str, Any]],
    pipeline_api: client.CustomObjectsApi,
    stand_in: StandInKServeController,
    served: Served,
    tmp_path: Path,
) -> None:
    """Each rollout as the pipeline's service account on the InferenceService manifests/base
    created, each read back whole from the server and compared with the base."""
    server = _server(kube)
    (isvc,) = [o for o in base if o["kind"] == "InferenceService"]
    detector, risk = _served_version(served, served.detector), _served_version(served, served.risk)

    def stored() -> dict[str, Any]:
        return _stored(server, isvc)

    def run(rollout: Rollout, step: str, timeout_s: float = 30, **options: Any) -> Any:
        return deploy(
            rollout,
            manifest_path=tmp_path / f"{step}.yaml",
            api=pipeline_api,
            timeout_s=timeout_s,
            poll_s=0.1,
            **options,
        )

    image = "registry.example/finrisk-predictor:0.2.0"
    # 1. The served pair, pinned, a new image: Ready, and the predictor answers for them.
    result = run(_rollout(served, detector, risk, image=image), "pinned")
    assert (result.action, result.url) == ("rolled out", served.url)
    first = stored()
    assert _without_rollout(first) == _without_rollout(isvc)  # the base, field for field
    (container,) = first["spec"]["predictor"]["containers"]
    pins = {e["name"]: e["value"] for e in container["env"] if e["name"] in PINNED}
    assert pins == {
        DETECTOR_MODEL_ENV: f"models:/{served.detector}/{detector}",
        RISK_MODEL_ENV: f"models:/{served.risk}/{risk}",
    }
    assert container["image"] == image
    # 2. A canary of the same pair (probed for readiness only).
    run(_rollout(served, detector, risk, canary_traffic_percent=10), "canary")
    canary = stored()
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 10
    assert _without_rollout(canary) == _without_rollout(isvc)
    # 3. A pair the predictor does not serve: no answer for it, so the rollout is put back.
    with pytest.raises(FinriskError, match="back on what it served before, and no alias moved"):
        run(_rollout(served, "999", risk), "unserved", timeout_s=3)
    back = stored()
    assert back["spec"] == canary["spec"]
    assert back["metadata"]["annotations"] == canary["metadata"]["annotations"]
    assert back["metadata"]["generation"] > canary["metadata"]["generation"]  # it was rolled
    # 4. The same pair, no canary: none left behind.
    run(_rollout(served, detector, risk), "no-canary")
    assert "canaryTrafficPercent" not in stored()["spec"]["predictor"]
    # 5. A server-side dry run: the server answers what it would store, and stores nothing.
    before = stored()
    dry = run(_rollout(served, detector, risk, image="x/y:z"), "dry", dry_run="server")
    assert dry.action == "dry run (server)"
    would = yaml.safe_load((tmp_path / "dry.yaml").read_text())
    assert would["spec"]["predictor"]["containers"][0]["image"] == "x/y:z"
    assert stored()["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert stand_in.marked  # the stand-in, not KServe, made it Ready


def test_the_pipeline_account_may_make_the_deploy_steps_calls_and_nothing_more(
    kube: Service, pipeline_api: client.CustomObjectsApi, namespace: str
) -> None:
    """Answered by the server's own RBAC authorizer for the service account."""
    server = _server(kube)

    def can(verb: str, resource: str, where: str = namespace) -> bool:
        return _allowed(server, verb, resource, where)

    isvc = "inferenceservices.serving.kserve.io"
    for verb in ("get", "patch"):  # what finrisk.deploy.apply calls
        assert can(verb, isvc), verb
    for verb in ("create", "list", "watch", "update", "delete", "deletecollection"):
        assert not can(verb, isvc), verb
    for resource in (
        "pods",
        "secrets",
        "configmaps",
        "deployments.apps",
        "roles.rbac.authorization.k8s.io",
    ):
        assert not can("get", resource), resource
    assert not can("get", isvc, "default")  # one namespace only


def test_the_shadow_overlays_monitor_may_roll_out_and_nothing_more(
    kube: Service, namespace: str
) -> None:
    """The live gate's rollout as the monitor's service account, applied for real with the
    shadow overlay: the deploy step's calls, in the one namespace."""
    server = _server(kube)
    server.kubectl(*APPLY, "-k", str(ROOT / "manifests" / "overlays" / "shadow"))
    monitor = f"system:serviceaccount:{namespace}:finrisk-monitor"
    isvc = "inferenceservices.serving.kserve.io"
    for verb in ("get", "patch"):
        assert _allowed(server, verb, isvc, namespace, who=monitor), verb
    for verb in ("create", "delete", "list"):
        assert not _allowed(server, verb, isvc, namespace, who=monitor), verb
    assert not _allowed(server, "get", "secrets", namespace, who=monitor)
    assert not _allowed(server, "get", isvc, "default", who=monitor)


def _allowed(
    server: KubeApiServer,
    verb: str,
    resource: str,
    namespace: str,
    who: str = SERVICE_ACCOUNT,
) -> bool:
    try:
        server.kubectl("auth", "can-i", verb, resource, f"--as={who}", "-n", namespace, "--quiet")
    except FinriskError:  # `can-i --quiet` exits 1 for "no"
        return False
    return True


def test_a_deploy_the_rbac_refuses_names_the_service_accounts_rbac(
    kube: Service, base: list[dict[str, Any]], tmp_path: Path
) -> None:
    server = _server(kube)
    # A service account with no Role (no controller makes the namespace's "default" here).
    _apply(
        server,
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "finrisk-nobody", "namespace": NAMESPACE},
        },
    )
    token = server.kubectl("create", "token", "finrisk-nobody", "-n", NAMESPACE).strip()
    with pytest.raises(FinriskError, match=r"HTTP 403 Forbidden \(check the pipeline service"):
        deploy(
            Rollout(
                name=ISVC,
                namespace=NAMESPACE,
                detector=ModelRef("d", "1", DETECTOR_MODEL_ENV),
                risk=ModelRef("r", "1", RISK_MODEL_ENV),
            ),
            manifest_path=tmp_path / "m.yaml",
            api=_api(server, token),
            timeout_s=5,
        )
