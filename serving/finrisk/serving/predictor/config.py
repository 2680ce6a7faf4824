"""Predictor settings: FINRISK_PREDICTOR_* environment (or `finrisk serve` flags).

The registry versions to serve come from FINRISK_DETECTOR_MODEL_URI / FINRISK_RISK_MODEL_URI
when set (the pipeline's deploy step pins exact versions there), else models:/<name>@<alias>.
"""

from __future__ import annotations

import os

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from finrisk.compiled import DETECTOR, RISK
from finrisk.kinds import MODEL_URI_ENV
from finrisk.registry import (
    CHAMPION,
    DEFAULT_MODEL_NAMES,
    ModelRef,
    canonical_kind,
    parse_model_uri,
)
from finrisk.settings import LOOPBACK

DETECTOR_URI_ENV = MODEL_URI_ENV[DETECTOR]
RISK_URI_ENV = MODEL_URI_ENV[RISK]


class PredictorSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FINRISK_PREDICTOR_", extra="ignore", populate_by_name=True
    )

    # 127.0.0.1 locally; the container image sets 0.0.0.0.
    host: str = LOOPBACK
    http_port: int = Field(default=8080, ge=0, le=65_535)
    # The Open Inference Protocol over gRPC, beside HTTP (KServe's port); 0: no gRPC server.
    grpc_port: int = Field(default=8081, ge=0, le=65_535)
    # Which models to serve: any of detector (or anomaly), risk.
    models: str = "detector,risk"
    alias: str = CHAMPION
    detector_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "detector_uri", DETECTOR_URI_ENV, "FINRISK_PREDICTOR_DETECTOR_URI"
        ),
    )
    risk_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("risk_uri", RISK_URI_ENV, "FINRISK_PREDICTOR_RISK_URI"),
    )
    # None: MLFLOW_TRACKING_URI, else the local stack's server.
    tracking_uri: str | None = None
    # Seconds between checks that an alias still points at the served version; 0: never.
    reload_interval_s: float = Field(default=30.0, ge=0)
    max_batch_rows: int = Field(default=10_000, ge=1)
    # Past these a request is refused: 413 for the body, 503 with Retry-After for requests in
    # flight (a 1 Gi pod must not be talked out of its memory).
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_concurrency: int = Field(default=64, ge=1)
    # Tree evaluator threads (numba kernel or ONNX Runtime) for large batches; 0: the usable
    # cores, at most 4.
    threads: int = Field(default=0, ge=0)
    # Reasons per row from the risk model unless a request says otherwise.
    reasons: int = Field(default=3, ge=0, le=10)
    # How long start-up waits for MLflow and the models.
    load_timeout_s: float = Field(default=120.0, ge=0)
    access_log: bool = False

    def model_refs(self) -> dict[str, ModelRef]:
        """kind -> the registry reference to serve, in the order given by `models`."""
        refs: dict[str, ModelRef] = {}
        for kind in (canonical_kind(k) for k in self.models.split(",") if k.strip()):
            uri = self.detector_uri if kind == DETECTOR else self.risk_uri
            refs[kind] = (
                parse_model_uri(uri)
                if uri
                else ModelRef(DEFAULT_MODEL_NAMES[kind], alias=self.alias)
            )
        return refs

    def onnx_threads(self) -> int:
        if self.threads:
            return self.threads
        return max(1, min(4, len(os.sched_getaffinity(0))))
