"""Rolling the champion out to KServe: the InferenceService spec and applying it to a cluster."""

from finrisk.deploy.apply import DeployResult, deploy
from finrisk.deploy.inference_service import PredictorConfig, inference_service_manifest

__all__ = ["DeployResult", "PredictorConfig", "deploy", "inference_service_manifest"]
