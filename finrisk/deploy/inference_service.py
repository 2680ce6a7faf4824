"""The KServe InferenceService that serves the champion pair (serving.kserve.io/v1beta1).

The predictor is finrisk's own image (serving/), which loads the models from the MLflow
registry itself; the spec pins the exact registry versions, so each promotion changes the spec
and KServe rolls out a new revision (with `canaryTrafficPercent` of the traffic when set).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from finrisk import __version__
from finrisk.deploy import cluster
from finrisk.errors import FinriskError
from finrisk.kinds import DETECTOR, MODEL_URI_ENV, RISK

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
CONTAINER_NAME = "kserve-container"
DEFAULT_PREDICTOR_IMAGE = f"ghcr.io/finrisk/finrisk-predictor:{__version__}"
HTTP_PORT = 8080
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
class PredictorConfig:
    name: str
    namespace: str
    detector: ModelRef
    risk: ModelRef
    image: str = DEFAULT_PREDICTOR_IMAGE
    args: tuple[str, ...] = ("serve",)
    # 1-99: the new revision gets this share of traffic until promoted; None: all at once.
    canary_traffic_percent: int | None = None
    min_replicas: int = 1
    max_replicas: int = 3
    cpu_request: str = "500m"
    cpu_limit: str = "2"
    memory_request: str = "1Gi"
    memory_limit: str = "2Gi"
    service_account: str | None = None
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
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise FinriskError(
                f"replicas must satisfy 1 <= min ({self.min_replicas}) <= max ({self.max_replicas})"
            )
        for ref in (self.detector, self.risk):
            if not ref.version:
                raise FinriskError(f"no registry version given for {ref.name!r}")


def _env_from_config() -> list[dict[str, Any]]:
    return [
        {
            "name": cluster.MLFLOW_URI_KEY,
            "valueFrom": {
                "configMapKeyRef": {"name": cluster.CONFIG_MAP, "key": cluster.MLFLOW_URI_KEY}
            },
        },
        *(
            {
                "name": key,
                "valueFrom": {
                    "secretKeyRef": {"name": cluster.MLFLOW_SECRET, "key": key, "optional": True}
                },
            }
            for key in (cluster.MLFLOW_USERNAME_KEY, cluster.MLFLOW_PASSWORD_KEY)
        ),
    ]


def _probe(path: str, delay: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": HTTP_PORT},
        "initialDelaySeconds": delay,
        "periodSeconds": 10,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }


def inference_service_manifest(config: PredictorConfig) -> dict[str, Any]:
    """The full InferenceService object for `config`, as `kubectl apply` takes it."""
    annotations = {
        f"{ANNOTATION_PREFIX}/{kind}-version": f"{ref.name}/{ref.version}"
        for kind, ref in (("detector", config.detector), ("risk", config.risk))
    }
    annotations.update(config.annotations)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": config.image,
        "args": list(config.args),
        "env": [
            *_env_from_config(),
            {"name": config.detector.env, "value": config.detector.uri},
            {"name": config.risk.env, "value": config.risk.uri},
        ],
        "ports": [{"containerPort": HTTP_PORT, "protocol": "TCP"}],
        "readinessProbe": _probe("/v2/health/ready", 5),
        "livenessProbe": _probe("/v2/health/live", 30),
        "resources": {
            "requests": {"cpu": config.cpu_request, "memory": config.memory_request},
            "limits": {"cpu": config.cpu_limit, "memory": config.memory_limit},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    predictor: dict[str, Any] = {
        "minReplicas": config.min_replicas,
        "maxReplicas": config.max_replicas,
        "containers": [container],
    }
    if config.service_account:
        predictor["serviceAccountName"] = config.service_account
    if config.canary_traffic_percent is not None:
        predictor["canaryTrafficPercent"] = config.canary_traffic_percent
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": config.name,
            "namespace": config.namespace,
            "labels": {
                "app.kubernetes.io/name": "finrisk-predictor",
                "app.kubernetes.io/part-of": "finrisk",
                "app.kubernetes.io/managed-by": "finrisk-pipeline",
            },
            "annotations": annotations,
        },
        "spec": {"predictor": predictor},
    }


def merge_patch(manifest: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch that turns an existing InferenceService into `manifest`.

    A merge patch keeps fields it does not mention, so a canary percent left over from an
    earlier rollout is removed explicitly (null) when this rollout has none.
    """
    patch = {
        "metadata": manifest["metadata"],
        "spec": {"predictor": dict(manifest["spec"]["predictor"])},
    }
    patch["spec"]["predictor"].setdefault("canaryTrafficPercent", None)
    return patch
