"""Create or patch an InferenceService through the Kubernetes API and wait until it is ready.

Inside a pipeline pod the in-cluster service-account config is used (RBAC:
manifests/base/pipeline-rbac.yaml); elsewhere the current kubeconfig context. A dry run only
writes the manifest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from finrisk.deploy.inference_service import API_VERSION, merge_patch
from finrisk.errors import FinriskError

GROUP, VERSION = API_VERSION.split("/")
PLURAL = "inferenceservices"


@dataclass(frozen=True)
class DeployResult:
    action: str  # "dry-run", "created" or "patched"
    name: str
    namespace: str
    url: str | None = None
    manifest_path: Path | None = None


def kubernetes_api() -> Any:
    """A CustomObjectsApi: in-cluster config in a pod, else the local kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            raise FinriskError(
                f"no Kubernetes credentials: not in a pod and no usable kubeconfig ({exc})"
            ) from None
    return client.CustomObjectsApi()


def write_manifest(manifest: dict[str, Any], path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    return target


def apply(api: Any, manifest: dict[str, Any]) -> str:
    """Create the InferenceService, or merge-patch it when it exists; returns what was done."""
    from kubernetes.client.exceptions import ApiException

    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    try:
        api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as exc:
        if exc.status != 404:
            raise FinriskError(_api_error("read", name, namespace, exc)) from None
        try:
            api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
        except ApiException as create_exc:
            raise FinriskError(_api_error("create", name, namespace, create_exc)) from None
        return "created"
    try:
        api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, merge_patch(manifest)
        )
    except ApiException as exc:
        raise FinriskError(_api_error("patch", name, namespace, exc)) from None
    return "patched"


def _api_error(verb: str, name: str, namespace: str, exc: Any) -> str:
    hint = " (check the pipeline service account's RBAC)" if exc.status == 403 else ""
    return (
        f"could not {verb} InferenceService {namespace}/{name}: HTTP {exc.status} "
        f"{exc.reason}{hint}"
    )


def readiness(obj: dict[str, Any]) -> tuple[bool, str]:
    """(ready, why) for an InferenceService object: Ready=True for the latest generation."""
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return False, f"generation {generation} not yet observed (at {observed})"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return True, "Ready"
            return False, f"Ready={condition.get('status')}: {condition.get('message', '')}".strip()
    return False, "no Ready condition yet"


def wait_until_ready(
    api: Any,
    name: str,
    namespace: str,
    timeout_s: float,
    *,
    poll_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll the InferenceService until Ready; FinriskError with the last state on timeout."""
    deadline = clock() + timeout_s
    while True:
        obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        ready, why = readiness(obj)
        if ready:
            return dict(obj)
        if clock() >= deadline:
            raise FinriskError(
                f"InferenceService {namespace}/{name} not ready after {timeout_s:g} s: {why}"
            )
        sleep(poll_s)


def deploy(
    manifest: dict[str, Any],
    *,
    dry_run: bool,
    manifest_path: str | Path,
    timeout_s: float = 600.0,
    api: Any = None,
    poll_s: float = 5.0,
) -> DeployResult:
    """Write the manifest to `manifest_path`; unless a dry run, apply it and wait for Ready."""
    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    written = write_manifest(manifest, manifest_path)
    if dry_run:
        return DeployResult("dry-run", name, namespace, manifest_path=written)
    api = api if api is not None else kubernetes_api()
    action = apply(api, manifest)
    obj = wait_until_ready(api, name, namespace, timeout_s, poll_s=poll_s)
    url = (obj.get("status") or {}).get("url")
    return DeployResult(action, name, namespace, url=url, manifest_path=written)
