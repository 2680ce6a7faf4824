"""Roll a challenger pair out on the InferenceService, prove it serves, or put it back.

In order: read the stored object (created by `kubectl apply -k manifests/base`), patch what the
rollout changes (inference_service.py), wait until KServe reports the new generation Ready,
then ask the served address for the new versions themselves
(`/v2/models/<name>/versions/<v>/ready`; with a canary only `/v2/health/ready`, since the old
revision still takes most requests). Any failure puts back what the rollout changed and raises:
the pipeline promotes the alias only after this returns, so traffic and alias stay on the old
champion. The calls are get and patch on InferenceServices, the Role's verbs exactly
(manifests/base/pipeline-rbac.yaml).

Inside a pipeline pod the in-cluster service-account config is used; elsewhere the current
kubeconfig context. Dry runs: "client" touches no cluster and writes what would change;
"server" sends the patch with dryRun=All, so the API server validates it (schema, RBAC,
conflicts) and answers the object it would store, and nothing changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml

from finrisk.deploy.inference_service import API_VERSION, Rollout, restore_patch, rollout_patch
from finrisk.errors import FinriskError

GROUP, VERSION = API_VERSION.split("/")
PLURAL = "inferenceservices"
DryRun = Literal["", "client", "server"]
Probe = Callable[[str, Rollout, float], None]


@dataclass(frozen=True)
class DeployResult:
    action: str  # "rolled out", "dry run (client)" or "dry run (server)"
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


class Conflict(FinriskError):
    """The object changed between reading and patching it (HTTP 409)."""


# A rollout and its put-back race the controller's own status writes, each of which makes a
# patch read before it stale (409): this many fresh reads and patches.
CONFLICT_ATTEMPTS = 5


def _call(verb: str, rollout: Rollout, do: Callable[[], Any]) -> Any:
    from kubernetes.client.exceptions import ApiException

    try:
        return do()
    except ApiException as exc:
        where = f"InferenceService {rollout.namespace}/{rollout.name}"
        if exc.status == 404:
            raise FinriskError(
                f"{where} does not exist: apply it first (kubectl apply -k manifests/base)"
            ) from None
        hint = {
            403: " (check the pipeline service account's RBAC)",
            409: f" (it changed meanwhile, {CONFLICT_ATTEMPTS} times: run the step again)",
        }.get(exc.status, "")
        kind = Conflict if exc.status == 409 else FinriskError
        raise kind(f"could not {verb} {where}: HTTP {exc.status} {exc.reason}{hint}") from None


def _read_and_patch(
    api: Any,
    rollout: Rollout,
    make_patch: Callable[[dict[str, Any]], dict[str, Any]],
    **options: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the object as read, as patched): the patch made from a fresh read. It carries the
    resourceVersion it was made from, and KServe writes the object's status meanwhile: on a
    conflict, read again and patch again, a few times, rather than fail the step (or, for a
    put-back, leave a failed rollout serving)."""
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        current = _get(api, rollout)
        try:
            return current, _patch(api, rollout, make_patch(current), **options)
        except Conflict:
            if attempt == CONFLICT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _put_back(api: Any, rollout: Rollout, previous: dict[str, Any]) -> None:
    """Restore what the rollout changed, as `previous` (read before it) had it."""
    _read_and_patch(api, rollout, lambda current: restore_patch(current, previous))


def _get(api: Any, rollout: Rollout) -> dict[str, Any]:
    return dict(
        _call(
            "read",
            rollout,
            lambda: api.get_namespaced_custom_object(
                GROUP, VERSION, rollout.namespace, PLURAL, rollout.name
            ),
        )
    )


def _patch(api: Any, rollout: Rollout, patch: dict[str, Any], **options: Any) -> dict[str, Any]:
    return dict(
        _call(
            "patch",
            rollout,
            lambda: api.patch_namespaced_custom_object(
                GROUP, VERSION, rollout.namespace, PLURAL, rollout.name, patch, **options
            ),
        )
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


def served_address(obj: dict[str, Any]) -> str:
    """Where the InferenceService answers from inside the cluster (else its public URL)."""
    status = obj.get("status") or {}
    url = (status.get("address") or {}).get("url") or status.get("url")
    if not url:
        raise FinriskError("the InferenceService is Ready but reports no address to probe")
    return str(url).rstrip("/")


def probe_versions(url: str, rollout: Rollout, deadline: float) -> None:
    """Ask the served address for the rolled-out versions (a canary: for readiness only), until
    it answers 200 or `deadline` (monotonic) passes."""
    paths = (
        ["/v2/health/ready"]
        if rollout.canary_traffic_percent
        else [f"/v2/models/{ref.name}/versions/{ref.version}/ready" for ref in rollout.models]
    )
    last = ""
    for path in paths:
        while True:
            try:
                response = httpx.get(f"{url}{path}", timeout=5)
                if response.status_code == 200:
                    break
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = str(exc)
            if time.monotonic() >= deadline:
                raise FinriskError(f"{url}{path} did not answer 200 in time ({last})")
            time.sleep(1.0)


def deploy(
    rollout: Rollout,
    *,
    manifest_path: str | Path,
    dry_run: DryRun = "",
    timeout_s: float = 600.0,
    api: Any = None,
    poll_s: float = 5.0,
    probe: Probe = probe_versions,
) -> DeployResult:
    """Roll `rollout` out, wait for Ready, probe the new versions; on failure put back what
    changed and raise. Writes the stored object (or, dry, what would change) to
    `manifest_path`."""
    name, namespace = rollout.name, rollout.namespace
    if dry_run == "client":
        written = write_manifest(rollout.planned(), manifest_path)
        return DeployResult("dry run (client)", name, namespace, manifest_path=written)
    api = api if api is not None else kubernetes_api()

    def patch(current: dict[str, Any]) -> dict[str, Any]:
        return rollout_patch(current, rollout)

    if dry_run == "server":
        _, would = _read_and_patch(api, rollout, patch, dry_run="All")
        written = write_manifest(would, manifest_path)
        return DeployResult("dry run (server)", name, namespace, manifest_path=written)
    previous, _ = _read_and_patch(api, rollout, patch)
    deadline = time.monotonic() + timeout_s
    try:
        ready = wait_until_ready(api, name, namespace, timeout_s, poll_s=poll_s)
        url = served_address(ready)
        probe(url, rollout, deadline)
    except FinriskError as exc:
        try:
            _put_back(api, rollout, previous)
        except FinriskError as stuck:
            raise FinriskError(
                f"rolling out {rollout.describe()} failed: {exc}; putting it back failed too: "
                f"{stuck}; InferenceService {namespace}/{name} may still serve the new pair "
                "(no alias moved): run the step again, or re-apply manifests/base"
            ) from None
        raise FinriskError(
            f"rolling out {rollout.describe()} failed: {exc}; InferenceService "
            f"{namespace}/{name} is back on what it served before, and no alias moved"
        ) from None
    written = write_manifest(ready, manifest_path)
    return DeployResult("rolled out", name, namespace, url=url, manifest_path=written)
