"""One Kubeflow Pipelines v2 component per retraining stage.

Each is a lightweight Python component that runs in the finrisk component image
(components/Dockerfile) and calls the finrisk package installed there; the stage logic
lives in finrisk.retraining, finrisk.gate and finrisk.deploy, where it is tested without KFP.
"""

from finrisk.components.check_drift import check_drift
from finrisk.components.deploy import deploy_challenger
from finrisk.components.evaluate import evaluate_models
from finrisk.components.features import build_features
from finrisk.components.gate import gate_decision
from finrisk.components.image import COMPONENT_IMAGE
from finrisk.components.ingest import ingest_data
from finrisk.components.register import (
    keep_champion,
    promote_champion,
    register_challenger,
    shadow_challenger,
)
from finrisk.components.train import train_detector, train_risk_model
from finrisk.components.validate import fail_run, validate_data

__all__ = [
    "COMPONENT_IMAGE",
    "build_features",
    "check_drift",
    "deploy_challenger",
    "evaluate_models",
    "fail_run",
    "gate_decision",
    "ingest_data",
    "keep_champion",
    "promote_champion",
    "register_challenger",
    "shadow_challenger",
    "train_detector",
    "train_risk_model",
    "validate_data",
]
