"""What a rollout changes on the KServe InferenceService that serves the champion pair.

The object itself comes from one source, `manifests/base/predictor/predictor.yaml`, applied once
per cluster (`kubectl apply -k manifests/base`): replicas, probes, resources, the read-only root
filesystem and its /tmp volume, the thread setting. A rollout changes only what a new pair of
models needs: the exact registry versions the predictor loads (pinned in its environment, so
each rollout is a new revision), optionally the image, a canary share of traffic, and
annotations naming the versions; and it writes the declared autoscaling (finrisk.deploy.
autoscaling, the one definition the manifests are held to), so that replicas changed by hand
do not outlive the next rollout. It is a JSON merge patch built from the object as stored:
the container list is sent whole (a merge patch replaces lists), copied from the stored one
with only those values changed, and the patch carries the object's resourceVersion, so the
server refuses it (409) if someone changed the object in between rather than losing that change.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from finrisk.deploy.autoscaling import PREDICTOR_AUTOSCALING, SPEC_FIELDS, for_inference_service
from finrisk.errors import FinriskError
from finrisk.kinds import DETECTOR, MODEL_URI_ENV, RISK

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
CONTAINER_NAME = "kserve-container"
ANNOTATION_PREFIX = "finrisk.io"
# The variables that tell the predictor (serving/) which registry versions to load.
DETECTOR_MODEL_ENV = MODEL_URI_ENV[DETECTOR]
RISK_MODEL_ENV = MODEL_URI_ENV[RISK]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class ModelRef:
    """One registered model version the predictor serves, and the env var that names it."""

    name: str
    version: str
    env: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class Rollout:
    """A pair of registered versions to roll out to the InferenceService `name`."""

    name: str
    namespace: str
    detector: ModelRef
    risk: ModelRef
    # None: keep the image the object has.
    image: str | None = None
    # 1-99: the new revision gets this share of traffic until promoted; None: all at once.
    canary_traffic_percent: int | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for flag, value in (("name", self.name), ("namespace", self.namespace)):
            if len(value) > 63 or not _DNS1123_LABEL.match(value):
                raise FinriskError(
                    f"InferenceService {flag} {value!r} must be a DNS-1123 label "
                    "(lower-case letters, digits and '-', at most 63 characters)"
                )
        percent = self.canary_traffic_percent
        if percent is not None and not 0 < percent < 100:
            raise FinriskError(
                f"canary traffic percent must be between 1 and 99 (or unset), got {percent}"
            )
        for ref in (self.detector, self.risk):
            if not ref.version:
                raise FinriskError(f"no registry version given for {ref.name!r}")

    @property
    def models(self) -> tuple[ModelRef, ModelRef]:
        return (self.detector, self.risk)

    def describe(self) -> str:
        return (
            f"{self.detector.name} v{self.detector.version}, {self.risk.name} v{self.risk.version}"
        )

    def version_annotations(self) -> dict[str, str]:
        return {
            f"{ANNOTATION_PREFIX}/{kind}-version": f"{ref.name}/{ref.version}"
            for kind, ref in (("detector", self.detector), ("risk", self.risk))
        } | self.annotations

    def planned(self) -> dict[str, Any]:
        """What the rollout changes, as the dry run without a cluster writes it."""
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "annotations": self.version_annotations(),
            },
            "changes": {
                "container": CONTAINER_NAME,
                "env": {ref.env: ref.uri for ref in self.models},
                "image": self.image,
                "canaryTrafficPercent": self.canary_traffic_percent,
                # Without the object its deployment mode is unknown: each mode's, one applies.
                "autoscaling": {
                    mode: declared.spec_fields() for mode, declared in PREDICTOR_AUTOSCALING.items()
                },
            },
        }


def _container(obj: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    containers = copy.deepcopy(obj.get("spec", {}).get("predictor", {}).get("containers") or [])
    for i, container in enumerate(containers):
        if container.get("name") == CONTAINER_NAME:
            return containers, i
    meta = obj.get("metadata", {})
    raise FinriskError(
        f"InferenceService {meta.get('namespace')}/{meta.get('name')} has no container "
        f"{CONTAINER_NAME!r}: apply it from manifests/base (kubectl apply -k manifests/base)"
    )


def rollout_patch(current: dict[str, Any], rollout: Rollout) -> dict[str, Any]:
    """The merge patch that rolls `rollout` out on the stored object `current`."""
    containers, i = _container(current)
    container = containers[i]
    env = [e for e in container.get("env") or [] if e.get("name") not in _PINNED]
    env += [{"name": ref.env, "value": ref.uri} for ref in rollout.models]
    container["env"] = env
    if rollout.image:
        container["image"] = rollout.image
    declared = for_inference_service(current)
    autoscaling = declared.spec_fields() if declared else {}
    return {
        "metadata": {
            "resourceVersion": current["metadata"]["resourceVersion"],
            "annotations": rollout.version_annotations(),
        },
        "spec": {
            "predictor": {
                "containers": containers,
                # Null removes an earlier rollout's canary: a merge patch keeps what it omits.
                "canaryTrafficPercent": rollout.canary_traffic_percent,
                **autoscaling,
            }
        },
    }


def restore_patch(current: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that puts back what a rollout changed, as `previous` had it."""
    containers, _ = _container(previous)
    before = previous.get("metadata", {}).get("annotations") or {}
    now = current.get("metadata", {}).get("annotations") or {}
    return {
        "metadata": {
            "resourceVersion": current["metadata"]["resourceVersion"],
            "annotations": {key: before.get(key) for key in {*before, *now}},
        },
        "spec": {
            "predictor": {
                "containers": containers,
                "canaryTrafficPercent": previous["spec"]["predictor"].get("canaryTrafficPercent"),
                # What the rollout wrote, as it was (null: absent before, removed again).
                **{key: previous["spec"]["predictor"].get(key) for key in SPEC_FIELDS},
            }
        },
    }


_PINNED = frozenset({DETECTOR_MODEL_ENV, RISK_MODEL_ENV})
