"""The predictor as a real process, for the integration tests: what a running one is, and how
its models get registered."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finrisk import registry


@dataclass
class Served:
    url: str
    tracking_uri: str
    detector: str
    risk: str
    log: Path
    grpc_address: str  # host:port of the Open Inference Protocol over gRPC


def register(model: Any, kind: str, name: str, uri: str, alias: str = registry.CHAMPION) -> str:
    _, model_uri = registry.log_model(model, kind, tracking_uri=uri, experiment="test-predictor")
    version = registry.register(model_uri, name, tracking_uri=uri)
    registry.set_alias(name, alias, version, tracking_uri=uri)
    return version
